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
    """Write or complete the synthetic dataset the config asks for (a no-op for real data).

    Studies already on disk with the same phantom settings are reused, so a first run generates
    everything and a changed ``n_train``, ``n_valid`` or phantom setting takes effect instead of
    silently training on the old dataset.
    """
    if data_cfg.get("synthetic") is None:
        return
    from tqdm import tqdm

    from reg2rg.data.synthetic import SyntheticConfig, summary_line, write_dataset

    config = SyntheticConfig(**OmegaConf.to_container(data_cfg.synthetic, resolve=True))
    with tqdm(total=config.n_train + config.n_valid, unit="study", desc="synthetic data", leave=False) as bar:
        summary = write_dataset(Path(data_cfg.root), config, on_study=lambda _: bar.update())
    if summary["generated"]:
        log.info("%s", summary_line(summary))


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
