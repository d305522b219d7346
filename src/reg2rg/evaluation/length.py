"""Report length (paper Fig. 3): words per report, generated vs ground truth, as KDEs and their KL divergence.

Lengths are whitespace words of the prefix-stripped reports. Each distribution is a Gaussian KDE
(scipy, Scott's bandwidth); both are evaluated on one grid spanning the two samples plus three
bandwidths each side, normalised to sum to one there, and KL(ground truth || generated) =
sum p log(p / q). KL is None (with a reason) when a sample has fewer than two distinct lengths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reg2rg.evaluation.text import strip_region_prefixes, word_count

GRID_POINTS = 1024
DENSITY_FLOOR = 1e-300


def report_lengths(texts: Sequence[str]) -> np.ndarray:
    return np.array([word_count(strip_region_prefixes(text)) for text in texts], dtype=np.float64)


@dataclass(frozen=True)
class LengthDistributions:
    reference: np.ndarray  # (N,) words per ground-truth report
    generated: np.ndarray  # (N,) words per generated report
    grid: np.ndarray | None  # (GRID_POINTS,) where the densities are evaluated
    reference_density: np.ndarray | None
    generated_density: np.ndarray | None
    kl_divergence: float | None
    problem: str | None = None

    def metrics(self) -> dict:
        def describe(lengths: np.ndarray) -> dict[str, float]:
            return {"mean": float(lengths.mean()), "std": float(lengths.std()), "median": float(np.median(lengths))}

        return {
            "reference": describe(self.reference),
            "generated": describe(self.generated),
            "kl_divergence": self.kl_divergence,
        }


def compare_lengths(references: Sequence[str], predictions: Sequence[str]) -> LengthDistributions:
    from scipy.stats import gaussian_kde

    reference, generated = report_lengths(references), report_lengths(predictions)
    for name, lengths in (("ground-truth", reference), ("generated", generated)):
        if np.unique(lengths).size < 2:
            problem = f"report length KL not computed: the {name} reports have fewer than two distinct lengths"
            return LengthDistributions(reference, generated, None, None, None, None, problem)
    kdes = gaussian_kde(reference), gaussian_kde(generated)
    margin = 3 * max(float(np.sqrt(kde.covariance[0, 0])) for kde in kdes)
    grid = np.linspace(
        min(reference.min(), generated.min()) - margin, max(reference.max(), generated.max()) + margin, GRID_POINTS
    )
    p, q = (np.maximum(kde(grid), DENSITY_FLOOR) for kde in kdes)
    p_mass, q_mass = p / p.sum(), q / q.sum()
    kl = float(np.sum(p_mass * np.log(p_mass / q_mass)))
    return LengthDistributions(reference, generated, grid, p, q, kl)
