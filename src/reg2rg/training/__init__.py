"""Training: Hydra config -> data, tokenizer, model -> Accelerate loop (one device, DDP or DeepSpeed ZeRO-2)
-> atomic, resumable checkpoints -> held-out evaluation. ``train(cfg)`` runs it all (``scripts/train.py``).

    from reg2rg.training import train
    result = train(cfg)   # cfg: a composed configs/train.yaml
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["TrainerConfig", "train"]

if TYPE_CHECKING:
    from reg2rg.training.run import train
    from reg2rg.training.trainer import TrainerConfig


def __getattr__(name: str):
    """Import torch, accelerate and transformers only when training starts (``ranks`` runs before Hydra)."""
    if name == "train":
        from reg2rg.training.run import train

        return train
    if name == "TrainerConfig":
        from reg2rg.training.trainer import TrainerConfig

        return TrainerConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
