"""Benchmarks, each against a reference measured in the same run.

python scripts/benchmark.py data [--json PATH] [--studies 2] [--shape 480 480 240] [--reference-studies 1]
python scripts/benchmark.py flops [--json PATH]
python scripts/benchmark.py evaluation [--json PATH]
python scripts/benchmark.py training [--json PATH] [--steps 300] [--processes 2]
python scripts/benchmark.py step [--json PATH] [--geometry paper] [--steps 10] [--deepspeed none]
python scripts/benchmark.py step-sweep [--json PATH] [--geometry paper] [--micro-batches 1 4 8 16] [--loss-chunk-sizes none]
python scripts/benchmark.py generate [--json PATH] [--geometry paper] [--batch-sizes 1 32] [--new-tokens 128] [--compile]
"""

import argparse
import importlib
import json
from pathlib import Path

ZERO2 = Path(__file__).resolve().parents[1] / "configs" / "deepspeed" / "zero2.yaml"


def loss_chunk_size(value: str) -> int | None:
    """A ``--loss-chunk-sizes`` value: a number of positions, or 'none'."""
    return None if value == "none" else int(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="name", required=True)
    data = commands.add_parser(
        "data", help="training-sample production (float and compact samples): cache vs official per-sample path"
    )
    data.add_argument("--studies", type=int, default=2)
    data.add_argument("--shape", type=int, nargs=3, default=(480, 480, 240))
    data.add_argument("--repeats", type=int, default=3)
    data.add_argument("--reference-studies", type=int, default=1, help="0: no reference (it needs ~17 GB)")
    data.add_argument("--workdir", default=None, help="where the temporary dataset goes (needs ~0.2 GB per study)")
    commands.add_parser("flops", help="training FLOPs per sample at LLaMA2-7B geometry: ours vs reference design")
    commands.add_parser("evaluation", help="metric protocol wall time: ours vs the official per-sample approach")
    training = commands.add_parser(
        "training", help="CPU demo samples/s: one process vs one-thread DDP processes under torchrun"
    )
    training.add_argument("--steps", type=int, default=300)
    training.add_argument("--processes", type=int, default=2)
    training.set_defaults(script=str(Path(__file__).with_name("train.py")))
    step = commands.add_parser(
        "step",
        help="training steps at LLaMA2-7B geometry on this machine's GPU: ours vs reference design (random weights)",
    )
    step.add_argument("--geometry", choices=("paper", "tiny"), default="paper", help="tiny: a CPU check of the path")
    step.add_argument("--steps", type=int, default=10)
    step.add_argument("--warmup", type=int, default=3)
    step.add_argument(
        "--deepspeed",
        dest="deepspeed_config",
        default=str(ZERO2),
        help="DeepSpeed config (YAML), or 'none' for plain Accelerate",
    )
    sweep = commands.add_parser(
        "step-sweep",
        help="training samples/s and peak memory over micro-batch sizes, "
        "activation checkpointing on and off: ours vs reference design",
    )
    sweep.add_argument("--geometry", choices=("paper", "tiny"), default="paper", help="tiny: a CPU check of the path")
    sweep.add_argument("--micro-batches", type=int, nargs="+", default=(1, 4, 8, 16))
    sweep.add_argument("--steps", type=int, default=3)
    sweep.add_argument("--warmup", type=int, default=1)
    sweep.add_argument(
        "--loss-chunk-sizes",
        type=loss_chunk_size,
        nargs="+",
        default=(None,),
        help="ours once per value: the chunked LM-head cross-entropy over N positions, or 'none' for the LLM's own "
        "loss over the whole batch's logits (e.g. --loss-chunk-sizes none 1024 measures the chunking)",
    )
    generate = commands.add_parser(
        "generate",
        help="greedy generation at LLaMA2-7B geometry: LoRA merged (and "
        "compiled decoding) vs the plain transformers path",
    )
    generate.add_argument(
        "--geometry", choices=("paper", "tiny"), default="paper", help="tiny: a CPU check of the path"
    )
    generate.add_argument("--batch-sizes", type=int, nargs="+", default=(1, 32))
    generate.add_argument("--new-tokens", type=int, default=128, help="every row generates exactly this many tokens")
    generate.add_argument(
        "--compile",
        dest="compile_decode",
        action="store_true",
        help="ours with a static KV cache and the decoding step compiled by torch.compile",
    )
    for command in commands.choices.values():
        command.add_argument("--json", dest="json_path", default=None, help="also write the figures to this JSON file")
    args = vars(parser.parse_args())
    if args.get("deepspeed_config") == "none":
        args["deepspeed_config"] = None
    module = importlib.import_module(f"reg2rg.benchmarks.{args.pop('name').replace('-', '_')}")
    print(json.dumps(module.run(**args), indent=2))


if __name__ == "__main__":
    main()
