"""Compact checkpoints: what trains, the resolved config and the tokenizer; ``from_pretrained(dir)``.

A checkpoint directory holds::

    model.safetensors   every parameter that trains (LoRA adapter, Perceiver, fc, mask encoder,
                        marker embeddings) plus frozen parameters that no configured file can
                        restore (a randomly initialised ViT or LLM: the tiny test and demo models)
    config.json         the model's resolved config (Reg2RG keyword arguments)
    tokenizer files     with the added marker and placeholder tokens
    digests.json        SHA-256 of every other file of the folder, written last

Frozen pretrained weights (``llm.name_or_path``, ``vit_checkpoint``, ``perceiver_checkpoint``)
re-load from their configured paths. The directory is written beside its destination and renamed
into place, so a crash never leaves a half-written checkpoint; loading reads no pickle, checks the
digests of what it reads, and never lets a model's own Python code run because the config asks
for it (``llm.extra.trust_remote_code`` is dropped with a warning).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..constants import VERSION
from ..files import atomic_write_bytes, file_sha256
from ..text.tokenizer import load_tokenizer
from .llm import REMOTE_CODE
from .pretrained import mismatch_report
from .reg2rg import Reg2RG

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
DIGESTS = "digests.json"


class DamagedCheckpointError(ValueError):
    """A checkpoint file that is missing, unreadable or not what was written (its digest differs)."""

    def __init__(self, path: Path, problem: str):
        self.path = path
        super().__init__(f"{path}: {problem}")


def save_checkpoint(
    model: Reg2RG, directory: str | Path, before_commit: Callable[[Path], None] | None = None
) -> Path:
    """Write ``model`` to ``directory`` (replacing it); ``before_commit(staging_dir)`` may add files."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        tensors = {name: p.detach().cpu().contiguous() for name, p in model.persistent_parameters().items()}
        save_file(tensors, staging / WEIGHTS, metadata={"format": "pt", "reg2rg_version": VERSION})
        (staging / CONFIG).write_text(json.dumps(model.config, indent=2) + "\n", encoding="utf-8")
        model.tokenizer.save_pretrained(staging)
        if before_commit is not None:
            before_commit(staging)
        write_digests(staging)
        _sync(staging)
        _swap_into_place(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def from_pretrained(directory: str | Path, device: str | None = None, trust_remote_code: bool = False,
                    **overrides: Any) -> Reg2RG:
    """Rebuild a model from a checkpoint directory, in eval mode.

    The config and weights are checked against their recorded digests. ``trust_remote_code``: let the
    LLM's and tokenizer's own Python code run (the checkpoint's config cannot ask for it). ``overrides``
    replace top-level config keys, e.g. ``vit_checkpoint="/new/place/RadFM_vit3d.pth"`` when the frozen
    weights moved.
    """
    directory = Path(directory)
    for name in (CONFIG, WEIGHTS):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory} is not a reg2rg checkpoint: {name} is missing")
    verify_digests(directory, (CONFIG, WEIGHTS))
    config = read_config(directory / CONFIG)
    unknown = sorted(overrides.keys() - config.keys())
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; a checkpoint config has {sorted(config)}")
    tokenizer = load_tokenizer(str(directory), trust_remote_code)
    model = Reg2RG(**{**config, **overrides}, tokenizer=tokenizer, trust_remote_code=trust_remote_code)
    load_weights(model, directory)
    return model.to(device).eval()


def read_config(path: Path) -> dict[str, Any]:
    """A checkpoint's model config, without any request to run the LLM's own code (dropped with a warning)."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DamagedCheckpointError(path, f"cannot read the model config ({error})") from error
    extra = config.get("llm", {}).get("extra") if isinstance(config.get("llm"), dict) else None
    if isinstance(extra, dict) and REMOTE_CODE in extra:
        log.warning(
            "%s asks for llm.extra.trust_remote_code=%r: ignored, a checkpoint never lets code run (pass "
            "trust_remote_code=True to from_pretrained, or trust_remote_code=true to scripts/generate.py)",
            path, extra.pop(REMOTE_CODE),
        )
    return config


def load_weights(model: Reg2RG, directory: str | Path) -> None:
    """Load a checkpoint's weights into ``model`` (built from the checkpoint's config); any mismatch raises."""
    path = Path(directory) / WEIGHTS
    try:
        state = load_file(path)
    except (SafetensorError, OSError) as error:
        raise DamagedCheckpointError(path, f"cannot read the weights ({error})") from error
    report = mismatch_report(model.persistent_parameters(), state)
    if report:
        raise ValueError(f"{path} does not match the model its config builds: {report}")
    model.load_state_dict(state, strict=False)


def checkpoint_record(directory: str | Path) -> dict[str, str]:
    """Which checkpoint made a set of predictions: its path (for the reader) and its weights' digest."""
    return {"checkpoint": str(Path(directory).resolve()), "weights": weights_digest(directory)}


def weights_digest(directory: str | Path) -> str:
    """SHA-256 of a checkpoint's weights file: which weights made a set of predictions, whatever the path."""
    return file_sha256(Path(directory) / WEIGHTS)


def write_digests(folder: Path) -> None:
    """Record the SHA-256 of every file under ``folder`` (by path relative to it) in ``folder/digests.json``."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != DIGESTS)
    digests = {p.relative_to(folder).as_posix(): file_sha256(p) for p in files}
    atomic_write_bytes(folder / DIGESTS, (json.dumps(digests, indent=2) + "\n").encode("utf-8"))


def verify_digests(directory: str | Path, names: tuple[str, ...] | None = None) -> bool:
    """Check the files of a checkpoint (``names`` only, when given) against ``digests.json``.

    Raises ``DamagedCheckpointError`` naming the first file that is missing or differs; returns False
    (checking nothing) for a checkpoint written before digests were recorded.
    """
    directory = Path(directory)
    record = directory / DIGESTS
    if not record.is_file():
        log.warning("%s has no %s (written by an earlier version): its files cannot be checked", directory, DIGESTS)
        return False
    try:
        digests = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DamagedCheckpointError(record, f"cannot read the recorded digests ({error})") from error
    if not isinstance(digests, dict):
        raise DamagedCheckpointError(record, "expected a JSON object of file name -> SHA-256")
    for name in names or sorted(digests):
        path = directory / name
        if name not in digests:
            raise DamagedCheckpointError(path, f"no digest recorded in {record}")
        if not path.is_file():
            raise DamagedCheckpointError(path, f"missing (listed in {record})")
        if file_sha256(path) != digests[name]:
            raise DamagedCheckpointError(path, f"damaged: its SHA-256 differs from the one recorded in {record}")
    return True


def _sync(folder: Path) -> None:
    """Flush every file of ``folder`` to disk before the rename makes it visible."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def _swap_into_place(staging: Path, directory: Path) -> None:
    """Rename ``staging`` to ``directory``; an old ``directory`` is moved aside first, then removed."""
    if not directory.exists():
        os.replace(staging, directory)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old.", dir=directory.parent))
    os.replace(directory, retired / directory.name)
    os.replace(staging, directory)
    shutil.rmtree(retired)
