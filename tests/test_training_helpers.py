"""Tiny training runs for the test_training_* modules: the real Hydra configs with tiny overrides.

Studies are 40 x 40 x 20 phantoms preprocessed to 16 x 16 x 8; one optimizer step is 2 micro-batches
of 2 studies (effective batch 4), so 12 training studies make 3 steps per epoch.
"""

from __future__ import annotations

import json
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from reg2rg.data.prepare import prepare_dataset

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
N_TRAIN, N_VALID = 12, 2

ENCODER = "image_patch_size=8 frame_patch_size=4 depth=1 heads=2 dropout=0.1 emb_dropout=0.1"
TINY_ENCODERS = [
    *(f"model.vision_encoder.{kv}" for kv in f"{ENCODER} dim=24 dim_head=8 mlp_dim=32".split()),
    *(f"model.perceiver.{kv}" for kv in "dim=24 depth=1 heads=2 dim_head=8 num_latents=4 ff_mult=2".split()),
    *(f"model.mask_encoder.{kv}" for kv in f"{ENCODER} dim=12 dim_head=6 mlp_dim=16".split()),
]
TINY_LLAMA = (
    "{model_type: llama, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, "
    "num_attention_heads: 2, num_key_value_heads: 2, max_position_embeddings: 2048}"
)
TINY_MODEL = [*TINY_ENCODERS, f"llm.architecture={TINY_LLAMA}", "tokenizer_vocab_size=320"]
# The paper experiments with everything that needs a download made tiny and random.
OFFLINE_PAPER = [
    "llm.name_or_path=null",
    f"+llm.architecture={TINY_LLAMA}",
    "llm.dtype=float32",
    "model.vit_checkpoint=null",
    "model.perceiver_checkpoint=null",
    *TINY_ENCODERS,
    "tokenizer_vocab_size=320",
]
TINY_TRAINER = [
    "trainer.per_device_batch_size=2",
    "trainer.effective_batch_size=4",
    "trainer.mixed_precision=no",
    "trainer.num_workers=0",
    "trainer.log_every_n_steps=1",
    "trainer.progress_bar=false",
    "trainer.warmup_steps=2",
    "trainer.optimizer.lr=1e-3",
]


def data_overrides(root: Path) -> list[str]:
    return [
        f"data.root={root}",
        f"data.synthetic.n_train={N_TRAIN}",
        f"data.synthetic.n_valid={N_VALID}",
        "data.synthetic.shape=[40,40,20]",
        "data.preprocessing.target_size=[16,16,8]",
    ]


def tiny_overrides(data_root: Path, output_dir: Path | None) -> list[str]:
    """The demo experiment at test size, on a prepared dataset, without wandb or evaluation.

    ``output_dir`` None keeps Hydra's run folder (for runs of ``scripts/train.py``).
    """
    overrides = [
        *data_overrides(data_root),
        *TINY_MODEL,
        *TINY_TRAINER,
        "prepare_data=false",
        "logger=none",
        "evaluation.enabled=false",
    ]
    return overrides if output_dir is None else [*overrides, f"output_dir={output_dir}"]


def compose_train(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=overrides)


def prepare_tiny_data(root: Path) -> Path:
    """Write and cache the test-size synthetic dataset in ``root`` (the ``tiny_data`` fixture of conftest.py)."""
    if not (root / "cache" / "valid.jsonl").is_file():
        cfg = compose_train([*data_overrides(root), "output_dir=unused"])
        prepare_dataset(cfg.data, ["train", "valid"])
    return root


def logged(run_dir: Path) -> dict[int, dict]:
    """metrics.jsonl by step (a resumed run's later lines win)."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {record["step"]: record for record in map(json.loads, lines)}
