"""Which report belongs to which mask: region reports tied to the input regions, wrong areas flagged."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reg2rg.constants import REGIONS, canonical_region
from reg2rg.text.parse import RegionReport, parse_region_reports
from reg2rg.visualize.palette import region_colour

WARNING = "\u26a0"  # ⚠


@dataclass(frozen=True)
class GroundedRegion:
    """One report of the picture, tied to the mask it was generated from.

    ``index``: the region number in the text ("The region i is ..."), None for text without region
    prefixes (RRA off). ``region``: the true area, i.e. the mask given to the model as region i
    (None when no input region has that number). ``predicted``: the area the model named, None
    when it wrote nothing for this region. ``flag``: why the report is unreliable, or None.
    """

    index: int | None
    region: str | None
    predicted: str | None
    report: str
    flag: str | None = None

    @property
    def mismatch(self) -> bool:
        """The model named another area than the region's true one (or a region that was not input)."""
        return self.flag is not None

    @property
    def missing(self) -> bool:
        """An input region the model wrote no report for."""
        return self.index is not None and self.predicted is None

    @property
    def colour(self) -> str:
        return region_colour(self.region)

    def header(self) -> str:
        """The report's heading, e.g. "Region 3 - heart" or "⚠ Region 3 - predicted heart, true lung"."""
        if self.index is None:
            return "Report (no region prefixes: not grounded in a mask)"
        if self.flag:
            return f"{WARNING} Region {self.index} - {self.flag}"
        if self.missing:
            return f"Region {self.index} - {self.region}"
        return f"Region {self.index} - {self.predicted}"

    def body(self) -> str:
        return self.report if not self.missing else "(no report generated for this region)"


def _printable(text: str) -> str:
    """Text for display: control and unassigned characters (an undertrained model emits them) as �."""
    return " ".join(
        "".join("\ufffd" if unicodedata.category(c).startswith("C") else c for c in word) for word in text.split()
    )


def _region_reports(reports: Any, truth: list[str] | None, first_index: int) -> tuple[list[RegionReport], str]:
    """(region reports, whole text) from a Generation, generated text, RegionReports or {area: report}."""
    if hasattr(reports, "regions") and hasattr(reports, "text"):  # reg2rg.models.Generation
        return list(reports.regions), reports.text
    if isinstance(reports, str):
        return parse_region_reports(reports), reports
    if isinstance(reports, Mapping):  # {area: report}, e.g. the reference reports of a cache entry
        order = truth if truth is not None else [r for r in REGIONS if r in reports]
        found = [
            RegionReport(first_index + i, area, str(reports[area])) for i, area in enumerate(order) if reports.get(area)
        ]
        return found, " ".join(r.report for r in found)
    found = list(reports)
    if not all(isinstance(r, RegionReport) for r in found):
        raise TypeError("reports must be a Generation, generated text, RegionReports or a {area: report} mapping")
    return found, " ".join(r.report for r in found)


def ground_reports(
    reports: Any, truth_regions: Sequence[str] | None = None, first_index: int = 0
) -> list[GroundedRegion]:
    """Tie each region report to its input region, flagging those whose predicted area is wrong.

    ``reports``: a ``Generation``, generated text, a list of ``RegionReport`` or a mapping from area
    to report. ``truth_regions[k]``: the area of the mask given to the model as region
    ``first_index + k`` (``sample["regions"]``). Without it the predicted area names are taken as
    the regions and nothing can be flagged. Input regions without a report are listed as missing.
    """
    truth = None if truth_regions is None else [canonical_region(r) or r for r in truth_regions]
    found, text = _region_reports(reports, truth, first_index)
    entries: list[GroundedRegion] = []
    reported: set[int] = set()
    for item in found:
        area = _printable(item.area)
        item = RegionReport(item.index, area, _printable(item.report))
        if truth is None:
            entries.append(GroundedRegion(item.index, canonical_region(area), area, item.report))
            continue
        k = item.index - first_index
        if 0 <= k < len(truth):
            reported.add(k)
            flag = None if canonical_region(area) == truth[k] else f"predicted {area}, true {truth[k]}"
            entries.append(GroundedRegion(item.index, truth[k], area, item.report, flag))
        else:
            flag = f"predicted {area}, but no input region {item.index}"
            entries.append(GroundedRegion(item.index, None, area, item.report, flag))
    if not found:
        return [GroundedRegion(None, None, None, _printable(text))] if text.strip() else []
    if truth is not None:
        entries += [
            GroundedRegion(first_index + k, region, None, "") for k, region in enumerate(truth) if k not in reported
        ]
    return sorted(entries, key=lambda e: e.index)


@dataclass
class Grounding:
    """What a grounded figure shows, kept on it as ``figure.grounding`` (``save_grounded_report`` uses it)."""

    study_id: str
    title: str
    caption: str | None
    entries: list[GroundedRegion]
    regions: list[str]  # the masks drawn, in legend order
    slices: dict[str, int]  # view -> slice index in the RAS-oriented crop
    hidden: list[str] = field(default_factory=list)  # drawn regions that none of the slices cuts
