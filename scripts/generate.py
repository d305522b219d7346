"""Generate reports for a split into a predictions CSV (configs/generate.yaml).

After the demo (``python scripts/train.py``), with the data settings of the checkpoint's run:

    python scripts/generate.py checkpoint=outputs/train/demo/<run>/checkpoints/checkpoint-<step>

It writes ``<checkpoint>/predictions_valid.csv`` (``output=...`` elsewhere). Other data:
``data=radgenome data.root=/data/RadGenome-ChestCT/dataset split=valid``. The data settings the model was
trained with (LFD, preprocessing, region set) and its run's decoding come from the checkpoint; an override
that contradicts those data settings is refused.
"""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf


@hydra.main(version_base="1.3", config_path="../configs", config_name="generate")
def main(cfg: DictConfig) -> None:
    from reg2rg.evaluation.prerequisites import PrerequisitesMissing, check_evaluation_prerequisites

    if OmegaConf.is_missing(cfg, "checkpoint"):
        sys.exit(
            "generate.py: give the checkpoint folder: checkpoint=outputs/train/<name>/<run>/checkpoints/checkpoint-<step>"
        )
    try:  # generation scores nothing itself: it needs a folder that the predictions can be written to
        check_evaluation_prerequisites([], output_dir=Path(cfg.output).parent, regions=False, output_setting="output")
    except PrerequisitesMissing as error:
        sys.exit(f"generate.py: {error}")
    from reg2rg.inference import generate_from_config

    try:
        predictions = generate_from_config(cfg, list(HydraConfig.get().overrides.task))
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"generate.py: {error}")
    print(f"predictions: {predictions}")
    print(f"score them:  python scripts/evaluate.py predictions={predictions}")


if __name__ == "__main__":
    main()
