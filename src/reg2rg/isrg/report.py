"""The structured lesion report: ISRG-CT's Table 1 template filled from the predicted attributes."""

from __future__ import annotations

from collections.abc import Mapping

from .attributes import ATTRIBUTES

# attribute -> the report's wording of each class (Table 1)
TEMPLATE: dict[str, tuple[str, ...]] = {
    "shape": ("Round-like", "Irregular", "Wall thickening", "Punctate, nodular"),
    "invasion": ("No close relationship with surrounding structures", "Close relationship with adjacent structures"),
    "density": ("Hypodense", "Isodense", "Hyperdense"),
    "heterogeneity": ("Homogeneous", "Heterogeneous"),
    "surface": ("Well-defined margin", "Ill-defined margin"),
}


def render_report(labels: Mapping[str, str]) -> str:
    """{attribute: class} -> one line per attribute, in Table 1's order and wording, e.g. 'Shape: Round-like.'"""
    lines = []
    for attribute, classes in ATTRIBUTES.items():
        if attribute not in labels:
            raise ValueError(f"the report needs every attribute; {attribute!r} is missing from {dict(labels)}")
        index = [c.lower() for c in classes].index(labels[attribute].lower())
        lines.append(f"{attribute.capitalize()}: {TEMPLATE[attribute][index]}.")
    return "\n".join(lines)


def append_to_region_report(region_report: str, lesion_report: str) -> str:
    """A region's report with the lesion's report after it, as one paragraph: 'Lesion: Shape: ... .'"""
    lesion = " ".join(lesion_report.splitlines())
    return f"{region_report.rstrip()} Lesion: {lesion}".strip()
