"""The evaluation's numbers and files: per-click DSC / HD95 (Table 2's metrics), attribute accuracy against the
majority baseline (Table 3's layout), per lesion type, for the seen (valid) and held-out (zeroshot) splits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.plots import _figure
from ..files import atomic_write_bytes
from .attributes import ATTRIBUTE_NAMES
from .evaluation import per_click_means
from .metrics import accuracy


def split_metrics(records: list[dict], majority: np.ndarray, table_click: int) -> dict[str, Any]:
    """One split's metrics; attribute accuracy after ``table_click`` clicks (1-based), and after each click."""
    labels = np.array([r["attributes"] for r in records])
    predicted = np.array([r["predicted"] for r in records])  # (studies, clicks, attributes)
    per_click = [accuracy(predicted[:, c], labels) for c in range(predicted.shape[1])]
    at_table = per_click[table_click - 1]
    baseline = accuracy(np.broadcast_to(majority, labels.shape), labels)
    types = sorted({r["lesion_type"] for r in records})
    return {
        "studies": len(records),
        "dsc": per_click_means(records, "dsc"),
        "hd95": per_click_means(records, "hd95"),
        "attribute_accuracy": dict(zip(ATTRIBUTE_NAMES, at_table.tolist())) | {"mean": float(at_table.mean())},
        "attribute_accuracy_per_click": [float(a.mean()) for a in per_click],
        "majority_baseline": dict(zip(ATTRIBUTE_NAMES, baseline.tolist())) | {"mean": float(baseline.mean())},
        "per_type": {
            t: {
                "studies": sum(r["lesion_type"] == t for r in records),
                "dsc": per_click_means([r for r in records if r["lesion_type"] == t], "dsc"),
            }
            for t in types
        },
    }


def summary_markdown(metrics: dict[str, Any]) -> str:
    """Markdown tables: per click, Table 2 (DSC / HD95 at the table click), Table 3 (accuracy), per type."""
    k, method = metrics["table_click"], metrics["method"]
    splits = [s for s in ("valid", "zeroshot") if s in metrics]
    lines = [f"## {method}: segmentation after each click", ""]
    lines += ["| click | " + " | ".join(f"{s} DSC | {s} HD95 (mm) | {s} attribute mean" for s in splits) + " |"]
    lines += ["|---" * (1 + 3 * len(splits)) + "|"]
    for c in range(metrics["clicks"]):
        cells = [
            f"{metrics[s]['dsc'][c]:.3f} | {metrics[s]['hd95'][c]:.2f} | {metrics[s]['attribute_accuracy_per_click'][c]:.3f}"
            for s in splits
        ]
        lines.append(f"| {c + 1} | " + " | ".join(cells) + " |")
    lines += ["", f"## Attribute accuracy after {k} clicks (Table 3 layout)", ""]
    lines += ["| setting | method | " + " | ".join(ATTRIBUTE_NAMES) + " | average |", "|---" * 8 + "|"]
    for s in splits:
        for name, key in ((method, "attribute_accuracy"), ("majority class", "majority_baseline")):
            values = metrics[s][key]
            row = " | ".join(f"{values[a]:.3f}" for a in ATTRIBUTE_NAMES)
            lines.append(f"| {s} | {name} | {row} | {values['mean']:.3f} |")
    lines += ["", f"## DSC per lesion type after {k} clicks", "", "| setting | lesion type | studies | DSC |"]
    lines.append("|---|---|---|---|")
    for s in splits:
        for name, values in metrics[s]["per_type"].items():
            lines.append(f"| {s} | {name} | {values['studies']} | {values['dsc'][k - 1]:.3f} |")
    return "\n".join(lines) + "\n"


def comparison_markdown(runs: list[dict[str, Any]]) -> str:
    """Several runs' metrics side by side: DSC after each click and HD95 after the table click (Table 2's
    metrics), then attribute accuracy (Table 3's layout), with the majority class once per split."""
    k, clicks = runs[0]["table_click"], min(m["clicks"] for m in runs)
    lines = ["| setting | method | " + " | ".join(f"DSC {c + 1}" for c in range(clicks)) + f" | HD95 {k} (mm) |"]
    lines.append("|---" * (3 + clicks) + "|")
    for split in ("valid", "zeroshot"):
        for metrics in (m for m in runs if split in m):
            values = metrics[split]
            cells = " | ".join(f"{d:.3f}" for d in values["dsc"][:clicks])
            lines.append(f"| {split} | {metrics['method']} | {cells} | {values['hd95'][k - 1]:.2f} |")
    lines += ["", f"Attribute accuracy after {k} clicks:", ""]
    lines += ["| setting | method | " + " | ".join(ATTRIBUTE_NAMES) + " | average |", "|---" * 8 + "|"]
    for split in ("valid", "zeroshot"):
        chosen = [m for m in runs if split in m]
        rows = [(m["method"], m[split]["attribute_accuracy"]) for m in chosen]
        if chosen:
            rows.append(("majority class", chosen[0][split]["majority_baseline"]))
        for name, values in rows:
            row = " | ".join(f"{values[a]:.3f}" for a in ATTRIBUTE_NAMES)
            lines.append(f"| {split} | {name} | {row} | {values['mean']:.3f} |")
    return "\n".join(lines) + "\n"


def write_evaluation(folder: Path, metrics: dict[str, Any], records: dict[str, list[dict]]) -> None:
    """metrics.json, summary.md, records.jsonl (one line per study and split) and per_click.png into ``folder``."""
    atomic_write_bytes(folder / "metrics.json", (json.dumps(metrics, indent=2) + "\n").encode("utf-8"))
    atomic_write_bytes(folder / "summary.md", summary_markdown(metrics).encode("utf-8"))
    lines = [json.dumps({"split": split, **r}) + "\n" for split, rows in records.items() for r in rows]
    atomic_write_bytes(folder / "records.jsonl", "".join(lines).encode("utf-8"))
    plot_per_click([metrics], folder / "per_click.png")


def plot_per_click(runs: list[dict[str, Any]], path: Path) -> Path:
    """Mean DSC against the number of clicks: one colour per run, solid for the seen types (valid), dashed for
    the held-out types (zeroshot)."""
    import matplotlib.pyplot as plt

    clicks = np.arange(1, max(m["clicks"] for m in runs) + 1)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    with _figure(path, (6, 4)) as axis:
        for metrics, colour in zip(runs, colours):
            for split, style, label in (("valid", "-", "seen types"), ("zeroshot", "--", "held-out types")):
                if split in metrics:
                    dsc = metrics[split]["dsc"]
                    axis.plot(
                        clicks[: len(dsc)], dsc, style, color=colour, marker="o", label=f"{metrics['method']}, {label}"
                    )
        axis.set_xlabel("clicks")
        axis.set_ylabel("mean DSC")
        axis.set_xticks(clicks)
        axis.set_ylim(0, 1)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
        axis.set_title("Mean DSC after each click")
    return path
