"""Before a training run starts: every problem that would stop it later, found in seconds; and clearing
the run folder that a failed start leaves behind.

``check_training_start(cfg)`` raises one ``PrerequisitesMissing`` that lists them all: the data (its
folder or manifest, or the cache when ``prepare_data=false``), DeepSpeed when the ``deepspeed`` config
selected will be used, the RadFM weight files, a writable run folder, and what the evaluation after training needs
(``reg2rg.evaluation.prerequisites``). ``scripts/train.py`` calls it before DeepSpeed, the data
preparation or the model start; from a notebook, call it before ``train(cfg)``. Like the launcher,
this module imports nothing heavy at import time.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from reg2rg.evaluation.prerequisites import PrerequisitesMissing, evaluation_problems, output_folder_problems

from .deepspeed_config import deepspeed_for

log = logging.getLogger(__name__)

TRAIN_SPLIT = "train"
GENERATED_DATA = "synthetic"  # reg2rg.data.prepare.SYNTHETIC (a torch import away): the data written when absent
WEIGHT_FILES = {"vit_checkpoint": "RadFM_vit3d.pth", "perceiver_checkpoint": "RadFM_perceiver_fc.pth"}
DEEPSPEED_FIX = 'pip install -e ".[deepspeed]", or train without it: add the override ~deepspeed'
# What a start writes before the first training step: Hydra's folder and log, the trained tokenizer,
# deepspeed.json, config.yaml and the wandb run. A folder holding anything else (checkpoints,
# metrics.jsonl, a user's files) is never removed.
START_FILES = frozenset({".hydra", "train.log", "tokenizer", "deepspeed.json", "config.yaml", "wandb", "wandb_run_id"})


def splits(cfg: DictConfig) -> list[str]:
    """The splits a run reads: the training split, and the evaluation split when it evaluates."""
    return [TRAIN_SPLIT, cfg.evaluation.split] if cfg.evaluation.enabled else [TRAIN_SPLIT]


def output_dir(cfg: DictConfig) -> str:
    """The run folder; by default Hydra's, which exists only when Hydra runs the job (scripts/train.py)."""
    try:
        return str(cfg.output_dir)
    except InterpolationResolutionError as error:
        reason = str(error).splitlines()[0]
        raise ValueError(
            f"output_dir cannot be resolved ({reason}): it defaults to Hydra's run folder, which exists only under "
            "scripts/train.py; set output_dir=... when you compose the config yourself"
        ) from error


def check_training_start(cfg: DictConfig) -> None:
    """Raise ``PrerequisitesMissing`` listing every problem below, each with its fix; return when there is none."""
    problems = [*data_problems(cfg), *deepspeed_problems(cfg), *weight_file_problems(cfg)]
    run_dir = Path(output_dir(cfg))
    if cfg.evaluation.enabled:
        problems += evaluation_problems(
            list(cfg.evaluation.protocols), output_dir=run_dir, protocols_setting="evaluation.protocols"
        )
    else:
        problems += output_folder_problems(run_dir)
    if problems:
        raise PrerequisitesMissing(problems)


def data_problems(cfg: DictConfig) -> list[str]:
    """The data a run reads: the cache's split files with ``prepare_data=false``; else the dataset folder
    (``data.root``) or manifest (``data.reader.path``), and a ``data.cache_dir``. The synthetic data's
    folder is written when absent."""
    data = cfg.data
    if OmegaConf.is_missing(data, "cache_dir"):
        problems = ["data.cache_dir is not set: add data.cache_dir=/path/to/cache (where the preprocessed studies go)"]
    elif not cfg.prepare_data:
        return cache_problems(cfg)
    else:
        problems = []
    if "root" in data.keys() and data.name != GENERATED_DATA:
        if OmegaConf.is_missing(data, "root"):
            problems.append(f"data.root is not set: add data.root=/path/to/{data.name} (its layout: data/README.md)")
        elif not Path(data.root).is_dir():
            problems.append(
                f"data.root {data.root} is not a folder: point data.root at the {data.name} dataset "
                "(its layout: data/README.md)"
            )
    reader = data.get("reader") or {}
    if "path" in reader.keys():
        if OmegaConf.is_missing(reader, "path"):
            problems.append("data.reader.path is not set: add data.reader.path=/path/to/manifest.csv (or .jsonl)")
        elif not Path(reader.path).is_file():
            problems.append(
                f"data.reader.path {reader.path} is not a file: give the manifest's path (its format: data/README.md)"
            )
    return problems


def cache_problems(cfg: DictConfig) -> list[str]:
    """With ``prepare_data=false`` the run reads the cache as it is: each split's index must be there."""
    cache = Path(cfg.data.cache_dir)
    absent = [f"{split}.jsonl" for split in splits(cfg) if not (cache / f"{split}.jsonl").is_file()]
    if absent:
        return [
            f"prepare_data=false, and the cache {cache} has no {' or '.join(absent)}: build it (prepare_data=true, "
            f"or python scripts/preprocess.py data={cfg.data.name} ...) or set data.cache_dir=..."
        ]
    return []


def deepspeed_problems(cfg: DictConfig) -> list[str]:
    """A ``deepspeed`` config that the run will use needs the package (an optional dependency). The run's
    processes: the launcher's WORLD_SIZE."""
    selected = cfg.get("deepspeed")
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    used = selected is not None and deepspeed_for(OmegaConf.to_container(selected), processes) is not None
    if used and importlib.util.find_spec("deepspeed") is None:
        return [
            f"a deepspeed config is selected (the paper experiments select deepspeed=zero2_multi_gpu: ZeRO-2 on "
            f"2 or more processes), and DeepSpeed is not installed: {DEEPSPEED_FIX}"
        ]
    return []


def weight_file_problems(cfg: DictConfig) -> list[str]:
    """``model.vit_checkpoint`` and ``model.perceiver_checkpoint``, when set, are files."""
    problems = []
    for key, name in WEIGHT_FILES.items():
        path = cfg.model.get(key)
        if path is not None and not Path(path).is_file():
            problems.append(
                f"model.{key} {path} is not a file: give RadFM's {name} (model.{key}=/models/{name}; "
                f'docs/reference.md, "RadFM weight files"), or model.{key}=null for a random one '
                "(not the paper)"
            )
    return problems


def remove_failed_start(*folders: str | Path) -> list[Path]:
    """Remove each run folder that holds nothing but what a start writes (``START_FILES``, empty folders):
    what a start that failed before training leaves. Returns the folders removed."""
    removed = []
    for folder in dict.fromkeys(Path(folder).absolute() for folder in folders):
        if folder.is_symlink() or not folder.is_dir():
            continue
        if all(entry.name in START_FILES or _empty_folder(entry) for entry in folder.iterdir()):
            shutil.rmtree(folder, ignore_errors=True)  # another process of the run may be removing it too
            if not folder.exists():
                log.warning("removed %s: the start failed before training, and it held nothing else", folder)
                removed.append(folder)
    return removed


def _empty_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())
