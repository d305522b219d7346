"""From a data config to a ready preprocessing cache: the one call scripts and training share."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from reg2rg.data.build import build_cache
from reg2rg.data.preprocessing import PreprocessConfig

log = logging.getLogger(__name__)


def preprocessing_config(data_cfg: DictConfig) -> PreprocessConfig:
    return PreprocessConfig(**OmegaConf.to_container(data_cfg.preprocessing, resolve=True))


def ensure_synthetic(data_cfg: DictConfig) -> None:
    """Write the synthetic dataset when the config asks for one and its folder holds none yet."""
    if data_cfg.get("synthetic") is None:
        return
    from reg2rg.data.synthetic import SyntheticConfig, write_dataset

    root = Path(data_cfg.root)
    if (root / "radgenome_files" / "validation_region_report.csv").is_file():
        return
    log.info("generating the synthetic dataset in %s", root)
    write_dataset(root, SyntheticConfig(**OmegaConf.to_container(data_cfg.synthetic, resolve=True)))


def prepare_dataset(data_cfg: DictConfig, splits: list[str], workers: int = 1) -> dict[str, dict]:
    """Read each split with the configured reader and bring its cache up to date; returns the reports."""
    from hydra.utils import instantiate

    ensure_synthetic(data_cfg)
    reader = instantiate(data_cfg.reader)
    cfg = preprocessing_config(data_cfg)
    reports = {}
    for split in splits:
        index = reader.read(split)
        reports[split] = build_cache(index.records, data_cfg.cache_dir, split, cfg, workers=workers, grid=data_cfg.grid, skips=index.skips)
        reports[split]["ignored"] = dict(index.ignored)
    return reports
