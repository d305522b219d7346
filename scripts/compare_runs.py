"""Compare finished runs (per-finding F1, recognition, CE, BLEU-4): python scripts/compare_runs.py RUN_OR_SWEEP... --out DIR

A run folder has config.yaml and evaluation/; a folder of runs (a Hydra multirun sweep) is expanded; an
earlier comparison.csv adds its rows (runs measured on another machine, or whose folders are gone).
Prints one row per run, then one per variant over its seeds (mean, min-max). Writes DIR/comparison.csv,
comparison.md, per_finding_f1.png, variants.csv, variants.md and per_finding_f1_by_variant.png (docs/mechanism.md)."""

import argparse
import logging

from reg2rg.evaluation.compare import gather_runs, summarize_variants, variants_markdown, write_comparison
from reg2rg.evaluation.report import markdown_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders, folders of run folders, or comparison.csv files")
    parser.add_argument("--out", help="folder for comparison.csv, comparison.md, per_finding_f1.png")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    table = gather_runs(args.runs)
    print(markdown_table(table.set_index("run")))
    print()
    print(variants_markdown(summarize_variants(table)))
    if args.out:
        print(f"written to {write_comparison(table, args.out)}")


if __name__ == "__main__":
    main()
