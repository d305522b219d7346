"""Patient-specific attributes of one study as JSON (organ volumes, lesion counts, diameters, locations).

    python scripts/extract_attributes.py --volume CT.nii.gz --masks MASK_DIR --json OUT.json
    python scripts/extract_attributes.py --volume CT.nii.gz --labelmap SEG.nii.gz --mapping medregion_totalsegmentator \
        --json OUT.json

MASK_DIR holds one NIfTI per organ, region or lesion; a file named <type>_<location> with type nodule, cyst or
effusion is a lesion. --mapping is a YAML file or the name of one in configs/mappings/. Definitions: docs/medregion.md.
"""

import argparse
import sys
from pathlib import Path

MAPPINGS = Path(__file__).resolve().parents[1] / "configs" / "mappings"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volume", required=True, help="the CT volume (.nii.gz, .nii or a DICOM folder)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--masks", help="a folder with one NIfTI mask per organ, region or lesion")
    source.add_argument("--labelmap", help="a TotalSegmentator-style label map (needs --mapping)")
    parser.add_argument("--mapping", help="mapping YAML, or its name in configs/mappings/ (with --labelmap)")
    parser.add_argument("--json", required=True, help="where to write the attributes")
    args = parser.parse_args(argv)
    if args.labelmap and not args.mapping:
        parser.error("--labelmap needs --mapping (e.g. --mapping medregion_totalsegmentator)")

    from reg2rg.data.errors import StudyError
    from reg2rg.medregion.study_masks import read_label_map, read_mask_folder, write_attributes

    try:
        if args.masks:
            study = read_mask_folder(args.volume, args.masks)
        else:
            mapping = Path(args.mapping)
            if not mapping.is_file():
                mapping = MAPPINGS / f"{args.mapping.removesuffix('.yaml')}.yaml"
            study = read_label_map(args.volume, args.labelmap, mapping)
        write_attributes(args.json, study.attributes())
    except StudyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
