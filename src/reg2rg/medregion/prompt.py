"""MedRegion-CT's prompt and target, as the paper's Figure 5.

Prompt::

    The global visual information is provided here: <image>[vision tokens]</image>.
    The following regions of interest have been identified: lung<region>[2 tokens]</region>, airway<region>...
    Additional clinical attribute information is provided as follows:
    Organ Volumes:
    Lung:
    - Right Upper Lobe: 745.8 ml
    ...
    Lesion Details:
    Nodule:
    - count: 2
    - diameter (mm): 20.2, 23.1
    - location: right lower lobe, right middle lobe
    Describe this medical scan with findings.

A region without a mask is written ``lung (no mask)``, without tokens. Organs and lesion types the study has no
mask for are left out. Without the mask extractor the regions sentence is left out; without attributes the
attribute block. Target: one ``[Lung]: ...`` line per region with a report, in region order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from reg2rg.medregion.regions import REGIONS, REPORT_HEADINGS
from reg2rg.text.prompt import IMAGE_CLOSE, IMAGE_OPEN, PLACEHOLDER, REGION_CLOSE, REGION_OPEN

INSTRUCTION = "Describe this medical scan with findings."
# Organ groups of the attribute block: heading -> [(line label, organ mask name)]; a lone organ has no lines.
ORGAN_GROUPS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Lung",
        (
            ("Right Upper Lobe", "right_upper_lobe"),
            ("Right Middle Lobe", "right_middle_lobe"),
            ("Right Lower Lobe", "right_lower_lobe"),
            ("Left Upper Lobe", "left_upper_lobe"),
            ("Left Lower Lobe", "left_lower_lobe"),
        ),
    ),
    (
        "Heart",
        (
            ("Left Atrium", "left_atrium"),
            ("Right Atrium", "right_atrium"),
            ("Left Ventricle", "left_ventricle"),
            ("Right Ventricle", "right_ventricle"),
        ),
    ),
    ("Liver", (("", "liver"),)),
    ("Kidney", (("Left", "left_kidney"), ("Right", "right_kidney"))),
)
LESION_ORDER = ("nodule", "cyst", "effusion")


def placeholders(count: int) -> str:
    return PLACEHOLDER * count


def attribute_block(attributes: dict) -> str:
    """The attribute lines of Figure 5 for the organs and lesion types ``attributes`` has (else "")."""
    organs = attributes.get("organs", {})
    lines = []
    for heading, members in ORGAN_GROUPS:
        present = [(label, organs[name]["volume_ml"]) for label, name in members if name in organs]
        if not present:
            continue
        if len(members) == 1:
            lines.append(f"{heading}: {present[0][1]:.1f} ml")
        else:
            lines += [f"{heading}:"] + [f"- {label}: {volume:.1f} ml" for label, volume in present]
    if lines:
        lines.insert(0, "Organ Volumes:")
    lesions = attributes.get("lesions", {})
    found = [kind for kind in LESION_ORDER if kind in lesions]
    if found:
        lines.append("Lesion Details:")
    for kind in found:
        entry = lesions[kind]
        diameters = ", ".join(f"{d:.1f}" for d in entry["diameters_mm"]) or "none"
        locations = ", ".join(entry["locations"]) or "none"
        lines += [f"{kind.capitalize()}:", f"- count: {entry['count']}", f"- diameter (mm): {diameters}"]
        lines.append(f"- location: {locations}")
    if not lines:
        return ""
    return "Additional clinical attribute information is provided as follows:\n" + "\n".join(lines)


def prompt_text(
    image_tokens: int,
    present: Sequence[bool],
    segmentation_tokens: int | None,
    attributes: dict | None,
) -> str:
    """The prompt. ``present``: which of the six regions have a mask; ``segmentation_tokens`` per region (None:
    no regions sentence); ``attributes``: the extractor's result (None: no attribute block)."""
    parts = [f"The global visual information is provided here: {IMAGE_OPEN}{placeholders(image_tokens)}{IMAGE_CLOSE}."]
    if segmentation_tokens is not None:
        named = [
            f"{region}{REGION_OPEN}{placeholders(segmentation_tokens)}{REGION_CLOSE}" if has else f"{region} (no mask)"
            for region, has in zip(REGIONS, present, strict=True)
        ]
        parts.append(f"The following regions of interest have been identified: {', '.join(named)}.")
    block = attribute_block(attributes) if attributes is not None else ""
    if block:
        parts.append(block)
    parts.append(INSTRUCTION)
    return "\n".join(parts)


def target_text(region_reports: dict[str, str]) -> str:
    """``[Lung]: ...`` lines for the regions with a report, in region order."""
    return "\n".join(
        f"[{REPORT_HEADINGS[region]}]: {region_reports[region].strip()}"
        for region in REGIONS
        if region_reports.get(region, "").strip()
    )


_LINE = re.compile(r"^\[([A-Za-z ]+)\]:\s*(.*)$")


def parse_target(text: str) -> dict[str, str]:
    """{region: report} from generated ``[Lung]: ...`` lines; unknown headings and other lines are ignored."""
    regions_by_heading = {heading.lower(): region for region, heading in REPORT_HEADINGS.items()}
    out: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE.match(line.strip())
        if match and match.group(1).lower() in regions_by_heading:
            out.setdefault(regions_by_heading[match.group(1).lower()], match.group(2).strip())
    return out
