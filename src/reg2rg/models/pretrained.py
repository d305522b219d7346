"""Read weight files safely and load them strictly, with a report that names every mismatch.

``.safetensors`` files are read with safetensors; anything else (RadFM's ``.pth``, ``.bin``) goes
through ``torch.load(weights_only=True)``, which refuses pickled code: a file that would run
something on load raises ``ValueError`` and nothing runs.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn


def torch_load_safely(path: Path, map_location: Any = "cpu", allowed: Sequence[type] = ()) -> Any:
    """``torch.load(weights_only=True)``: tensors, Python primitives and the ``allowed`` classes, never code.

    A file that would call anything else raises ``ValueError`` naming the file and what it would have called;
    a truncated or damaged file raises torch's ``RuntimeError`` / ``EOFError`` for the caller to name.
    """
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))  # what the file would have called
        held = f"{found[1]}, not only tensors" if found else "more than tensors"
        raise ValueError(f"{path}: refusing to unpickle it: it holds {held} (weights_only=True)") from error


def read_tensors(path: str | Path) -> dict:
    """The tensors of ``path`` (a flat state dict or a dict of them), never unpickling code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weight file not found: {path}")
    if path.suffix == ".safetensors":
        try:
            return load_file(path)
        except SafetensorError as error:
            raise ValueError(f"{path}: not a readable safetensors file ({error})") from error
    try:
        state = torch_load_safely(path)
    except (RuntimeError, EOFError) as error:  # a truncated or damaged file
        raise ValueError(f"{path}: not a readable torch file ({error})") from error
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: expected a dict of tensors, found {type(state).__name__}")
    return dict(state)


def mismatch_report(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> str:
    """Missing, unexpected and wrongly shaped keys of ``state`` against ``expected`` ('' when they match)."""
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    shapes = [
        f"{key}: file {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in sorted(expected.keys() & state.keys())
        if state[key].shape != expected[key].shape
    ]
    lines = [
        f"{title} ({len(keys)}): {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes))
        if keys
    ]
    return "; ".join(lines)


def load_pretrained(module: nn.Module, path: str | Path, entry: str | None = None) -> None:
    """Load ``path`` into ``module`` with strict=True.

    ``entry`` names a sub-dict to take when the file has one (RadFM's ``RadFM_perceiver_fc.pth``
    holds the resampler under ``"perceiver"``); a file without it is taken as the state dict itself.
    """
    state = read_tensors(path)
    if entry is not None and isinstance(state.get(entry), Mapping):
        state = state[entry]
    report = mismatch_report(module.state_dict(), state)
    if report:
        raise ValueError(f"{path} does not match {type(module).__name__}: {report}")
    module.load_state_dict(state, strict=True)
