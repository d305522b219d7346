"""Generate reports for a split: python scripts/generate.py checkpoint=outputs/.../checkpoint data=radgenome split=valid"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../configs", config_name="generate")
def main(cfg: DictConfig) -> None:
    from reg2rg.inference import generate_from_config

    print(f"predictions: {generate_from_config(cfg)}")


if __name__ == "__main__":
    main()
