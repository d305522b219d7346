"""Write a synthetic RadGenome-style dataset: python scripts/make_synthetic.py n_train=200 shape=[480,480,240] out=DIR"""

import hydra
from omegaconf import DictConfig, OmegaConf


@hydra.main(version_base="1.3", config_path="../configs", config_name="make_synthetic")
def main(cfg: DictConfig) -> None:
    from tqdm import tqdm

    from reg2rg.data.synthetic import SyntheticConfig, summary_line, write_dataset

    fields = OmegaConf.to_container(cfg, resolve=True)
    out = fields.pop("out")
    config = SyntheticConfig(**fields)
    with tqdm(total=config.n_train + config.n_valid, unit="study", desc="synthetic") as bar:
        summary = write_dataset(out, config, on_study=lambda _: bar.update())
    print(summary_line(summary))


if __name__ == "__main__":
    main()
