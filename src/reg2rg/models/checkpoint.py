"""Compact checkpoints: what trains, the resolved config and the tokenizer; ``from_pretrained(dir)``.

A checkpoint directory holds::

    model.safetensors   every parameter that trains (LoRA adapter, Perceiver, fc, mask encoder,
                        marker embeddings) plus frozen parameters that no configured file can
                        restore (a randomly initialised ViT or LLM: the tiny test and demo models)
    config.json         the model's resolved config (Reg2RG keyword arguments)
    tokenizer files     with the added marker and placeholder tokens

Frozen pretrained weights (``llm.name_or_path``, ``vit_checkpoint``, ``perceiver_checkpoint``)
re-load from their configured paths. The directory is written beside its destination and renamed
into place, so a crash never leaves a half-written checkpoint; loading reads no pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from ..constants import VERSION
from ..text.tokenizer import load_tokenizer
from .pretrained import mismatch_report
from .reg2rg import Reg2RG

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


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
        _sync(staging)
        _swap_into_place(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def from_pretrained(directory: str | Path, device: str | None = None, **overrides: Any) -> Reg2RG:
    """Rebuild a model from a checkpoint directory, in eval mode.

    ``overrides`` replace top-level config keys, e.g. ``vit_checkpoint="/new/place/RadFM_vit3d.pth"``
    when the frozen weights moved.
    """
    directory = Path(directory)
    for name in (CONFIG, WEIGHTS):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory} is not a reg2rg checkpoint: {name} is missing")
    config = json.loads((directory / CONFIG).read_text(encoding="utf-8"))
    unknown = sorted(overrides.keys() - config.keys())
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; a checkpoint config has {sorted(config)}")
    model = Reg2RG(**{**config, **overrides}, tokenizer=load_tokenizer(str(directory)))
    load_weights(model, directory)
    return model.to(device).eval()


def load_weights(model: Reg2RG, directory: str | Path) -> None:
    """Load a checkpoint's weights into ``model`` (built from the checkpoint's config); any mismatch raises."""
    path = Path(directory) / WEIGHTS
    state = load_file(path)
    report = mismatch_report(model.persistent_parameters(), state)
    if report:
        raise ValueError(f"{path} does not match the model its config builds: {report}")
    model.load_state_dict(state, strict=False)


def checkpoint_record(directory: str | Path) -> dict[str, str]:
    """Which checkpoint made a set of predictions: its path (for the reader) and its weights' digest."""
    return {"checkpoint": str(Path(directory).resolve()), "weights": weights_digest(directory)}


def weights_digest(directory: str | Path) -> str:
    """SHA-256 of a checkpoint's weights file: which weights made a set of predictions, whatever the path."""
    digest = hashlib.sha256()
    with open(Path(directory) / WEIGHTS, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


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
