"""Train Reg2RG: python scripts/train.py [experiment=demo|radgenome|ctrg] [overrides]  (docs/training.md)"""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from reg2rg.training.launch import run_as_cpu_processes, strip_local_rank

sys.argv = strip_local_rank(sys.argv)  # `deepspeed scripts/train.py` appends --local_rank=N, which Hydra rejects


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    status = run_as_cpu_processes(cfg.cpu_processes, __file__, list(hydra_cfg.overrides.task), hydra_cfg.runtime.output_dir)
    if status is not None:  # the job ran as DDP processes started from here
        if status:
            sys.exit(status)
        return

    from reg2rg.training import train

    result = train(cfg)
    if result["exit_code"]:  # stopped by SIGTERM / SIGINT after writing a checkpoint
        sys.exit(result["exit_code"])


if __name__ == "__main__":
    main()
