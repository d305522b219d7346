"""One evaluation of generated reports: NLG under both protocols, CE, region tables and report length."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from reg2rg.evaluation.ce import Labeler, classification_table, table_metrics
from reg2rg.evaluation.cider import MIN_CIDER_STUDIES
from reg2rg.evaluation.coco import METEOR_TIMEOUT_S, coco_scores
from reg2rg.evaluation.inputs import ReportPairs, validate_pairs
from reg2rg.evaluation.length import LengthDistributions, compare_lengths
from reg2rg.evaluation.meteor import MeteorScorer
from reg2rg.evaluation.nlg import NLGScores, reg2rg_scores
from reg2rg.evaluation.regions import Recognition, RegionPairs, recognize_regions, region_ce_table, region_nlg_table
from reg2rg.evaluation.rules import RuleLabeler
from reg2rg.evaluation.text import strip_region_prefixes

PROTOCOLS: tuple[str, ...] = ("reg2rg", "coco")


@dataclass
class Evaluation:
    """Everything one evaluation produced; ``metrics()`` is the metrics.json content."""

    pairs: ReportPairs
    labeler: str
    labels: tuple[str, ...]
    reference_labels: np.ndarray  # (N, 18)
    predicted_labels: np.ndarray  # (N, 18)
    ce_table: pd.DataFrame
    lengths: LengthDistributions
    reg2rg: NLGScores | None = None
    coco: dict[str, float | None] | None = None
    recognition: Recognition | None = None
    region_nlg: pd.DataFrame | None = None
    region_ce: pd.DataFrame | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict:
        ce = table_metrics(self.ce_table)
        return {
            "reg2rg": {name: s.as_dict() for name, s in self.reg2rg.summary().items()} if self.reg2rg else None,
            "coco": self.coco,
            "ce": {
                "labeler": self.labeler,
                "per_label": {label: ce[label] for label in self.labels},
                **{average: ce[average] for average in ("micro", "macro", "weighted")},
            },
            "regions": {
                "recognition": self.recognition.metrics() if self.recognition else None,
                "nlg": _records(self.region_nlg) if self.region_nlg is not None else None,
                "ce": self.region_ce.to_dict(orient="index") if self.region_ce is not None else None,
            },
            "length": self.lengths.metrics(),
            "input": self.pairs.metrics(),
            "warnings": self.warnings,
        }


def _records(table: pd.DataFrame) -> dict:
    """``{row: {column: value}}`` with None for NaN (CIDEr of too few texts), as metrics.json holds it."""
    return table.astype(object).where(table.notna(), None).to_dict(orient="index")


@contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    seconds[stage] = time.perf_counter() - start


def evaluate(
    pairs: ReportPairs,
    labeler: Labeler | None = None,
    protocols: Sequence[str] = PROTOCOLS,
    regions: bool = True,
    meteor_timeout_s: float = METEOR_TIMEOUT_S,
) -> Evaluation:
    """Evaluate validated pairs.

    Args:
        pairs: from ``validate_pairs`` or ``read_predictions``.
        labeler: CE labeler (``RuleLabeler`` by default, or ``RadBertLabeler``).
        protocols: NLG protocols to compute, a subset of ``PROTOCOLS``.
        regions: whether to compute region recognition and the region-level NLG and CE tables.
        meteor_timeout_s: limit for the Java METEOR of protocol "coco".
    """
    unknown = set(protocols) - set(PROTOCOLS)
    if unknown:
        raise ValueError(f"unknown protocols {sorted(unknown)}; choose from {PROTOCOLS}")
    labeler = labeler or RuleLabeler()
    seconds: dict[str, float] = {}
    meteor = MeteorScorer() if "reg2rg" in protocols or regions else None
    refs, preds = pairs.references, pairs.predictions
    with _timed(seconds, "ce"):
        reference_labels = labeler([strip_region_prefixes(text) for text in refs])
        predicted_labels = labeler([strip_region_prefixes(text) for text in preds])
    evaluation = Evaluation(
        pairs=pairs,
        labeler=labeler.name,
        labels=tuple(labeler.labels),
        reference_labels=reference_labels,
        predicted_labels=predicted_labels,
        ce_table=classification_table(reference_labels, predicted_labels, labeler.labels),
        lengths=compare_lengths(refs, preds),
        warnings=pairs.messages(),
        seconds=seconds,
    )
    if evaluation.lengths.problem:
        evaluation.warnings.append(evaluation.lengths.problem)
    if protocols and len(refs) < MIN_CIDER_STUDIES:
        evaluation.warnings.append(
            f"CIDEr n/a: {len(refs)} stud{'y' if len(refs) == 1 else 'ies'}, needs >= {MIN_CIDER_STUDIES} "
            "(its IDF weights come from the scored "
            "references; with one study every n-gram's IDF is 0)"
        )
    if "reg2rg" in protocols:
        with _timed(seconds, "nlg_reg2rg"):
            evaluation.reg2rg = reg2rg_scores(refs, preds, meteor)
    if "coco" in protocols:
        with _timed(seconds, "nlg_coco"):
            evaluation.coco, coco_warnings = coco_scores(refs, preds, meteor_timeout_s, evaluation.pairs.ids)
        evaluation.warnings.extend(coco_warnings)
    if regions:
        with _timed(seconds, "regions"):
            _add_region_tables(evaluation, labeler, meteor)
    return evaluation


def _add_region_tables(evaluation: Evaluation, labeler: Labeler, meteor: MeteorScorer) -> None:
    refs, preds = evaluation.pairs.references, evaluation.pairs.predictions
    evaluation.recognition = recognize_regions(refs, preds)
    region_pairs = RegionPairs.split(refs, preds)
    if not region_pairs.regions:
        evaluation.warnings.append("no region-level tables: no region is present and non-empty in both texts")
        return
    evaluation.region_nlg = region_nlg_table(region_pairs, meteor)
    few = [region for region in region_pairs.regions if len(region_pairs.samples[region]) < MIN_CIDER_STUDIES]
    if few:
        counts = ", ".join(f"{region}: {len(region_pairs.samples[region])}" for region in few)
        evaluation.warnings.append(
            f"region-level CIDEr n/a (and so for micro and macro) where fewer than {MIN_CIDER_STUDIES} "
            f"studies have the region in both texts ({counts}): IDF from the corpus"
        )
    evaluation.region_ce = region_ce_table(region_pairs, labeler)


def evaluate_reports(
    references: Sequence[str], predictions: Sequence[str], ids: Sequence[str] | None = None, **options
) -> dict:
    """Notebook entry point: the metrics.json dict for parallel lists of reports (options as ``evaluate``)."""
    return evaluate(validate_pairs(references, predictions, ids), **options).metrics()
