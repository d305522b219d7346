"""Evaluation of generated reports: the paper's metric protocol ("reg2rg"), the COCO protocol, CE labelers,
region-level tables and report length, offline. docs/evaluation.md describes every number.

    from reg2rg.evaluation import evaluate_reports
    metrics = evaluate_reports(ground_truth_reports, generated_reports)   # the metrics.json dict
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["Evaluation", "evaluate", "evaluate_predictions_csv", "evaluate_reports"]

if TYPE_CHECKING:
    from reg2rg.evaluation.pipeline import Evaluation, evaluate, evaluate_reports
    from reg2rg.evaluation.report import evaluate_predictions_csv


def __getattr__(name: str):
    """Import the pipeline (pandas, numpy) and the report writer (matplotlib) only when they are used."""
    if name == "evaluate_predictions_csv":
        from reg2rg.evaluation import report

        return report.evaluate_predictions_csv
    if name in __all__:
        from reg2rg.evaluation import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
