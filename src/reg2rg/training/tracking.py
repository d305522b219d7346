"""Where training metrics go: the console, ``metrics.jsonl`` in the run folder, and Weights & Biases;
``loss_curve.png`` beside them plots the loss and learning rate (redrawn at each checkpoint).

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

from reg2rg.files import atomic_path, atomic_write_bytes

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
LOSS_CURVE_FILE = "loss_curve.png"
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

    def plot(self) -> Path:
        """Redraw ``loss_curve.png`` from every record of ``metrics.jsonl`` (those of earlier sessions of a resumed run too)."""
        return plot_loss_curve(read_metrics(self.path), self.path.parent / LOSS_CURVE_FILE)

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


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl by step; a step logged twice (a run killed between a log and its
    checkpoint, then resumed) keeps its later record; a line cut off by a crash is skipped with a warning."""
    by_step: dict[int, dict[str, Any]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            record = json.loads(line)
        except ValueError:
            log.warning("%s, line %d: not JSON (cut off by a crash?); left out of the loss curve", path, number)
            continue
        by_step[record["step"]] = record
    return [by_step[step] for step in sorted(by_step)]


def plot_loss_curve(records: list[dict[str, Any]], path: Path) -> Path:
    """Training loss (log scale) and learning rate (right axis) against the optimizer step, as a PNG written
    beside ``path`` and renamed over it (matplotlib's Agg canvas: no display, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    logged = [record for record in records if "loss" in record]
    steps = [record["step"] for record in logged]
    figure = Figure(figsize=(7, 4), dpi=110)
    FigureCanvasAgg(figure)
    loss_axis = figure.subplots()
    marker = "." if len(logged) < 50 else None  # a few logs (or one) stay visible
    loss_axis.plot(steps, [record["loss"] for record in logged], marker=marker, color="tab:blue", label="loss")
    if logged and min(record["loss"] for record in logged) > 0:
        loss_axis.set_yscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:g}")  # 0.6, not 6 x 10^-1
        loss_axis.yaxis.set_major_formatter(plain)
        loss_axis.yaxis.set_minor_formatter(plain)
    loss_axis.set_xlabel("optimizer step")
    loss_axis.set_ylabel("training loss (mean since the previous log)", color="tab:blue")
    lr_axis = loss_axis.twinx()
    lr_axis.plot(
        steps,
        [record.get("lr", float("nan")) for record in logged],
        marker=marker,
        color="tab:grey",
        linestyle="--",
        label="lr",
    )
    lr_axis.set_ylabel("learning rate", color="tab:grey")
    loss_axis.set_title(
        f"Training loss, {len(logged)} log{'s' * (len(logged) != 1)} up to step {steps[-1] if steps else 0}"
    )
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    return path


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
