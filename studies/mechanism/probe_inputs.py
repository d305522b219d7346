"""How plainly does each input show each finding, before any model? python studies/mechanism/probe_inputs.py [overrides]

For each region and finding of ``findings`` (configs/probe_inputs.yaml), a logistic regression on one input of
the region at a time (its texture crop, its geometry mask, the global image; average- and max-pooled), fitted on training
studies and scored on the validation split: AUC 0.5, that input alone does not show the finding; 1.0, it shows
it plainly. Used to tune the synthetic phantom so that each finding is seen through the input it is meant for
(docs/mechanism.md)."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../../configs", config_name="probe_inputs")
def main(cfg: DictConfig) -> None:
    from diagnostics import input_readability  # studies/mechanism/diagnostics.py, beside this script

    from reg2rg.data.dataset import CachedRegionDataset
    from reg2rg.data.prepare import prepare_dataset, preprocessing_config

    prepare_dataset(cfg.data, ["train", "valid"], workers=cfg.data_workers)
    splits = {}
    for split, count in (("train", cfg.n_train), ("valid", None)):
        data = CachedRegionDataset(cfg.data.cache_dir, split, preprocessing_config(cfg.data), shuffle_regions=False)
        splits[split] = [data[i] for i in range(min(count or len(data), len(data)))]
    print(
        f"linear probe AUC on {len(splits['valid'])} validation studies (fitted on {len(splits['train'])}), "
        f"inputs pooled to {tuple(cfg.pool)}:"
    )
    print("| region | finding | pooling | texture crop | geometry mask | global image |\n|---|---|---|---|---|---|")
    for region, finding in cfg.findings.items():
        present = {int(sample["labels"][finding]) for sample in splits["valid"]}
        if present != {0, 1}:
            print(
                f"| {region} | {finding} | | not scored: {'every' if present == {1} else 'no'} validation study has it | | |"
            )
            continue
        for reduce in cfg.poolings:
            auc = input_readability(splits["train"], splits["valid"], region, finding, tuple(cfg.pool), reduce)
            print(
                f"| {region} | {finding} | {reduce} | {auc['texture']:.3f} | {auc['geometry']:.3f} | {auc['image']:.3f} |"
            )


if __name__ == "__main__":
    main()
