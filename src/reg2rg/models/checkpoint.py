"""Compact checkpoints: what trains, the config and what the model was trained with, the tokenizer.

A checkpoint directory holds::

    reg2rg_config.json          {"model": the model's resolved config (Reg2RG keyword arguments),
                                 "trained_with": the data settings, fidelity mode and evaluation decoding
                                 of the run that trained it ({} when saved outside a run)}
    reg2rg_modules.safetensors  every saved parameter outside the LoRA adapter: Perceiver, fc, mask encoder,
                                marker embeddings, plus frozen parameters that no configured file can
                                restore (a randomly initialised ViT or LLM: the tiny test and demo models)
    adapter/                    the LLM's LoRA as a PEFT adapter folder (adapter_config.json,
                                adapter_model.safetensors): peft.PeftModel.from_pretrained(base_llm, it)
    tokenizer files             with the added marker and placeholder tokens
    digests.json                SHA-256 of every other file of the folder, written last

The file names are reg2rg's own, so that no tool takes the folder for a Hugging Face model. Frozen
pretrained weights (``llm.name_or_path``, ``vit_checkpoint``, ``perceiver_checkpoint``) re-load from
their configured paths. The directory is written beside its destination and renamed into place, so a
crash never leaves a half-written checkpoint; loading reads no pickle, checks the digests of what it
reads, and never lets a model's own Python code run because the config asks for it
(``llm.extra.trust_remote_code`` is dropped with a warning). A checkpoint of the earlier layout
(``config.json`` + ``model.safetensors``) still loads.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..constants import VERSION
from ..files import atomic_write_bytes, file_sha256
from ..text.tokenizer import load_tokenizer
from .llm import REMOTE_CODE
from .pretrained import mismatch_report
from .reg2rg import Reg2RG

log = logging.getLogger(__name__)

CONFIG = "reg2rg_config.json"
MODULES = "reg2rg_modules.safetensors"
ADAPTER = "adapter"  # a PEFT adapter folder
ADAPTER_CONFIG = f"{ADAPTER}/adapter_config.json"
ADAPTER_WEIGHTS = f"{ADAPTER}/adapter_model.safetensors"
DIGESTS = "digests.json"
# The layout before reg2rg_config.json: a flat model config and one weights file; still loaded.
LEGACY_CONFIG = "config.json"
LEGACY_WEIGHTS = "model.safetensors"


class DamagedCheckpointError(ValueError):
    """A checkpoint file that is missing, unreadable or not what was written (its digest differs)."""

    def __init__(self, path: Path, problem: str):
        self.path = path
        super().__init__(f"{path}: {problem}")


def save_checkpoint(
    model: Reg2RG,
    directory: str | Path,
    before_commit: Callable[[Path], None] | None = None,
    trained_with: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model`` to ``directory`` (replacing it); ``before_commit(staging_dir)`` may add files.

    ``trained_with``: what the model was trained with (``reg2rg.training.config.trained_with``: data
    settings, fidelity mode, evaluation decoding), recorded for ``scripts/generate.py`` and the viewers.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        adapter = adapter_parameter_names(model)
        modules = {
            name: p.detach().cpu().contiguous()
            for name, p in model.persistent_parameters().items()
            if name not in adapter
        }
        save_file(modules, staging / MODULES, metadata={"format": "pt", "reg2rg_version": VERSION})
        if adapter:
            _save_adapter(model.llm, staging / ADAPTER)
        record = {"reg2rg_version": VERSION, "model": model.config, "trained_with": dict(trained_with or {})}
        (staging / CONFIG).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if getattr(model, "tokenizer", None) is not None:  # a family without text has none
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


def adapter_parameter_names(model: Reg2RG) -> set[str]:
    """The LLM's LoRA parameters (``llm.*lora_*``), which the PEFT adapter folder holds; empty without LoRA."""
    from peft import PeftModel

    if not isinstance(getattr(model, "llm", None), PeftModel):  # a family without an LLM has no adapter
        return set()
    return {f"llm.{name}" for name, _ in model.llm.named_parameters() if "lora_" in name}


def _save_adapter(llm: nn.Module, folder: Path) -> None:
    """The LoRA weights and config as ``PeftModel.save_pretrained`` writes them (no model card, no hub look-up)."""
    from peft import get_peft_model_state_dict

    folder.mkdir()
    state = get_peft_model_state_dict(llm, save_embedding_layers=False)  # keys without the adapter name
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in state.items()},
        folder / Path(ADAPTER_WEIGHTS).name,
        metadata={"format": "pt"},
    )
    config = copy.deepcopy(llm.peft_config["default"])
    config.inference_mode = True  # as peft saves it; PeftModel.from_pretrained(is_trainable=True) trains it again
    config.save_pretrained(str(folder))


