"""Region-level results (paper Tables III and IV): region recognition and per-region NLG and CE.

Recognition: the ground truth's header "The region <i> is <area>:" says which area region i is;
the prediction's header for the same i is correct when it names the same area (full names, e.g.
"trachea and bronchie"; the official script compared first words only). Per area, as the official
script: a correct header is a TP of the area; a wrong or missing one is an FN of the true area, and
a wrong known area is also an FP of that area. Per-sample accuracy: correct headers / ground-truth
headers, over samples whose ground truth has headers.

Per-region NLG and CE: both texts are split by their headers; a region is scored in a sample when it
is present and non-empty in both. "micro" pools all scored (sample, region) pairs; "macro" is the
mean over regions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reg2rg.constants import REGIONS, canonical_region
from reg2rg.evaluation.ce import Labeler, classification_table, f1_score, safe_ratio
from reg2rg.evaluation.meteor import MeteorScorer
from reg2rg.evaluation.nlg import REG2RG_METRICS, reg2rg_scores
from reg2rg.evaluation.text import region_areas, split_regions

# The official summary also leaves out lung and pleura, whose masks are nearly identical.
LOOKALIKE_REGIONS = ("lung", "pleura")


@dataclass(frozen=True)
class Recognition:
    table: pd.DataFrame  # rows: regions, micro, macro, macro without lung/pleura; precision, recall, f1, support
    sample_accuracy: np.ndarray  # (N,), NaN where the ground truth has no region header

    def metrics(self) -> dict:
        scored = self.sample_accuracy[~np.isnan(self.sample_accuracy)]
        accuracy = {
            "mean": float(scored.mean()) if scored.size else None,
            "std": float(scored.std()) if scored.size else None,
            "n": int(scored.size),
        }
        return {"per_region": self.table.to_dict(orient="index"), "sample_accuracy": accuracy}


def recognize_regions(references: Sequence[str], predictions: Sequence[str]) -> Recognition:
    """Compare each ground-truth region header with the prediction's header of the same index."""
    index = {region: i for i, region in enumerate(REGIONS)}
    tp, fp, fn = (np.zeros(len(REGIONS), dtype=np.int64) for _ in range(3))
    accuracy = np.full(len(references), np.nan)
    for sample, (reference, prediction) in enumerate(zip(references, predictions)):
        truth = {i: canonical_region(area) for i, area in region_areas(reference).items()}
        truth = {i: area for i, area in truth.items() if area is not None}
        guessed = {i: canonical_region(area) for i, area in region_areas(prediction).items()}
        for i, area in truth.items():
            guess = guessed.get(i)
            if guess == area:
                tp[index[area]] += 1
                continue
            fn[index[area]] += 1
            if guess is not None:
                fp[index[guess]] += 1
        if truth:
            accuracy[sample] = sum(guessed.get(i) == area for i, area in truth.items()) / len(truth)
    return Recognition(_recognition_table(tp, fp, fn), accuracy)


def _recognition_table(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> pd.DataFrame:
    precision, recall = safe_ratio(tp, tp + fp), safe_ratio(tp, tp + fn)
    table = pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1_score(precision, recall), "support": tp + fn},
        index=pd.Index(REGIONS, name="region"),
    )
    micro_p, micro_r = safe_ratio(tp.sum(), tp.sum() + fp.sum()), safe_ratio(tp.sum(), (tp + fn).sum())
    present = table[table["support"] > 0]
    distinct = present.drop(index=[r for r in LOOKALIKE_REGIONS if r in present.index])
    table.loc["micro"] = [float(micro_p), float(micro_r), float(f1_score(micro_p, micro_r)), (tp + fn).sum()]
    table.loc["macro"] = [*present[["precision", "recall", "f1"]].mean().fillna(0.0), present["support"].sum()]
    table.loc["macro_without_lung_pleura"] = [
        *distinct[["precision", "recall", "f1"]].mean().fillna(0.0),
        distinct["support"].sum(),
    ]
    table["support"] = table["support"].astype(int)
    return table


@dataclass(frozen=True)
class RegionPairs:
    """The (sample, region) pairs present and non-empty in both texts, region by region."""

    samples: dict[str, list[int]]
    references: dict[str, list[str]]
    predictions: dict[str, list[str]]

    @classmethod
    def split(cls, references: Sequence[str], predictions: Sequence[str]) -> RegionPairs:
        samples: dict[str, list[int]] = {}
        refs: dict[str, list[str]] = {}
        preds: dict[str, list[str]] = {}
        for sample, (reference, prediction) in enumerate(zip(references, predictions)):
            truth, guess = split_regions(reference), split_regions(prediction)
            for region in (r for r in REGIONS if r in truth and r in guess):
                samples.setdefault(region, []).append(sample)
                refs.setdefault(region, []).append(truth[region])
                preds.setdefault(region, []).append(guess[region])
        return cls(samples, refs, preds)

    @property
    def regions(self) -> list[str]:
        return [region for region in REGIONS if region in self.samples]


def region_nlg_table(pairs: RegionPairs, meteor: MeteorScorer | None = None) -> pd.DataFrame:
    """Protocol "reg2rg" per-sample means per region (CIDEr's document frequencies from that region).

    CIDEr is NaN for a region with fewer than ``MIN_CIDER_STUDIES`` texts, and then in "micro" and "macro" too.
    """
    meteor = meteor or MeteorScorer()
    per_region = {
        region: reg2rg_scores(pairs.references[region], pairs.predictions[region], meteor).per_sample
        for region in pairs.regions
    }
    table = pd.DataFrame(
        [[len(scores), *scores.mean()] for scores in per_region.values()],
        index=list(per_region),
        columns=["n", *REG2RG_METRICS],
    )
    if per_region:
        pooled = pd.concat(per_region.values())
        region_means = table[list(REG2RG_METRICS)].mean(skipna=False)
        table.loc["micro"] = [len(pooled), *pooled.mean(skipna=False)]
        table.loc["macro"] = [len(pooled), *region_means]
    table["n"] = table["n"].astype(int)
    table.index.name = "region"
    return table


def region_ce_table(pairs: RegionPairs, labeler: Labeler) -> pd.DataFrame:
    """Micro precision/recall/F1 of the region texts' labels, per region and pooled ("micro").

    ``support`` counts the ground-truth labels; with none predicted or present the scores are 0.
    """
    regions = pairs.regions
    references = [text for region in regions for text in pairs.references[region]]
    predictions = [text for region in regions for text in pairs.predictions[region]]
    truth, predicted = labeler(references), labeler(predictions)
    bounds = np.cumsum([0] + [len(pairs.samples[region]) for region in regions])
    spans = {region: slice(start, stop) for region, start, stop in zip(regions, bounds[:-1], bounds[1:])}
    if regions:
        spans["micro"] = slice(0, bounds[-1])
    rows = {}
    for name, span in spans.items():
        micro = classification_table(truth[span], predicted[span], labeler.labels).loc["micro"]
        rows[name] = [span.stop - span.start, micro["precision"], micro["recall"], micro["f1"], micro["support"]]
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["n", "precision", "recall", "f1", "support"])
    table[["n", "support"]] = table[["n", "support"]].astype(int)
    table.index.name = "region"
    return table
