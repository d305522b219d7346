"""Demo training throughput on the CPU: one process on every core vs one-thread DDP processes under torchrun.

The runs train the demo experiment (``python scripts/train.py``) for the same steps on the same data,
without evaluation or wandb, one after the other: one process with the whole batch per step (the
demo, and the reference) and ``processes`` DDP processes started by plain ``torchrun`` (one thread
each, the step's batch split between them). Samples/s is the mean of the logged windows after the
first (which holds start-up); the ratio is what torchrun buys on this machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def run(script: str, steps: int = 300, processes: int = 2, json_path: str | None = None) -> dict:
    """Samples/s of the demo in one process and under torchrun; writes ``json_path`` if given."""
    results = {"steps": steps, "cpu_count": os.cpu_count()}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    variants = {
        "one_process": [sys.executable],
        f"torchrun_{processes}_processes": torchrun,
    }
    with tempfile.TemporaryDirectory() as scratch:
        for name, launcher in variants.items():
            run_dir = Path(scratch) / name
            command = [
                *launcher,
                script,
                f"trainer.max_steps={steps}",
                f"trainer.log_every_n_steps={max(steps // 6, 1)}",
                "trainer.progress_bar=false",
                "evaluation.enabled=false",
                "logger=none",
                f"hydra.run.dir={run_dir}",
            ]
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)  # torchrun: 1 thread per process
            results[name] = _samples_per_second(run_dir / "metrics.jsonl")
    results[f"torchrun_{processes}_processes_vs_one_process"] = (
        results[f"torchrun_{processes}_processes"] / results["one_process"]
    )
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


def _samples_per_second(metrics: Path) -> float:
    """Mean samples/s of the logged windows after the first."""
    rates = [
        json.loads(line)["samples_per_s"] for line in metrics.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    later = rates[1:] or rates
    return sum(later) / len(later)