def checkpoint_files(directory: str | Path) -> tuple[str, ...]:
    """The config and weight files ``from_pretrained`` reads, relative to ``directory``.

    Raises ``FileNotFoundError`` for a folder that is no reg2rg checkpoint of either layout.
    """
    directory = Path(directory)
    if (directory / CONFIG).is_file():
        if not (directory / MODULES).is_file():
            raise FileNotFoundError(f"{directory} is not a complete reg2rg checkpoint: {MODULES} is missing")
        adapter = (ADAPTER_CONFIG, ADAPTER_WEIGHTS) if (directory / ADAPTER).is_dir() else ()
        return (CONFIG, MODULES, *adapter)
    if (directory / LEGACY_CONFIG).is_file() and (directory / LEGACY_WEIGHTS).is_file():
        return LEGACY_CONFIG, LEGACY_WEIGHTS
    raise FileNotFoundError(f"{directory} is not a reg2rg checkpoint: {CONFIG} is missing")


def from_pretrained(
    directory: str | Path, device: str | None = None, trust_remote_code: bool = False, **overrides: Any
) -> Reg2RG:
    """Rebuild a model from a checkpoint directory, in eval mode.

    The config and weights are checked against their recorded digests. ``trust_remote_code``: let the
    LLM's and tokenizer's own Python code run (the checkpoint's config cannot ask for it). ``overrides``
    replace top-level config keys, e.g. ``vit_checkpoint="/new/place/RadFM_vit3d.pth"`` when the frozen
    weights moved.
    """
    directory = Path(directory)
    verify_digests(directory, checkpoint_files(directory))
    config = read_config(directory)
    unknown = sorted(overrides.keys() - config.keys())
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; a checkpoint config has {sorted(config)}")
    tokenizer = load_tokenizer(str(directory), trust_remote_code)
    model = Reg2RG(**{**config, **overrides}, tokenizer=tokenizer, trust_remote_code=trust_remote_code)
    load_weights(model, directory)
    return model.to(device).eval()


def _read_record(directory: Path) -> tuple[Path, dict[str, Any]]:
    """(the config file, its content as {"model": ..., "trained_with": ...}) of either layout."""
    path = directory / checkpoint_files(directory)[0]
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DamagedCheckpointError(path, f"cannot read the model config ({error})") from error
    if path.name == LEGACY_CONFIG:
        return path, {"model": content, "trained_with": {}}
    if not isinstance(content, dict) or not isinstance(content.get("model"), dict):
        raise DamagedCheckpointError(path, 'expected a JSON object with a "model" config')
    return path, content


def read_config(directory: str | Path) -> dict[str, Any]:
    """A checkpoint's model config, without any request to run the LLM's own code (dropped with a warning)."""
    path, record = _read_record(Path(directory))
    config = record["model"]
    extra = config.get("llm", {}).get("extra") if isinstance(config.get("llm"), dict) else None
    if isinstance(extra, dict) and REMOTE_CODE in extra:
        log.warning(
            "%s asks for llm.extra.trust_remote_code=%r: ignored, a checkpoint never lets code run (pass "
            "trust_remote_code=True to from_pretrained, or trust_remote_code=true to scripts/generate.py)",
            path,
            extra.pop(REMOTE_CODE),
        )
    return config


def read_trained_with(directory: str | Path) -> dict[str, Any]:
    """What the checkpoint's model was trained with (``data``, ``fidelity``, ``evaluation``); {} when not recorded
    (a checkpoint saved outside a training run, or of the earlier layout)."""
    return dict(_read_record(Path(directory))[1].get("trained_with") or {})


# The data settings a model is bound to: the viewers and scripts/generate.py take them from its checkpoint.
TRAINED_DATA_KEYS = ("lfd", "preprocessing", "region_set")
# A training run folder: <run>/config.yaml (reg2rg.training.run) beside <run>/checkpoints/checkpoint-<step>.
RUN_CONFIG = "config.yaml"


def run_config_path(directory: str | Path) -> Path:
    """Where the config of the run that wrote a training checkpoint lies (it may not exist)."""
    return Path(directory).absolute().parent.parent / RUN_CONFIG


def trained_data_section(directory: str | Path) -> dict[str, Any] | None:
    """The ``data`` section of the run that trained the checkpoint's model: recorded in the checkpoint, or, for a
    checkpoint saved without it (an earlier version), its run folder's config.yaml; None without either."""
    recorded = read_trained_with(directory).get("data")
    if recorded:
        return recorded
    path = run_config_path(directory)
    if not path.is_file():
        return None
    from omegaconf import OmegaConf

    data = OmegaConf.load(path).get("data")
    return OmegaConf.to_container(data, resolve=True) if data is not None else None


