"""Where training metrics go: the console, ``metrics.jsonl`` in the run folder, and Weights & Biases.

wandb runs online when it has an API key (WANDB_API_KEY, or ``wandb login``'s entry in ~/.netrc),
offline otherwise (``wandb sync`` uploads later); WANDB_MODE or ``logger.wandb.mode`` override that,
and ``logger=none`` leaves wandb out. A run folder keeps one wandb run id (``wandb_run_id``), so a
resumed run continues the same wandb run. Only the main process tracks.
"""

from __future__ import annotations

import json
import logging
import netrc
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from reg2rg.files import atomic_write_bytes

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
RUN_ID_FILE = "wandb_run_id"


def wandb_mode(configured: str | None) -> str:
    """``logger.wandb.mode``, else WANDB_MODE, else online with an API key and offline without."""
    return configured or os.environ.get("WANDB_MODE") or ("online" if _has_api_key() else "offline")


def _has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).netloc  # as wandb: host[:port]
    try:
        entry = netrc.netrc(os.environ.get("NETRC")).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return entry is not None and bool(entry[2])  # a password is the key


def wandb_run_id(run_dir: Path) -> str:
    """The run folder's wandb run id, made and written the first time."""
    path = run_dir / RUN_ID_FILE
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    run_id = secrets.token_hex(4)
    atomic_write_bytes(path, run_id.encode("utf-8"))
    return run_id


class MetricsLog:
    """Appends each logged step to ``metrics.jsonl``, prints it, and sends it to wandb when a run is open."""

    def __init__(self, run_dir: Path, wandb_settings: Mapping[str, Any] | None, name: str, config: dict):
        self.path = run_dir / METRICS_FILE
        self.wandb_run = None
        if wandb_settings is not None:
            import wandb

            settings = dict(wandb_settings)
            mode = wandb_mode(settings.pop("mode", None))
            settings = {"id": wandb_run_id(run_dir), "resume": "allow", **settings}
            self.wandb_run = wandb.init(name=name, dir=str(run_dir), config=config, mode=mode, **settings)
            log.info("wandb run %s (%s mode)", self.wandb_run.name, mode)

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        record = {"step": step, **metrics}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        log.info("step %d: %s", step, "  ".join(f"{key} {_format(value)}" for key, value in metrics.items()))
        if self.wandb_run is not None:
            self._to_wandb(lambda run: run.log(dict(metrics), step=step))

    def close(self) -> None:
        if self.wandb_run is not None:
            self._to_wandb(lambda run: run.finish())
            self.wandb_run = None

    def _to_wandb(self, send: Callable[[Any], None]) -> None:
        """Tracking never costs a checkpoint: a job-wide SIGTERM also ends wandb's service process, whose
        run then raises on every call; wandb is dropped with a warning and metrics.jsonl goes on."""
        try:
            send(self.wandb_run)
        except Exception as error:  # noqa: BLE001 - whatever wandb raises, training goes on
            log.warning("wandb failed (%s: %s); metrics go on to %s only", type(error).__name__, error, self.path)
            self.wandb_run = None


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
