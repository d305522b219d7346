"""MedRegion-CT's six regions and the mappings from other region sets onto them (configs/mappings/medregion_*)."""

from __future__ import annotations

from pathlib import Path

import yaml

from reg2rg.constants import canonical_region
from reg2rg.data.errors import StudyError

# The paper's six regions, in prompt and report order.
REGIONS: tuple[str, ...] = ("lung", "airway", "mediastinum", "heart", "osseous", "abdomen")

# How each region is headed in the target report (the paper's Figure 5).
REPORT_HEADINGS: dict[str, str] = {
    "lung": "Lung",
    "airway": "Airways",
    "mediastinum": "Mediastinum",
    "heart": "Heart",
    "osseous": "Osseous",
    "abdomen": "Abdomen",
}


def read_mapping_yaml(path: str | Path) -> dict:
    """A mapping YAML as a dict with a ``regions:`` table whose keys are the six regions."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(path, "mapping YAML not found", kind="mapping")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise StudyError(path, f"not a readable YAML file: {error}", kind="mapping") from error
    if not isinstance(spec, dict) or not isinstance(spec.get("regions"), dict):
        raise StudyError(path, "expected a `regions:` table (MedRegion region -> list of names)", kind="mapping")
    unknown = sorted(set(spec["regions"]) - set(REGIONS))
    if unknown:
        raise StudyError(
            path, f"unknown region(s) {unknown}; the MedRegion regions are {list(REGIONS)}", kind="mapping"
        )
    return spec


def radgenome_to_medregion(path: str | Path) -> dict[str, str]:
    """{RadGenome region (canonical name): MedRegion region} from configs/mappings/medregion_radgenome.yaml."""
    spec = read_mapping_yaml(path)
    target: dict[str, str] = {}
    for region, sources in spec["regions"].items():
        for source in sources or []:
            name = canonical_region(str(source))
            if name is None:
                raise StudyError(path, f"region '{region}': '{source}' is not a RadGenome region", kind="mapping")
            if name in target:
                raise StudyError(path, f"RadGenome region '{name}' is mapped twice", kind="mapping")
            target[name] = region
    return target


def regroup_reports(region_reports: dict[str, str], mapping: dict[str, str]) -> dict[str, str]:
    """The MedRegion region reports: each one the RadGenome region sentences mapped to it, in RadGenome order.

    ``region_reports``: RadGenome region -> text; a region the mapping leaves out is dropped.
    """
    grouped: dict[str, list[str]] = {}
    for source, text in region_reports.items():
        region = mapping.get(canonical_region(source) or source)
        if region is not None and text.strip():
            grouped.setdefault(region, []).append(text.strip())
    return {region: " ".join(grouped[region]) for region in REGIONS if region in grouped}
