"""From a data config to a ready preprocessing cache: the one call scripts and training share."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from reg2rg.data.build import build_cache
from reg2rg.data.errors import MAX_VOXELS
from reg2rg.data.preprocessing import PreprocessConfig
from reg2rg.files import atomic_write_bytes

log = logging.getLogger(__name__)

MANAGED = ".synthetic/written_from_config"  # marks a synthetic folder that follows data.synthetic
SYNTHETIC = "synthetic"  # data.name of the one data config whose root is generated (configs/data/synthetic.yaml)


def preprocessing_config(data_cfg: DictConfig) -> PreprocessConfig:
    return PreprocessConfig(**OmegaConf.to_container(data_cfg.preprocessing, resolve=True))


def ensure_synthetic(data_cfg: DictConfig) -> None:
    """Write or complete the synthetic dataset the config asks for (a no-op for real data).

    Only ``data=synthetic`` generates: a ``data.synthetic`` section under another data config (the demo
    experiment's, with ``data=radgenome``) is ignored with a warning, so a wrong ``data.root`` of a real
    dataset is reported by its reader instead of filled with phantoms.

    A folder this function wrote (it holds ``MANAGED``) follows the config: studies with the same
    settings are reused, a changed ``n_train``, ``n_valid`` or phantom setting is generated. A
    dataset written otherwise (``scripts/make_synthetic.py``) is never rewritten: it is used when it
    matches the config, else the run stops with what to do.
    """
    if data_cfg.get("synthetic") is None:
        return
    if data_cfg.get("name") != SYNTHETIC:
        log.warning(
            "data.synthetic is ignored: data=%s reads its files from %s; only data=%s generates data",
            data_cfg.get("name"),
            data_cfg.get("root"),
            SYNTHETIC,
        )
        return
    from tqdm import tqdm

    from reg2rg.data.synthetic import SyntheticConfig, dataset_matches, summary_line, write_dataset

    root = Path(data_cfg.root)
    settings = OmegaConf.to_container(data_cfg.synthetic, resolve=True)
    config = SyntheticConfig(**settings)
    if dataset_matches(root, config):
        return
    if (root / "radgenome_files").is_dir() and not (root / MANAGED).is_file():
        raise ValueError(
            f"{root} holds a synthetic dataset written with other settings than data.synthetic ({settings}); "
            "pass the settings it was written with, point data.root to another folder, or delete it to have it generated"
        )
    atomic_write_bytes(root / MANAGED, b"written by reg2rg from data.synthetic; rewritten when that changes\n")
    with tqdm(total=config.n_train + config.n_valid, unit="study", desc="synthetic data", leave=False) as bar:
        summary = write_dataset(root, config, on_study=lambda _: bar.update())
    if summary["generated"]:
        log.info("%s", summary_line(summary))


def prepare_dataset(
    data_cfg: DictConfig, splits: list[str], workers: int = 1, synthesize: bool = True
) -> dict[str, dict]:
    """Read each split with the configured reader and bring its cache up to date; returns the reports.

    ``synthesize``: first write or complete the synthetic dataset the config asks for (``ensure_synthetic``).
    """
    from hydra.utils import instantiate

    if synthesize:
        ensure_synthetic(data_cfg)
    reader = instantiate(data_cfg.reader)
    cfg = preprocessing_config(data_cfg)
    reports = {}
    for split in splits:
        index = reader.read(split)
        reports[split] = build_cache(
            index.records,
            data_cfg.cache_dir,
            split,
            cfg,
            workers=workers,
            grid=data_cfg.grid,
            skips=index.skips,
            max_voxels=data_cfg.get("max_voxels", MAX_VOXELS),
            ignored=index.ignored,
        )
    return reports
