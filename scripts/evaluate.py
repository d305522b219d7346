"""Evaluate a predictions CSV offline: python scripts/evaluate.py predictions=CSV output_dir=DIR"""

import sys

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../configs", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from reg2rg.evaluation import evaluate_predictions_csv
    from reg2rg.evaluation.nltk_data import NLTKDataMissing
    from reg2rg.evaluation.prerequisites import PrerequisitesMissing, check_evaluation_prerequisites
    from reg2rg.evaluation.report import terminal_summary

    try:
        check_evaluation_prerequisites(list(cfg.protocols), cfg.ce, cfg.output_dir, regions=cfg.regions)
        evaluation = evaluate_predictions_csv(
            cfg.predictions,
            cfg.output_dir,
            id_column=cfg.id_column,
            gt_column=cfg.gt_column,
            pred_column=cfg.pred_column,
            labeler=instantiate(cfg.ce.labeler),
            protocols=list(cfg.protocols),
            regions=cfg.regions,
            meteor_timeout_s=cfg.meteor_timeout_s,
        )
    except (PrerequisitesMissing, ValueError, NLTKDataMissing, InstantiationException) as error:
        sys.exit(f"evaluate.py: {error}")
    print(terminal_summary(evaluation, cfg.output_dir))


if __name__ == "__main__":
    main()
