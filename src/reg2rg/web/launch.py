"""From ``configs/serve.yaml`` to a running server: the demo's checkpoints and cache found when none are named."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from reg2rg.web.app import ServeSettings

log = logging.getLogger(__name__)

DEMO_DATA = Path("data/synthetic/cache")
DEMO_CHECKPOINTS = "outputs/train/demo/*/checkpoints/checkpoint-*"  # python scripts/train.py
ISRG_CHECKPOINTS = "outputs/train/*isrg*/*/checkpoints/checkpoint-*"  # an ISRG-CT experiment's runs
MAKE_DEMO = "python scripts/train.py   # the demo: writes data/synthetic/cache and outputs/train/demo/<run>/checkpoints"
MAKE_ISRG = "python scripts/train.py experiment=<an ISRG-CT experiment>   # lesion mode's model"


def newest_checkpoint(pattern: str) -> Path | None:
    """The last checkpoint of the newest run matching ``pattern`` (run folders are named by their start time)."""

    def order(path: Path) -> tuple[str, int]:
        step = re.search(r"(\d+)$", path.name)
        return path.parent.parent.name, int(step.group(1)) if step else -1

    found = [path for path in Path().glob(pattern) if path.is_dir()]
    return max(found, key=order) if found else None


def settings_from_config(cfg: Any) -> tuple[ServeSettings, list[str]]:
    """(the settings, what is missing and how to make it); named paths that do not exist are an error."""
    missing = []
    named = {key: cfg.get(key) for key in ("data", "checkpoint", "isrg_checkpoint")}
    for key, value in named.items():
        if value is not None and not Path(value).exists():
            raise FileNotFoundError(f"{key}={value} does not exist")
    data = Path(named["data"]) if named["data"] else (DEMO_DATA if DEMO_DATA.is_dir() else None)
    checkpoint = Path(named["checkpoint"]) if named["checkpoint"] else newest_checkpoint(DEMO_CHECKPOINTS)
    isrg = Path(named["isrg_checkpoint"]) if named["isrg_checkpoint"] else newest_checkpoint(ISRG_CHECKPOINTS)
    if data is None:
        missing.append(f"no data=...: and no demo cache at {DEMO_DATA}; make it with: {MAKE_DEMO}")
    if checkpoint is None:
        missing.append(f"no checkpoint=...: and no demo checkpoint ({DEMO_CHECKPOINTS}); make it with: {MAKE_DEMO}")
    if isrg is None:
        missing.append(f"no isrg_checkpoint=...: and none at {ISRG_CHECKPOINTS}; make one with: {MAKE_ISRG}")
    roots = [Path(root) for root in cfg.data_roots]
    if data is not None and not any(data.resolve().is_relative_to(root.resolve()) for root in roots):
        roots.append(data)  # the folder named on the command line may be read
    settings = ServeSettings(
        data=data,
        data_roots=roots,
        work_dir=Path(cfg.work_dir),
        checkpoint=checkpoint,
        isrg_checkpoint=isrg,
        max_upload_mb=float(cfg.max_upload_mb),
        max_voxels=int(cfg.max_voxels),
        device=cfg.device or "cpu",
        max_new_tokens=int(cfg.max_new_tokens),
    )
    return settings, missing


def serve(settings: ServeSettings, host: str, port: int) -> None:
    import uvicorn

    from reg2rg.web.app import create_app

    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: anyone who can reach this machine can open the studies under the data roots", host)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
