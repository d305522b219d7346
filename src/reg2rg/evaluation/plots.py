"""PNG figures of an evaluation (matplotlib, Agg backend): report-length KDEs, per-label CE F1, and
per-finding F1 of several runs side by side (per run, or per variant over its seeds)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from reg2rg.evaluation.length import LengthDistributions
from reg2rg.files import atomic_path


@contextmanager
def _figure(path: str | Path, size: tuple[float, float]) -> Iterator:
    """An axis whose figure is saved to ``path`` and closed on exit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=size, dpi=120)
    try:
        yield axis
        figure.tight_layout()
        with atomic_path(path) as temporary:
            figure.savefig(temporary, format="png")
    finally:
        plt.close(figure)


def plot_lengths(lengths: LengthDistributions, path: str | Path) -> Path:
    """KDEs of words per report, ground truth vs generated (histograms when no KDE exists)."""
    with _figure(path, (6, 4)) as axis:
        if lengths.grid is not None:
            axis.fill_between(lengths.grid, lengths.reference_density, alpha=0.35, label="ground truth")
            axis.fill_between(lengths.grid, lengths.generated_density, alpha=0.35, label="generated")
            axis.set_ylabel("density")
            axis.set_title(f"Report length (KL(GT || generated) = {lengths.kl_divergence:.4f})")
        else:
            axis.hist([lengths.reference, lengths.generated], bins=20, label=["ground truth", "generated"])
            axis.set_ylabel("reports")
            axis.set_title("Report length")
        axis.set_xlabel("words per report")
        axis.legend()
    return Path(path)


def plot_ce(table: pd.DataFrame, labels: tuple[str, ...], labeler: str, path: str | Path) -> Path:
    """Horizontal bars of per-label F1 from a CE classification table, each with its support."""
    per_label = table.loc[list(labels)].iloc[::-1]
    with _figure(path, (7, 6)) as axis:
        axis.barh(per_label.index, per_label["f1"])
        for y, (f1, support) in enumerate(zip(per_label["f1"], per_label["support"])):
            axis.text(f1 + 0.01, y, f"n={support}", va="center", fontsize=7)
        axis.set_xlim(0, 1.1)
        axis.set_xlabel("F1")
        axis.set_title(f"CE per label ({labeler} labeler), micro F1 = {table.loc['micro', 'f1']:.4f}")
    return Path(path)


@contextmanager
def _grouped_bars(path: str | Path, columns: list[str], groups: int) -> Iterator:
    """An F1 axis with ``groups`` bars side by side at each of ``columns``; yields the axis, the bar width
    and ``positions(i)``: the x of group i's bar at each column. Ticks, limits and legend on exit."""
    width = 0.8 / groups

    def positions(i: int) -> list[float]:
        return [x + (i - (groups - 1) / 2) * width for x in range(len(columns))]

    with _figure(path, (max(7.0, 2.4 * len(columns)), 4.0 + 0.2 * groups)) as axis:
        yield axis, width, positions
        axis.set_xticks(range(len(columns)), columns)
        axis.set_ylim(0, 1.05)
        axis.set_ylabel("F1 (generated reports, rule labeler)")
        axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)


def plot_per_finding(table: pd.DataFrame, findings: list[str], path: str | Path) -> Path:
    """Grouped bars: each finding's F1 (x) for each run (one colour per row of ``table``)."""
    with _grouped_bars(path, findings, len(table)) as (axis, width, positions):
        for i, (_, row) in enumerate(table.iterrows()):
            axis.bar(
                positions(i),
                [row[finding] for finding in findings],
                width,
                label=f"{row['variant']} (seed {row['seed']})",
            )
    return Path(path)


def plot_per_finding_by_variant(table: pd.DataFrame, metrics: list[str], path: str | Path) -> Path:
    """Grouped bars: the mean of each metric (x) over each variant's runs (one colour per variant), with
    every run as a dot, so that the spread over seeds is seen next to the differences between variants."""
    variants = list(dict.fromkeys(table["variant"]))
    with _grouped_bars(path, metrics, len(variants)) as (axis, width, positions):
        for i, variant in enumerate(variants):
            runs = table[table["variant"] == variant]
            bars = axis.bar(
                positions(i),
                [runs[m].mean() for m in metrics],
                width,
                alpha=0.6,
                label=f"{variant} (seed{'s' * (len(runs) > 1)} {', '.join(str(s) for s in runs['seed'])})",
            )
            for x, metric in zip(positions(i), metrics):
                axis.scatter(
                    [x] * len(runs),
                    runs[metric],
                    s=12,
                    color=bars.patches[0].get_facecolor(),
                    edgecolor="black",
                    linewidth=0.5,
                    zorder=3,
                )
    return Path(path)
