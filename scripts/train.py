"""Train Reg2RG: python scripts/train.py [experiment=demo|radgenome|ctrg] [overrides]  (docs/training.md)"""

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from reg2rg.evaluation.prerequisites import PrerequisitesMissing
from reg2rg.overrides import unknown_keys
from reg2rg.training.ranks import strip_local_rank
from reg2rg.training.startup import check_training_start, remove_failed_start

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

sys.argv = strip_local_rank(sys.argv)  # `deepspeed scripts/train.py` appends --local_rank=N, which Hydra rejects


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    run_folders = (hydra_cfg.runtime.output_dir, cfg.output_dir)
    try:
        check_training_start(cfg)
        from reg2rg.training import train

        status = train(cfg)["exit_code"]  # 128 + the signal when stopped by SIGTERM / SIGINT after a checkpoint
    except PrerequisitesMissing as error:
        remove_failed_start(*run_folders)
        sys.exit(f"train.py: {error}")
    except BaseException:
        remove_failed_start(*run_folders)  # only a folder without checkpoints or metrics
        raise
    if status:
        remove_failed_start(*run_folders)
        sys.exit(status)


if __name__ == "__main__":
    if problems := unknown_keys(sys.argv[1:], CONFIGS, "train"):  # before Hydra, whose hint (+key=...) misleads
        sys.exit("train.py: " + "\n".join(problems))
    main()
