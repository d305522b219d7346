"""Does the LLM's report of a region depend on a finding? python studies/mechanism/probe_decisions.py RUN --region heart --finding Cardiomegaly

Teacher-forced on each validation study, the log-odds of the region's abnormal wording over its normal one
where they part; the AUC against the labels (0.5: the image is ignored) shows a model learning to write a
finding before its greedy reports do. Then the same AUC with one input of each study taken from a study with
the other label (the region's texture crop, its geometry mask, the global image): it falls for the input the
finding is read from (docs/mechanism.md)."""

import argparse

from diagnostics import decisions_run  # studies/mechanism/diagnostics.py, beside this script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a finished run folder (config.yaml, checkpoints/)")
    parser.add_argument("--region", required=True, help="a region name, e.g. heart")
    parser.add_argument("--finding", required=True, help="a CT-RATE label, e.g. Cardiomegaly")
    parser.add_argument("--checkpoint", help="default: the run's newest")
    args = parser.parse_args()
    result = decisions_run(args.run, args.region, args.finding, args.checkpoint)
    print(
        f"{args.finding} in the {args.region} reports of {result['checkpoint']}: decision AUC {result['auc']:.3f} over "
        f"{result['studies']} studies ({result['positives']} with it); mean log-odds of {result['abnormal']!r} over "
        f"{result['normal']!r}: {result['mean_positive']:+.2f} with the finding, {result['mean_negative']:+.2f} without"
    )
    for part, auc in result["swapped"].items():
        source = "global image" if part == "image" else f"{args.region} {part}"
        print(f"  decision AUC with the {source} of a study with the other label: {auc:.3f}")


if __name__ == "__main__":
    main()
