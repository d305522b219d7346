"""Can a finding be read off the tokens a region hands the LLM? python studies/mechanism/probe_tokens.py RUN --region lung --finding Consolidation

Fits a logistic regression on the region's visual tokens (or "global") of the run's training studies and
scores it on its validation split, beside the majority-class accuracy (docs/mechanism.md)."""

import argparse

from diagnostics import probe_run  # studies/mechanism/diagnostics.py, beside this script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a finished run folder (config.yaml, checkpoints/)")
    parser.add_argument("--region", required=True, help='a region name, or "global"')
    parser.add_argument("--finding", required=True, help="a CT-RATE label, e.g. Consolidation")
    parser.add_argument("--n-train", type=int, default=300, help="training studies to fit on")
    parser.add_argument("--checkpoint", help="default: the run's newest")
    args = parser.parse_args()
    result = probe_run(args.run, args.region, args.finding, args.n_train, args.checkpoint)
    print(
        f"{args.finding} from the {args.region} tokens of {result['checkpoint']}: accuracy {result['train']:.3f} on the "
        f"training studies, {result['test']:.3f} on the validation split (majority class {result['majority']:.3f})"
    )


if __name__ == "__main__":
    main()
