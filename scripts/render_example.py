"""Render a study's grounded report picture (PNG + self-contained HTML) from a cache and a checkpoint.

    python scripts/render_example.py --study valid_2_a_1 \
        --checkpoint outputs/train/demo/<run>/checkpoints/checkpoint-<step>     # writes outputs/grounded_valid_2_a_1.png

With --checkpoint the study's sample is made with the data settings the model was trained with (LFD,
preprocessing, region set: recorded in the checkpoint). Without it the study's reference (ground-truth)
reports are drawn, and the caption says so.
The picture in the docs is redrawn with ``--out docs/images/grounded_example.png``.
"""

import argparse
from pathlib import Path

from reg2rg.visualize import render_study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="data/synthetic/cache", help="preprocessing cache folder")
    parser.add_argument("--study", default="0", help="study id, or its position in the split")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--checkpoint", help="checkpoint folder; omit to draw the reference reports")
    parser.add_argument("--out", help="PNG path (default: outputs/grounded_<study>.png)")
    parser.add_argument("--html", help="also write a self-contained HTML page here")
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--device", help="default: cuda when available, else cpu")
    parser.add_argument("--colours", type=int, default=256, help="PNG palette size (0: full colour)")
    args = parser.parse_args()
    study = int(args.study) if args.study.isdigit() else args.study
    out = Path(args.out or f"outputs/grounded_{args.study}.png")
    render_study(
        args.cache,
        study,
        args.checkpoint,
        split=args.split,
        png_path=out,
        html_path=args.html,
        max_new_tokens=args.max_new_tokens,
        device=args.device,
        colours=args.colours or None,
    )
    print(f"wrote {out}" + (f" and {args.html}" if args.html else ""))


if __name__ == "__main__":
    main()
