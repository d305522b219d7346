"""Compare finished runs side by side: per-finding CE F1, region recognition and BLEU-4 of several run
folders, each labelled by the switches it was trained with (the mechanism study, docs/mechanism.md)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

log = logging.getLogger(__name__)
METRICS = Path("evaluation") / "metrics.json"

# The token sources of the region-guided prompt, as config keys and the names the table uses.
TOKEN_SWITCHES = (("model.use_global", "global"), ("model.use_texture", "texture"), ("model.use_geometry", "geometry"))


def variant_name(config) -> str:
    """What a run fed the LLM, from its resolved config: e.g. "global+texture+geometry" or
    "texture, no LFD, no RRA"."""
    tokens = "+".join(name for key, name in TOKEN_SWITCHES if OmegaConf.select(config, key, default=True))
    missing = [
        name
        for key, name in (("data.lfd", "LFD"), ("model.rra", "RRA"))
        if not OmegaConf.select(config, key, default=True)
    ]
    return ", ".join([tokens or "no visual tokens", *(f"no {name}" for name in missing)])


def _read(path: Path, what: str):
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {what}; is this a finished run folder (trained and evaluated)?")
    return json.loads(path.read_text(encoding="utf-8")) if path.suffix == ".json" else OmegaConf.load(path)


def run_row(run_dir: str | Path) -> dict:
    """One run's row: variant, seed, recognition, CE micro-F1, BLEU-4 and each finding's F1 (findings
    present in the evaluation split only)."""
    run = Path(run_dir)
    config = _read(run / "config.yaml", "config.yaml")
    metrics = _read(run / METRICS, str(METRICS))
    recognition = ((metrics.get("regions") or {}).get("recognition") or {}).get("per_region", {}).get("micro", {})
    row = {
        "run": f"{run.parent.name}/{run.name}",  # a sweep's jobs are named 0, 1, ...: keep the sweep's name
        "variant": variant_name(config),
        "seed": config.seed,
        # without RRA the reports name no regions: nothing to recognise
        "recognition": recognition.get("f1", float("nan"))
        if OmegaConf.select(config, "model.rra", default=True)
        else float("nan"),
        "CE micro-F1": metrics["ce"]["micro"]["f1"],
        "BLEU-4": metrics["reg2rg"]["BLEU-4"]["mean"],
    }
    row.update({label: scores["f1"] for label, scores in metrics["ce"]["per_label"].items() if scores["support"] > 0})
    return row


def compare_runs(run_dirs: Iterable[str | Path]) -> pd.DataFrame:
    """A table with one row per run folder (``run_row``), in the order given."""
    rows = [run_row(run) for run in run_dirs]
    if not rows:
        raise ValueError("no run folders to compare")
    return pd.DataFrame(rows)


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run folders from folders given: a run folder itself (it has config.yaml), or a folder of runs
    such as a Hydra multirun sweep (its evaluated subfolders in name order; the others, still training
    or failed, are logged and left out)."""
    runs: list[Path] = []
    for path in map(Path, paths):
        if (path / "config.yaml").is_file():
            runs.append(path)
            continue
        found = (
            sorted((sub for sub in path.iterdir() if (sub / "config.yaml").is_file()), key=lambda p: p.name)
            if path.is_dir()
            else []
        )
        if not found:
            raise FileNotFoundError(f"{path}: neither a run folder (no config.yaml) nor a folder of runs")
        for run in found:
            if (run / METRICS).is_file():
                runs.append(run)
            else:
                log.warning("%s: left out, not evaluated (yet)", run)
    return runs


FIXED_COLUMNS = ("run", "variant", "seed", "recognition", "CE micro-F1", "BLEU-4")


