"""Where training metrics go: the console, ``metrics.jsonl`` in the run folder, and Weights & Biases.

wandb runs online when WANDB_API_KEY is set, offline otherwise (``wandb sync`` uploads later);
WANDB_MODE or ``logger.wandb.mode`` override that, and ``logger=none`` leaves wandb out.
Only the main process tracks.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"


def wandb_mode(configured: str | None) -> str:
    """``logger.wandb.mode``, else WANDB_MODE, else online with an API key and offline without."""
    return configured or os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")


class MetricsLog:
    """Appends each logged step to ``metrics.jsonl``, prints it, and sends it to wandb when a run is open."""

    def __init__(self, run_dir: Path, wandb_settings: Mapping[str, Any] | None, name: str, config: dict):
        self.path = run_dir / METRICS_FILE
        self.wandb_run = None
        if wandb_settings is not None:
            import wandb

            settings = dict(wandb_settings)
            mode = wandb_mode(settings.pop("mode", None))
            self.wandb_run = wandb.init(name=name, dir=str(run_dir), config=config, mode=mode, **settings)
            log.info("wandb run %s (%s mode)", self.wandb_run.name, mode)

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        record = {"step": step, **metrics}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        log.info("step %d: %s", step, "  ".join(f"{key} {_format(value)}" for key, value in metrics.items()))
        if self.wandb_run is not None:
            self.wandb_run.log(dict(metrics), step=step)

    def close(self) -> None:
        if self.wandb_run is not None:
            self.wandb_run.finish()
            self.wandb_run = None


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