def trained_data_settings(data: Mapping[str, Any]) -> dict[str, Any]:
    """The ``TRAINED_DATA_KEYS`` of a data section as dotted keys (``lfd``, ``preprocessing.target_size``, ...)."""
    from omegaconf import DictConfig, OmegaConf

    plain = OmegaConf.to_container(data, resolve=True) if isinstance(data, DictConfig) else dict(data)
    settings: dict[str, Any] = {}
    for key in TRAINED_DATA_KEYS:
        value = plain.get(key)
        if isinstance(value, Mapping):
            settings.update({f"{key}.{name}": item for name, item in value.items()})
        elif value is not None:
            settings[key] = value
    return settings


def _read_weights(path: Path) -> dict:
    try:
        return load_file(path)
    except (SafetensorError, OSError) as error:
        raise DamagedCheckpointError(path, f"cannot read the weights ({error})") from error


def load_weights(model: Reg2RG, directory: str | Path) -> None:
    """Load a checkpoint's weights into ``model`` (built from the checkpoint's config); any mismatch raises."""
    directory = Path(directory)
    files = checkpoint_files(directory)
    persistent = model.persistent_parameters()
    adapter = adapter_parameter_names(model) if LEGACY_WEIGHTS not in files else set()
    path = directory / files[1]
    state = _read_weights(path)
    report = mismatch_report({n: p for n, p in persistent.items() if n not in adapter}, state)
    if report:
        raise ValueError(f"{path} does not match the model its config builds: {report}")
    model.load_state_dict(state, strict=False)
    if adapter and ADAPTER_WEIGHTS not in files:
        raise ValueError(f"{directory / ADAPTER_WEIGHTS} is missing: the checkpoint's config builds an LLM with LoRA")
    if ADAPTER_WEIGHTS in files:
        if not adapter:
            raise ValueError(
                f"{directory / ADAPTER}: a LoRA adapter, but the checkpoint's config builds an LLM without LoRA"
            )
        _load_adapter(model.llm, directory / ADAPTER_WEIGHTS)


def _load_adapter(llm: nn.Module, path: Path) -> None:
    """The adapter's weights into the LLM's LoRA layers; a missing, extra or wrongly shaped key raises."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    state = _read_weights(path)
    report = mismatch_report(get_peft_model_state_dict(llm, save_embedding_layers=False), state)
    if report:
        raise ValueError(f"{path} does not match the LoRA layers the checkpoint's config builds: {report}")
    set_peft_model_state_dict(llm, state)


def checkpoint_record(directory: str | Path) -> dict[str, str]:
    """Which checkpoint made a set of predictions: its path (for the reader) and its weights' digest."""
    return {"checkpoint": str(Path(directory).resolve()), "weights": weights_digest(directory)}


def weights_digest(directory: str | Path) -> str:
    """SHA-256 of a checkpoint's weights: which weights made a set of predictions, whatever the path.

    The weights file's own SHA-256 for one file; with an adapter, the SHA-256 of the lines
    ``<file> <its SHA-256>`` of both weight files.
    """
    directory = Path(directory)
    weights = [name for name in checkpoint_files(directory)[1:] if name.endswith(".safetensors")]
    if len(weights) == 1:
        return file_sha256(directory / weights[0])
    lines = "".join(f"{name} {file_sha256(directory / name)}\n" for name in weights)
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def write_digests(folder: Path) -> None:
    """Record the SHA-256 of every file under ``folder`` (by path relative to it) in ``folder/digests.json``."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != DIGESTS)
    digests = {p.relative_to(folder).as_posix(): file_sha256(p) for p in files}
    atomic_write_bytes(folder / DIGESTS, (json.dumps(digests, indent=2) + "\n").encode("utf-8"))


def verify_digests(directory: str | Path, names: tuple[str, ...] | None = None) -> bool:
    """Check the files of a checkpoint (``names`` only, when given) against ``digests.json``.

    Raises ``DamagedCheckpointError`` naming the first file that is missing or differs; returns False
    (checking nothing) for a checkpoint of the earlier layout written before digests were recorded.
    """
    directory = Path(directory)
    record = directory / DIGESTS
    if not record.is_file():
        if (directory / CONFIG).is_file():  # this layout is always written with its digests
            raise DamagedCheckpointError(record, f"missing: a {CONFIG} checkpoint records its digests there")
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