def read_comparison(path: str | Path) -> pd.DataFrame:
    """The rows of an earlier comparison.csv (``write_comparison``): runs measured elsewhere or whose
    folders are gone, to summarise with new ones."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such comparison file")
    table = pd.read_csv(path)
    missing = [column for column in FIXED_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"{path}: not a comparison.csv of scripts/compare_runs.py (no column {', '.join(missing)})")
    return table


def gather_runs(sources: Iterable[str | Path]) -> pd.DataFrame:
    """One table from run folders, folders of runs (``find_runs``) and earlier comparison.csv files, in
    the order given. A run that two sources name is an error: which of its rows would count?"""
    tables = [
        read_comparison(source) if str(source).endswith(".csv") else compare_runs(find_runs([source]))
        for source in sources
    ]
    if not tables:
        raise ValueError("no run folders to compare")
    table = pd.concat(tables, ignore_index=True)
    repeated = sorted(set(table.loc[table["run"].duplicated(), "run"]))
    if repeated:
        raise ValueError(f"runs given twice (as folders or in a comparison.csv): {', '.join(repeated)}")
    return table


def findings_of(table: pd.DataFrame) -> list[str]:
    """The per-finding F1 columns of a ``compare_runs`` table."""
    return [column for column in table.columns if column not in FIXED_COLUMNS]


def summary_metrics(table: pd.DataFrame) -> list[str]:
    """The columns a variant is summarised by over its seeds: CE micro-F1, then each finding's F1."""
    return ["CE micro-F1", *findings_of(table)]


def summarize_variants(table: pd.DataFrame) -> pd.DataFrame:
    """One row per variant (in order of first appearance) over its runs (seeds): how many, which seeds,
    and the mean, smallest and largest of CE micro-F1 and of each finding's F1."""
    rows = []
    for variant, runs in table.groupby("variant", sort=False):
        row = {"variant": variant, "runs": len(runs), "seeds": ", ".join(str(seed) for seed in runs["seed"])}
        for metric in summary_metrics(table):
            row.update(
                {
                    f"{metric} mean": runs[metric].mean(),
                    f"{metric} min": runs[metric].min(),
                    f"{metric} max": runs[metric].max(),
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)


def variants_markdown(summary: pd.DataFrame) -> str:
    """``summarize_variants`` as a markdown table: "mean (min-max)" per metric."""
    metrics = [column[: -len(" mean")] for column in summary.columns if column.endswith(" mean")]
    lines = ["| variant | runs | seeds | " + " | ".join(metrics) + " |", "|---" * (3 + len(metrics)) + "|"]
    for _, row in summary.iterrows():
        cells = [f"{row[f'{m} mean']:.3f} ({row[f'{m} min']:.3f}-{row[f'{m} max']:.3f})" for m in metrics]
        lines.append(f"| {row['variant']} | {row['runs']} | {row['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_comparison(table: pd.DataFrame, output_dir: str | Path) -> Path:
    """In ``output_dir``: comparison.csv and comparison.md (one row per run), per_finding_f1.png, and
    variants.csv, variants.md and per_finding_f1_by_variant.png (``summarize_variants``: over seeds)."""
    from reg2rg.evaluation.plots import plot_per_finding, plot_per_finding_by_variant
    from reg2rg.evaluation.report import markdown_table
    from reg2rg.files import atomic_path

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize_variants(table)
    with atomic_path(output_dir / "comparison.csv") as path:
        table.to_csv(path, index=False)
    with atomic_path(output_dir / "comparison.md") as path:
        path.write_text(markdown_table(table.set_index("run")) + "\n", encoding="utf-8")
    with atomic_path(output_dir / "per_finding_f1.png") as path:
        plot_per_finding(table, findings_of(table), path)
    with atomic_path(output_dir / "variants.csv") as path:
        summary.to_csv(path, index=False)
    with atomic_path(output_dir / "variants.md") as path:
        path.write_text(variants_markdown(summary) + "\n", encoding="utf-8")
    with atomic_path(output_dir / "per_finding_f1_by_variant.png") as path:
        plot_per_finding_by_variant(table, summary_metrics(table), path)
    return output_dir
