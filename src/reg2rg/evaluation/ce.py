"""Clinical efficacy (CE): per-label precision/recall/F1 of predicted-report labels against report labels.

Both texts are labeled by the same labeler (rules or RadBERT) with the 18 CT-RATE labels. Per label,
as the official script: precision TP/(TP+FP), recall TP/(TP+FN), F1 their harmonic mean (0 where
undefined), support TP+FN. Averages: micro (pooled TP/FP/FN over labels; the paper's headline),
macro (mean over the 18 labels) and weighted (support-weighted mean).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import pandas as pd

AVERAGES: tuple[str, ...] = ("micro", "macro", "weighted")
SCORE_COLUMNS: tuple[str, ...] = ("precision", "recall", "f1", "support")


class Labeler(Protocol):
    """Anything that maps texts to an (N, len(labels)) 0/1 array; ``name`` says which labeler it is."""

    name: str
    labels: tuple[str, ...]

    def __call__(self, texts: Sequence[str]) -> np.ndarray: ...


def safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator, denominator = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def f1_score(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    return safe_ratio(2 * precision * recall, precision + recall)


def classification_table(truth: np.ndarray, predicted: np.ndarray, labels: Sequence[str]) -> pd.DataFrame:
    """Rows: each label, then micro/macro/weighted; columns: precision, recall, f1, support."""
    truth, predicted = np.asarray(truth, dtype=bool), np.asarray(predicted, dtype=bool)
    if truth.shape != predicted.shape or truth.ndim != 2 or truth.shape[1] != len(labels):
        raise ValueError(f"label arrays {truth.shape} and {predicted.shape} do not fit {len(labels)} labels")
    tp = (truth & predicted).sum(axis=0)
    fp = (~truth & predicted).sum(axis=0)
    fn = (truth & ~predicted).sum(axis=0)
    support = tp + fn
    precision, recall = safe_ratio(tp, tp + fp), safe_ratio(tp, tp + fn)
    f1 = f1_score(precision, recall)
    micro_p, micro_r = safe_ratio(tp.sum(), tp.sum() + fp.sum()), safe_ratio(tp.sum(), support.sum())
    weights = safe_ratio(support, support.sum())
    rows = np.column_stack([precision, recall, f1, support]).tolist()
    rows.append([float(micro_p), float(micro_r), float(f1_score(micro_p, micro_r)), support.sum()])
    rows.append([precision.mean(), recall.mean(), f1.mean(), support.sum()])
    rows.append([(precision * weights).sum(), (recall * weights).sum(), (f1 * weights).sum(), support.sum()])
    table = pd.DataFrame(rows, index=list(labels) + list(AVERAGES), columns=list(SCORE_COLUMNS))
    table["support"] = table["support"].astype(int)
    table.index.name = "label"
    return table


def table_metrics(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """A classification table as nested dicts (row -> column -> number) for metrics.json."""
    return table.to_dict(orient="index")


def labels_frame(ids: Sequence[str], truth: np.ndarray, predicted: np.ndarray, labels: Sequence[str]) -> pd.DataFrame:
    """labels.csv as the official file lays it out: id, then ``GT_<label>``..., ``Pred_<label>``...."""
    frame = pd.DataFrame({"AccNum": list(ids)})
    gt = pd.DataFrame(np.asarray(truth, dtype=int), columns=[f"GT_{label}" for label in labels])
    pred = pd.DataFrame(np.asarray(predicted, dtype=int), columns=[f"Pred_{label}" for label in labels])
    return pd.concat([frame, gt, pred], axis=1)
