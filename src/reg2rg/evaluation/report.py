"""Write an evaluation to a folder: metrics.json, summary.md, one CSV per table, labels.csv, PNG plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from reg2rg.evaluation.ce import labels_frame
from reg2rg.evaluation.cider import CIDER_TOO_FEW
from reg2rg.evaluation.inputs import GT_COLUMN, ID_COLUMN, PRED_COLUMN, read_predictions
from reg2rg.evaluation.pipeline import Evaluation, evaluate
from reg2rg.evaluation.plots import plot_ce, plot_lengths
from reg2rg.files import atomic_path, atomic_write_bytes

PROTOCOL_NOTES = {
    "reg2rg": "the paper's protocol: region prefixes stripped, per-sample 13a smoothed BLEU, NLTK METEOR, "
    "rouge_score ROUGE, pycocoevalcap-formula CIDEr; mean ± std over samples, corpus value beside",
    "coco": "pycocoevalcap corpus BLEU, METEOR 1.5 (Java), ROUGE-L and CIDEr on PTB-style lower-cased tokens",
}
LENGTH_PLOT = "report_length.png"
CE_PLOT = "ce_per_label.png"


def _number(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return "n/a" if value is None else str(value)


def markdown_table(frame: pd.DataFrame) -> str:
    """A DataFrame (index as first column) as a GitHub markdown table, floats to four decimals."""
    header = [frame.index.name or ""] + [str(column) for column in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, *values in frame.itertuples(name=None):
        lines.append("| " + " | ".join([str(index)] + [_number(value) for value in values]) + " |")
    return "\n".join(lines)


def all_tables(evaluation: Evaluation) -> dict[str, pd.DataFrame]:
    """Every table of the evaluation by file stem, in summary order."""
    tables = {}
    if evaluation.reg2rg is not None:
        summary = {name: s.as_dict() for name, s in evaluation.reg2rg.summary().items()}
        tables["nlg_reg2rg"] = pd.DataFrame.from_dict(summary, orient="index").rename_axis("metric")
    if evaluation.coco is not None:
        tables["nlg_coco"] = pd.DataFrame({"value": evaluation.coco}).rename_axis("metric")
    tables["ce"] = evaluation.ce_table
    optional = {
        "region_recognition": evaluation.recognition.table if evaluation.recognition else None,
        "region_nlg": evaluation.region_nlg,
        "region_ce": evaluation.region_ce,
    }
    tables |= {stem: table for stem, table in optional.items() if table is not None}
    return tables


def per_sample_frame(evaluation: Evaluation) -> pd.DataFrame:
    """One row per evaluated pair: id, reg2rg scores, region recognition accuracy, report lengths."""
    frame = pd.DataFrame({"AccNum": evaluation.pairs.ids})
    if evaluation.reg2rg is not None:
        frame = pd.concat([frame, evaluation.reg2rg.per_sample], axis=1)
    if evaluation.recognition is not None:
        frame["region_accuracy"] = evaluation.recognition.sample_accuracy
    frame["reference_words"] = evaluation.lengths.reference.astype(int)
    frame["generated_words"] = evaluation.lengths.generated.astype(int)
    return frame


def summary_markdown(evaluation: Evaluation, source: Path | None = None, images: bool = True) -> str:
    """summary.md: the tables, warnings and report lengths; ``images`` links the PNG plots beside it."""
    metrics = evaluation.metrics()
    lines = ["# Evaluation summary", ""]
    if source is not None:
        lines.append(f"Predictions: `{source}`")
    counts = metrics["input"]
    lines += [f"Rows read: {counts['rows']}, evaluated: {counts['evaluated']}. CE labeler: `{evaluation.labeler}`.", ""]
    if evaluation.warnings:
        lines += ["## Warnings", ""] + [f"- {warning}" for warning in evaluation.warnings] + [""]
    titles = {
        "nlg_reg2rg": "NLG, protocol reg2rg",
        "nlg_coco": "NLG, protocol coco",
        "ce": "Clinical efficacy (CT-RATE labels)",
        "region_recognition": "Region recognition",
        "region_nlg": "Region-level NLG (protocol reg2rg, per-sample means)",
        "region_ce": "Region-level CE (micro)",
    }
    for stem, table in all_tables(evaluation).items():
        lines += [f"## {titles[stem]}", ""]
        protocol = stem.removeprefix("nlg_")
        if protocol in PROTOCOL_NOTES:
            lines += [f"Protocol `{protocol}`: {PROTOCOL_NOTES[protocol]}.", ""]
        lines += [markdown_table(table), ""]
        if protocol in PROTOCOL_NOTES and pd.isna(table.loc["CIDEr"]).all():
            lines += [f"CIDEr: {CIDER_TOO_FEW}.", ""]
    if evaluation.recognition is not None:
        accuracy = metrics["regions"]["recognition"]["sample_accuracy"]
        lines += [
            f"Per-sample region accuracy: {_number(accuracy['mean'])} ± {_number(accuracy['std'])} "
            f"over {accuracy['n']} samples.",
            "",
        ]
    length = metrics["length"]
    lines += [
        "## Report length (words)",
        "",
        f"Ground truth {length['reference']['mean']:.1f} ± {length['reference']['std']:.1f}, generated "
        f"{length['generated']['mean']:.1f} ± {length['generated']['std']:.1f}; "
        f"KL(ground truth || generated) = {_number(length['kl_divergence'])}.",
        "",
    ]
    if images:
        lines += [f"![report length]({LENGTH_PLOT}) ![CE per label]({CE_PLOT})", ""]
    return "\n".join(lines)


def terminal_summary(evaluation: Evaluation, output_dir: str | Path) -> str:
    """What a terminal shows: summary.md's tables without its image links, then where the files are."""
    return (
        summary_markdown(evaluation, images=False)
        + f"\nPlots ({LENGTH_PLOT}, {CE_PLOT}), tables, metrics.json and summary.md: {output_dir}\n"
    )


def write_report(evaluation: Evaluation, output_dir: str | Path, source: Path | None = None) -> Path:
    """Write every output file into ``output_dir`` (created if needed); returns the folder."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(
        output_dir / "metrics.json", json.dumps(evaluation.metrics(), indent=2, allow_nan=False).encode("utf-8")
    )
    atomic_write_bytes(output_dir / "summary.md", summary_markdown(evaluation, source).encode("utf-8"))
    labels = labels_frame(
        evaluation.pairs.ids, evaluation.reference_labels, evaluation.predicted_labels, evaluation.labels
    )
    frames = {
        **{f"{stem}.csv": (table, True) for stem, table in all_tables(evaluation).items()},
        "per_sample.csv": (per_sample_frame(evaluation), False),
        "labels.csv": (labels, False),
    }
    for name, (frame, index) in frames.items():
        with atomic_path(output_dir / name) as path:
            frame.to_csv(path, index=index)
    plot_lengths(evaluation.lengths, output_dir / LENGTH_PLOT)
    plot_ce(evaluation.ce_table, evaluation.labels, evaluation.labeler, output_dir / CE_PLOT)
    return output_dir


def evaluate_predictions_csv(
    predictions: str | Path,
    output_dir: str | Path,
    id_column: str = ID_COLUMN,
    gt_column: str = GT_COLUMN,
    pred_column: str = PRED_COLUMN,
    **options,
) -> Evaluation:
    """Evaluate a predictions CSV and write metrics.json, summary.md, tables and plots to ``output_dir``."""
    evaluation = evaluate(read_predictions(predictions, id_column, gt_column, pred_column), **options)
    write_report(evaluation, output_dir, source=Path(predictions))
    return evaluation
