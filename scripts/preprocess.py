"""Build the preprocessing cache once per dataset: python scripts/preprocess.py data=radgenome data.root=/data/RadGenome"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../configs", config_name="preprocess")
def main(cfg: DictConfig) -> None:
    from reg2rg.data.prepare import prepare_dataset

    reports = prepare_dataset(cfg.data, list(cfg.splits), workers=cfg.workers)
    for split, report in reports.items():
        skipped = sum(report["skipped"].values())
        ratio = report["cache_bytes"] / max(report["source_bytes"], 1)
        print(
            f"{split}: {report['usable']}/{report['studies']} studies cached in {cfg.data.cache_dir} "
            f"({report['built']} built, {report['reused']} reused, {skipped} skipped {report['skipped']}); "
            f"cache/source size {ratio:.2f}"
        )


if __name__ == "__main__":
    main()
