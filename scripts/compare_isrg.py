"""Compare ISRG-CT runs (variants, baselines, seeds): python scripts/compare_isrg.py RUN... [--labels NAME...] [--out DIR]

Each RUN is a training run folder with evaluation/metrics.json. Prints DSC after each click, HD95 and the
attribute accuracy of every run side by side; with --out, writes DIR/comparison.md and DIR/per_click.png."""

import argparse
import json
import sys
from pathlib import Path

from reg2rg.files import atomic_write_bytes
from reg2rg.isrg.summary import comparison_markdown, plot_per_click


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of experiment=isrg_demo (or its variants)")
    parser.add_argument("--labels", nargs="+", help="a name per run for the tables and the plot (default: its method)")
    parser.add_argument("--out", type=Path, help="folder for comparison.md and per_click.png")
    args = parser.parse_args()
    if args.labels and len(args.labels) != len(args.runs):
        sys.exit(f"--labels names {len(args.labels)} runs, but {len(args.runs)} runs are given")
    runs = []
    for run in args.runs:
        path = run / "evaluation" / "metrics.json"
        if not path.is_file():
            sys.exit(f"{path}: not found; is {run} a finished ISRG-CT run?")
        runs.append(json.loads(path.read_text()))
    for metrics, label in zip(runs, args.labels or []):
        metrics["method"] = label
    table = comparison_markdown(runs)
    print(table)
    if args.out:
        atomic_write_bytes(args.out / "comparison.md", table.encode("utf-8"))
        print(f"written to {plot_per_click(runs, args.out / 'per_click.png').parent}")


if __name__ == "__main__":
    main()
