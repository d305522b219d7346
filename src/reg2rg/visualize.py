"""Grounded report pictures: each region report beside the region mask it was generated from.

    from reg2rg.models import from_pretrained
    from reg2rg.visualize import grounded_figure, open_study, save_grounded_report

    model = from_pretrained("outputs/train/demo/<run>/checkpoints/checkpoint-<step>")
    study, sample = open_study("data/synthetic/cache", 0)            # a cached study + its model sample
    [generation] = model.generate_reports([sample])
    figure = grounded_figure(study, generation, truth_regions=sample["regions"])
    save_grounded_report(figure, "study.png", "study.html")

The figure shows axial, coronal and sagittal slices (chosen to cut through as many regions as
possible), every region mask as a translucent fill and a contour in the region's fixed colour
(``PALETTE``), a legend, and the region reports in the same colours. Report "The region i is
<area>: ..." is grounded in the mask the model was given as region i, ``truth_regions[i]``.
Where the area the model named differs from that region's true area, the report is flagged
(⚠ predicted <area>, true <area>): the model did not recognise the region it describes, so the
report is unreliable.

Display convention: radiological. Axial slices are seen from the feet (the patient's right on
the image's left, anterior up), coronal ones from the front (right on the left, superior up),
sagittal ones from the patient's left (anterior on the left, superior up). The volume is
reoriented to RAS with the study's affine first, so every source orientation displays alike,
and pixels keep the voxel spacing's aspect ratio.
"""

from __future__ import annotations

import base64
import html
import io
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import FancyBboxPatch, Patch, Rectangle
from matplotlib.textpath import text_to_path

from reg2rg.constants import REGIONS, canonical_region
from reg2rg.text.parse import RegionReport, parse_region_reports

if TYPE_CHECKING:
    from reg2rg.data.cache import CachedStudy
    from reg2rg.data.preprocessing import PreprocessConfig

__all__ = [
    "PALETTE",
    "VIEWS",
    "WARNING",
    "GroundedFigure",
    "GroundedRegion",
    "Grounding",
    "ground_reports",
    "grounded_figure",
    "grounded_html",
    "open_study",
    "region_colour",
    "render_study",
    "save_grounded_report",
]

# One fixed colour per region, the same in every picture. Paul Tol's colour-blind safe "muted"
# scheme (9 colours) plus Okabe-Ito orange, assigned so that touching regions differ in hue and
# lightness: light colours for the air-filled regions (lung, airways), which lie on black, and
# dark ones for soft-tissue regions, which lie on light grey.
PALETTE: dict[str, str] = {
    "abdomen": "#44aa99",  # teal
    "bone": "#e69f00",  # orange
    "breast": "#999933",  # olive
    "esophagus": "#117733",  # green
    "heart": "#882255",  # wine
    "lung": "#88ccee",  # cyan
    "mediastinum": "#332288",  # indigo
    "pleura": "#cc6677",  # rose
    "thyroid": "#aa4499",  # purple
    "trachea and bronchie": "#ddcc77",  # sand
}
assert tuple(PALETTE) == REGIONS
UNKNOWN_COLOUR = "#777777"  # a report that no input region can be matched to
WARNING = "\u26a0"  # ⚠

# View name -> the RAS axis it slices (0 = x, patient Left; 1 = y, Anterior; 2 = z, Superior).
VIEWS: dict[str, int] = {"axial": 2, "coronal": 1, "sagittal": 0}
# Orientation letters at the (left, right, top, bottom) edges of each view, radiological display.
_EDGES = {"axial": ("R", "L", "A", "P"), "coronal": ("R", "L", "S", "I"), "sagittal": ("A", "P", "S", "I")}

DEFAULT_WINDOW = (-1000.0, 400.0)  # HU: lungs and soft tissue both readable
FILL_ALPHA = 0.28

# Layout (inches, fonts in points).
_WIDTH = 16.0
_MARGIN = 0.3
_TITLE_BAND = 0.75
_CELL = 3.8  # the side of each image
_EDGE = 0.24  # the band around each image that holds its orientation letters
_PANEL_TITLE = 0.3
_GAP = 0.2
_TEXT_GAP = 0.35
_TITLE_SIZE = 15
_PANEL_SIZE = 11
_HEADER_SIZE = 10.5
_BODY_SIZE = 10
_LEGEND_SIZE = 10
_LINE = 1.4  # line height / font size
_BLOCK_GAP = 0.14


# ---------------------------------------------------------------------------------------------
# Which report belongs to which mask


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
    return " ".join("".join("\ufffd" if unicodedata.category(c).startswith("C") else c for c in word)
                    for word in text.split())


def region_colour(region: str | None) -> str:
    """The fixed colour of a region (any spelling ``canonical_region`` knows); grey for unknown ones."""
    if region is None:
        return UNKNOWN_COLOUR
    return PALETTE.get(canonical_region(region) or "", UNKNOWN_COLOUR)


def _region_reports(reports: Any, truth: list[str] | None, first_index: int) -> tuple[list[RegionReport], str]:
    """(region reports, whole text) from a Generation, generated text, RegionReports or {area: report}."""
    if hasattr(reports, "regions") and hasattr(reports, "text"):  # reg2rg.models.Generation
        return list(reports.regions), reports.text
    if isinstance(reports, str):
        return parse_region_reports(reports), reports
    if isinstance(reports, Mapping):  # {area: report}, e.g. the reference reports of a cache entry
        order = truth if truth is not None else [r for r in REGIONS if r in reports]
        found = [RegionReport(first_index + i, area, str(reports[area]))
                 for i, area in enumerate(order) if reports.get(area)]
        return found, " ".join(r.report for r in found)
    found = list(reports)
    if not all(isinstance(r, RegionReport) for r in found):
        raise TypeError("reports must be a Generation, generated text, RegionReports or a {area: report} mapping")
    return found, " ".join(r.report for r in found)


def ground_reports(reports: Any, truth_regions: Sequence[str] | None = None,
                   first_index: int = 0) -> list[GroundedRegion]:
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
        entries += [GroundedRegion(first_index + k, region, None, "")
                    for k, region in enumerate(truth) if k not in reported]
    return sorted(entries, key=lambda e: e.index)


# ---------------------------------------------------------------------------------------------
# The study in RAS, its masks and the slices that show them


class _RasStudy:
    """A cached study's crop and region masks viewed in RAS axis order (views, no copies of the volume)."""

    def __init__(self, study: CachedStudy):
        import nibabel as nib

        self.study = study
        affine = np.asarray(study.meta["affine"], dtype=float)
        self.ornt = nib.orientations.io_orientation(affine)  # (3, 2): input axis -> (RAS axis, flip)
        self.volume = nib.orientations.apply_orientation(study.volume, self.ornt)  # (X, Y, Z) RAS
        sizes = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
        self.spacing = np.empty(3)
        for axis, (target, _) in enumerate(self.ornt):
            self.spacing[int(target)] = sizes[axis]
        self.shape = self.volume.shape
        self._masks: dict[str, tuple[list[tuple[int, int]], np.ndarray]] = {}

    def mask(self, region: str) -> tuple[list[tuple[int, int]], np.ndarray]:
        """(box in RAS crop voxels, the bool mask inside it in RAS order) of a region."""
        import nibabel as nib

        if region not in self._masks:
            box = [tuple(b) for b in self.study.meta["regions"][region]["mask_box"]]
            ras_box: list[tuple[int, int]] = [(0, 0)] * 3
            for axis, (target, flip) in enumerate(self.ornt):
                lo, hi = box[axis]
                n = self.study.crop_shape[axis]
                ras_box[int(target)] = (n - hi, n - lo) if flip < 0 else (lo, hi)
            self._masks[region] = (ras_box, nib.orientations.apply_orientation(self.study.mask(region), self.ornt))
        return self._masks[region]

    def profile(self, region: str, axis: int) -> np.ndarray:
        """Voxels of ``region`` in each slice across ``axis``."""
        box, mask = self.mask(region)
        counts = np.zeros(self.shape[axis])
        counts[box[axis][0] : box[axis][1]] = mask.sum(axis=tuple(a for a in range(3) if a != axis))
        return counts

    def plane(self, region: str, axis: int, index: int) -> np.ndarray | None:
        """The region's mask on slice ``index`` across ``axis`` (the other two axes in RAS order), or None."""
        box, mask = self.mask(region)
        lo, hi = box[axis]
        if not lo <= index < hi:
            return None
        part = np.take(mask, index - lo, axis=axis)
        if not part.any():
            return None
        others = [a for a in range(3) if a != axis]
        full = np.zeros([self.shape[a] for a in others], dtype=bool)
        full[box[others[0]][0] : box[others[0]][1], box[others[1]][0] : box[others[1]][1]] = part
        return full


def _best_slice(ras: _RasStudy, regions: Sequence[str], axis: int) -> int:
    """The slice across ``axis`` that cuts through the most regions, each counted once it shows at
    least half of its largest cross-section; ties go to the slice nearest the regions' centroid."""
    n = ras.shape[axis]
    if not regions:
        return n // 2
    profiles = [ras.profile(r, axis) for r in regions]
    score = sum(np.minimum(1.0, p / max(0.5 * p.max(), 1e-9)) for p in profiles)
    total = sum(profiles)
    centre = float((total * np.arange(n)).sum() / total.sum()) if total.sum() else n / 2
    return int(np.argmax(score - 1e-3 * np.abs(np.arange(n) - centre) / n))


def _display(plane: np.ndarray, view: str) -> np.ndarray:
    """A RAS plane (first axis, second axis) -> image rows and columns in the radiological convention."""
    image = plane.T[::-1]  # rows: the second axis (y or z) from its high end (anterior / superior) down
    return image[:, ::-1] if view == "sagittal" else image  # sagittal: anterior (high y) on the left


# ---------------------------------------------------------------------------------------------
# Text layout


def _text_width(text: str, size: float, bold: bool = False) -> float:
    """Rendered width in points (unhinted outlines, plus 3 % for hinting at screen resolutions)."""
    prop = FontProperties(size=size, weight="bold" if bold else "normal")
    width, _, _ = text_to_path.get_text_width_height_descent(text, prop, ismath=False)
    return 1.03 * width


def _wrap(text: str, width_pt: float, size: float, bold: bool = False) -> list[str]:
    """Greedy word wrap to ``width_pt`` points of rendered text (words longer than a line are cut)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if _text_width(candidate, size, bold) <= width_pt:
            line = candidate
            continue
        if line:
            lines.append(line)
        while _text_width(word, size, bold) > width_pt and len(word) > 1:
            cut = max(1, int(len(word) * width_pt / _text_width(word, size, bold)) - 1)
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    if line:
        lines.append(line)
    return lines or [""]


def _text_colour(colour: str, contrast: float = 4.5) -> tuple[float, float, float]:
    """``colour`` darkened until it reaches ``contrast`` against white (WCAG), for text."""

    def luminance(rgb: np.ndarray) -> float:
        linear = np.where(rgb <= 0.03928, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
        return float(linear @ [0.2126, 0.7152, 0.0722])

    rgb = np.array(to_rgb(colour))
    while 1.05 / (luminance(rgb) + 0.05) < contrast:
        rgb = rgb * 0.92
    return tuple(rgb)


@dataclass
class _Block:
    entry: GroundedRegion
    header: list[str]
    body: list[str]

    @property
    def height(self) -> float:  # inches
        return (len(self.header) * _HEADER_SIZE + len(self.body) * _BODY_SIZE) * _LINE / 72


# ---------------------------------------------------------------------------------------------
# The figure


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


class GroundedFigure(Figure):
    """A matplotlib ``Figure`` that knows what it shows (``grounding``) and displays itself in notebooks
    as a PNG, with or without pyplot's inline backend."""

    grounding: Grounding

    def _repr_png_(self) -> bytes:
        return _png_bytes(self, 100)


def grounded_figure(
    study: CachedStudy,
    reports: Any,
    truth_regions: Sequence[str] | None = None,
    *,
    first_index: int = 0,
    window: tuple[float, float] = DEFAULT_WINDOW,
    slices: Mapping[str, int] | None = None,
    title: str | None = None,
    caption: str | None = None,
    width: float = _WIDTH,
) -> GroundedFigure:
    """A picture of ``study`` with its region reports beside the masks they are grounded in.

    Args:
        study: a ``CachedStudy`` (``open_study`` gives one with its model sample).
        reports: a ``Generation`` (``model.generate_reports``), generated text, a list of
            ``RegionReport`` or a mapping from area to report (e.g. the reference reports).
        truth_regions: the true area of each input region, in prompt order (``sample["regions"]``);
            region i of the text is ``truth_regions[i - first_index]``. Needed to flag reports whose
            predicted area is wrong; without it the masks of the named areas are drawn, unflagged.
        first_index: the number of the first region (the prompt's ``first_region_index``, 0 by default).
        window: display HU window (low, high).
        slices: slice index per view ("axial", "coronal", "sagittal") in the RAS-oriented crop,
            overriding the automatic choice (the slice that cuts the most regions).
        title: the heading (default: the study id); caption: a second line, e.g. where the reports come from.
        width: figure width in inches; the height follows from the images and the amount of text.

    Returns a matplotlib ``Figure`` (not registered with pyplot: display it as a notebook cell's
    value, ``save_grounded_report`` it, or ``figure.savefig``); ``figure.grounding`` holds what it
    shows (the reports, their flags, the regions drawn and the slices).
    """
    low, high = window
    if not low < high:
        raise ValueError(f"window must be (low, high) with low < high, got {window}")
    unknown_views = set(slices or {}) - set(VIEWS)
    if unknown_views:
        raise ValueError(f"unknown views {sorted(unknown_views)}; choose from {list(VIEWS)}")
    entries = ground_reports(reports, truth_regions, first_index)
    ras = _RasStudy(study)
    wanted = [canonical_region(r) or r for r in truth_regions] if truth_regions is not None else study.regions
    wanted += [e.region for e in entries if e.region]
    drawn = [r for r in REGIONS if r in wanted and r in study.regions]
    chosen = {view: _best_slice(ras, drawn, axis) for view, axis in VIEWS.items()}
    for view, index in (slices or {}).items():
        if not 0 <= index < ras.shape[VIEWS[view]]:
            raise ValueError(f"{view} slice {index} is outside 0..{ras.shape[VIEWS[view]] - 1}")
        chosen[view] = int(index)
    study_id = study.meta.get("study_id", study.path.stem)
    grounding = Grounding(study_id, title or f"Study {study_id}", caption, entries, drawn, chosen)

    cell_width, cell_height = _CELL + 2 * _EDGE, _PANEL_TITLE + _CELL + 2 * _EDGE
    text_x = _MARGIN + 2 * cell_width + _GAP + _TEXT_GAP
    text_width = width - text_x - _MARGIN
    if text_width < 2.5:
        raise ValueError(f"width {width} in leaves no room for the reports; use at least {text_x + _MARGIN + 2.5:.1f}")
    blocks = _layout_blocks(entries, text_width)
    images_height = 2 * cell_height + _GAP
    text_height = 0.4 + sum(b.height + _BLOCK_GAP for b in blocks)
    height = _TITLE_BAND + max(images_height, text_height) + _MARGIN
    figure = GroundedFigure(figsize=(width, height), dpi=100, facecolor="white")
    figure.grounding = grounding

    top = height - _TITLE_BAND
    figure.text(_MARGIN, height - 0.38, grounding.title, fontsize=_TITLE_SIZE, weight="bold", va="center",
                transform=figure.dpi_scale_trans, gid="title")
    if caption:
        figure.text(_MARGIN, height - 0.62, caption, fontsize=_BODY_SIZE, color="#444444", va="center",
                    transform=figure.dpi_scale_trans, gid="caption")
    visible: set[str] = set()
    for name, (row, col) in {"axial": (0, 0), "coronal": (0, 1), "sagittal": (1, 0), "legend": (1, 1)}.items():
        x = _MARGIN + _EDGE + col * (cell_width + _GAP)
        y = top - row * (cell_height + _GAP) - _PANEL_TITLE - _EDGE - _CELL
        ax = figure.add_axes((x / width, y / height, _CELL / width, _CELL / height), label=name)
        if name == "legend":  # last: it marks the regions that no view shows
            grounding.hidden = [r for r in drawn if r not in visible]
            _draw_legend(ax, grounding)
        else:
            visible |= _draw_view(ax, ras, name, chosen[name], drawn, window)
    _draw_reports(figure, blocks, text_x, text_width, top)
    return figure


def _layout_blocks(entries: list[GroundedRegion], width_in: float) -> list[_Block]:
    indent = 0.25 * 72  # the colour swatch left of the heading
    width_pt = width_in * 72 - indent
    return [
        _Block(e, _wrap(e.header(), width_pt, _HEADER_SIZE, bold=True), _wrap(e.body(), width_pt, _BODY_SIZE))
        for e in entries
    ]


def _draw_view(ax, ras: _RasStudy, view: str, index: int, regions: Sequence[str],
               window: tuple[float, float]) -> set[str]:
    """One slice with the masks it cuts; returns those regions."""
    axis = VIEWS[view]
    other = [a for a in range(3) if a != axis]
    row_mm, col_mm = ras.spacing[other[1]], ras.spacing[other[0]]
    image = _display(np.take(ras.volume, index, axis=axis), view)
    rows, cols = image.shape
    extent = (0, cols * col_mm, rows * row_mm, 0)
    smooth = "bilinear" if max(rows, cols) < 300 else "antialiased"  # small volumes are enlarged, large ones reduced
    ax.imshow(image, cmap="gray", vmin=window[0], vmax=window[1], extent=extent, interpolation=smooth)
    planes = {r: ras.plane(r, axis, index) for r in regions}
    planes = {r: _display(p, view) for r, p in planes.items() if p is not None}
    # Fills: large regions first, so that a region lying inside another (lung in pleura) stays visible.
    fill = np.zeros((rows, cols, 4))
    for region in sorted(planes, key=lambda r: -planes[r].sum()):
        fill[planes[region]] = (*to_rgb(PALETTE[region]), FILL_ALPHA)
    ax.imshow(fill, extent=extent, interpolation="nearest")
    xs, ys = (np.arange(cols) + 0.5) * col_mm, (np.arange(rows) + 0.5) * row_mm
    for region, plane in planes.items():
        ax.contour(xs, ys, plane.astype(float), levels=[0.5], colors=[PALETTE[region]], linewidths=1.4)
    ax.set_xlim(0, cols * col_mm)
    ax.set_ylim(rows * row_mm, 0)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    left, right, up, down = _EDGES[view]  # outside the image, in the band around it
    style = {"transform": ax.transAxes, "color": "#333333", "fontsize": 11, "weight": "bold"}
    ax.text(-0.012, 0.5, left, ha="right", va="center", gid=f"{view}-left", **style)
    ax.text(1.012, 0.5, right, ha="left", va="center", gid=f"{view}-right", **style)
    ax.text(0.5, 1.008, up, ha="center", va="bottom", gid=f"{view}-top", **style)
    ax.text(0.5, -0.008, down, ha="center", va="top", gid=f"{view}-bottom", **style)
    ax.set_title(f"{view.capitalize()}  (slice {index + 1} of {ras.shape[axis]})", fontsize=_PANEL_SIZE, pad=17)
    return set(planes)


def _draw_legend(ax, grounding: Grounding) -> None:
    ax.set_axis_off()
    if not grounding.regions:
        ax.text(0, 1, "No region mask to show", transform=ax.transAxes, va="top", fontsize=_LEGEND_SIZE)
        return
    handles = [
        Patch(facecolor=(*to_rgb(PALETTE[r]), 0.45), edgecolor=PALETTE[r], linewidth=1.5,
              label=f"{r} (not in these slices)" if r in grounding.hidden else r)
        for r in grounding.regions
    ]
    legend = ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.02, 1.0), frameon=False,
                       fontsize=_LEGEND_SIZE, title="Region masks", title_fontsize=_PANEL_SIZE,
                       alignment="left", handlelength=1.6, handleheight=1.1, labelspacing=0.55)
    legend.set_gid("legend")
    notes = []
    if any(e.index is not None for e in grounding.entries):
        notes.append("Each region report is written for the mask of its region.")
    if any(e.mismatch for e in grounding.entries):
        notes.append(f"{WARNING} The model named another area than the region's true one: that report is unreliable.")
    lines = [line for note in notes for line in _wrap(note, _CELL * 72 * 0.95, 9)]
    if lines:
        ax.text(0.02, 0.0, "\n".join(lines), transform=ax.transAxes, va="bottom", ha="left", fontsize=9,
                color="#333333", linespacing=1.35, gid="legend-note")


def _draw_reports(figure: Figure, blocks: list[_Block], x: float, width: float, top: float) -> None:
    inch = figure.dpi_scale_trans
    figure.text(x, top - 0.05, "Region reports", fontsize=_PANEL_SIZE + 1, weight="bold", va="top",
                transform=inch, gid="reports-title")
    y = top - 0.4
    indent = 0.25
    for block in blocks:
        entry = block.entry
        if entry.mismatch:
            figure.add_artist(FancyBboxPatch(
                (x - 0.08, y - block.height - 0.04), width + 0.12, block.height + 0.08, transform=inch,
                boxstyle="round,pad=0,rounding_size=0.06", facecolor="#FFF1D6", edgecolor="#E0A030", linewidth=1.0,
                gid=f"flag-box-{entry.index}"))
        line_header = _HEADER_SIZE * _LINE / 72
        swatch = 0.15
        figure.add_artist(Rectangle(
            (x, y - line_header / 2 - swatch / 2), swatch, swatch, transform=inch, facecolor=entry.colour,
            edgecolor=_text_colour(entry.colour), linewidth=0.8, gid=f"swatch-{entry.index}"))
        header_colour = (0.72, 0.1, 0.05) if entry.mismatch else _text_colour(entry.colour)
        for k, line in enumerate(block.header):
            figure.text(x + indent, y - (k + 0.5) * line_header, line, fontsize=_HEADER_SIZE, weight="bold",
                        color=header_colour, va="center", transform=inch, gid=f"header-{entry.index}")
        y -= len(block.header) * line_header
        line_body = _BODY_SIZE * _LINE / 72
        body_style = {"color": "#777777", "style": "italic"} if entry.missing else {"color": "#1A1A1A"}
        for k, line in enumerate(block.body):
            figure.text(x + indent, y - (k + 0.5) * line_body, line, fontsize=_BODY_SIZE, va="center",
                        transform=inch, gid=f"body-{entry.index}", **body_style)
        y -= len(block.body) * line_body + _BLOCK_GAP


# ---------------------------------------------------------------------------------------------
# Files


def _grounding(figure: Figure) -> Grounding:
    grounding = getattr(figure, "grounding", None)
    if not isinstance(grounding, Grounding):
        raise TypeError("not a grounded figure: make it with reg2rg.visualize.grounded_figure")
    return grounding


def _png_bytes(figure: Figure, dpi: float, colours: int | None = None) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, facecolor="white", pil_kwargs={"optimize": True})
    if colours is None:
        return buffer.getvalue()
    from PIL import Image

    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    # The region colours (and their text shades, black, white) are kept exact; the rest of the
    # palette is an octree quantisation of the picture.
    fixed = [*PALETTE.values(), *(_text_colour(c) for c in PALETTE.values()), UNKNOWN_COLOUR, "#ffffff", "#000000"]
    exact = list(dict.fromkeys(tuple(round(255 * v) for v in to_rgb(c)) for c in fixed))
    if colours <= len(exact) or colours > 256:
        raise ValueError(f"colours must be in {len(exact) + 1}..256, got {colours}")
    octree = image.quantize(colors=colours - len(exact), method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    rest = np.array(octree.getpalette()[: 3 * (colours - len(exact))]).reshape(-1, 3)
    palette = np.concatenate([np.array(exact), rest])
    # Each distinct colour to its nearest palette entry (PIL's own mapping is approximate).
    pixels = np.asarray(image, dtype=np.int64)
    keys, inverse = np.unique((pixels[..., 0] << 16) | (pixels[..., 1] << 8) | pixels[..., 2], return_inverse=True)
    distinct = np.stack([keys >> 16, (keys >> 8) & 255, keys & 255], axis=1)
    nearest = np.concatenate([((part[:, None, :] - palette[None]) ** 2).sum(-1).argmin(1)
                              for part in np.array_split(distinct, max(1, len(distinct) // 4096))])
    small = Image.frombytes("P", image.size, nearest[inverse].astype(np.uint8).tobytes())
    small.putpalette(palette.astype(np.uint8).ravel().tolist())
    buffer = io.BytesIO()
    small.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def grounded_html(figure: Figure, png: bytes | None = None, dpi: float = 100) -> str:
    """A self-contained HTML page: the figure as an embedded PNG and the reports as coloured text."""
    grounding = _grounding(figure)
    png = png if png is not None else _png_bytes(figure, dpi)
    image = base64.b64encode(png).decode("ascii")
    esc = html.escape
    items = []
    for entry in grounding.entries:
        colour = "#" + "".join(f"{round(255 * c):02x}" for c in _text_colour(entry.colour))
        classes = "region flagged" if entry.mismatch else "region missing" if entry.missing else "region"
        items.append(
            f'<div class="{classes}" style="border-left-color:{entry.colour}">'
            f'<h3 style="color:{colour}">{esc(entry.header())}</h3><p>{esc(entry.body())}</p></div>'
        )
    caption = f"<p class=\"caption\">{esc(grounding.caption)}</p>" if grounding.caption else ""
    legend = "".join(
        f'<li><span class="swatch" style="background:{PALETTE[r]}"></span>{esc(r)}'
        f'{" (not in these slices)" if r in grounding.hidden else ""}</li>'
        for r in grounding.regions
    )
    note = ""
    if any(e.mismatch for e in grounding.entries):
        note = (f'<p class="note">{WARNING} The model named another area than the region\'s true one: '
                "that report is unreliable.</p>")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{esc(grounding.title)}</title>
<style>
body {{ font-family: "DejaVu Sans", Verdana, sans-serif; margin: 1.5em; color: #1a1a1a; max-width: 1600px; }}
img {{ max-width: 100%; height: auto; border: 1px solid #ddd; }}
.caption {{ color: #444; margin-top: -0.6em; }}
.region {{ border-left: 8px solid; padding: 0.2em 0.8em; margin: 0.7em 0; max-width: 60em; }}
.region h3 {{ margin: 0.2em 0; font-size: 1.05em; }}
.region p {{ margin: 0.2em 0 0.3em; line-height: 1.4; }}
.flagged {{ background: #fff1d6; }}
.flagged h3 {{ color: #b81a0d !important; }}
.missing p {{ color: #777; font-style: italic; }}
ul.legend {{ list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 0.4em 1.4em; }}
.swatch {{ display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.4em; vertical-align: -0.1em; }}
.note {{ color: #444; }}
</style>
</head>
<body>
<h1>{esc(grounding.title)}</h1>
{caption}
<img alt="Axial, coronal and sagittal slices of study {esc(grounding.study_id)} with its region masks"
 src="data:image/png;base64,{image}">
<h2>Region masks</h2>
<ul class="legend">{legend}</ul>
<h2>Region reports</h2>
{note}
{chr(10).join(items)}
</body>
</html>
"""


def save_grounded_report(figure: Figure, png_path: str | Path, html_path: str | Path | None = None,
                         dpi: float = 100, colours: int | None = None) -> tuple[Path, Path | None]:
    """Write a ``grounded_figure`` as a PNG and, when ``html_path`` is given, a self-contained HTML page
    (the same PNG embedded as base64 and the reports as coloured text; no external assets).

    ``colours``: store the PNG with a palette of this many colours (e.g. 256: files about 4x
    smaller, the CT's greys slightly posterised; the region colours stay exact).
    """
    _grounding(figure)
    png = _png_bytes(figure, dpi, colours)
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.write_bytes(png)
    if html_path is None:
        return png_path, None
    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(grounded_html(figure, png), encoding="utf-8")
    return png_path, html_path


# ---------------------------------------------------------------------------------------------
# A study from the cache, with the sample a model takes


def open_study(cache_dir: str | Path, study: int | str = 0, split: str = "valid",
               preprocessing: PreprocessConfig | Mapping[str, Any] | None = None,
               lfd: bool = True) -> tuple[CachedStudy, dict]:
    """A cached study (by position in the split or by id) and its model sample, regions in canonical order.

    The sample is made with ``preprocessing`` (default: the parameters the cache's precomputed
    arrays were made with, i.e. those of the training run that built the cache). Close the study
    (``study.close()``) when done with it.
    """
    from reg2rg.data.build import read_index
    from reg2rg.data.cache import CachedStudy
    from reg2rg.data.dataset import load_sample
    from reg2rg.data.preprocessing import PreprocessConfig

    cache_dir = Path(cache_dir)
    entries = read_index(cache_dir, split)
    if isinstance(study, str):
        position = next((i for i, e in enumerate(entries) if e["study_id"] == study), None)
        if position is None:
            raise ValueError(f"study {study!r} is not in {cache_dir / (split + '.jsonl')}")
    else:
        position = int(study)
        if not -len(entries) <= position < len(entries):
            raise ValueError(f"study {study} is out of range: {split} has {len(entries)} studies")
    entry = entries[position]
    opened = CachedStudy(cache_dir / entry["file"])
    try:
        if preprocessing is None:
            params = opened.meta.get("precomputed")
            if params is None:
                raise ValueError(f"{opened.path} has no precomputed arrays: pass preprocessing=... as in training")
            preprocessing = PreprocessConfig(**params, foreground_hu=opened.meta["foreground_hu"])
        elif not isinstance(preprocessing, PreprocessConfig):
            preprocessing = PreprocessConfig(**preprocessing)
        usable = set(entry["regions"])  # what CachedRegionDataset(shuffle_regions=False) gives
        regions = [r for r in REGIONS if r in usable and entry["region_reports"].get(r)]
        if not regions:
            raise ValueError(f"study {entry['study_id']} has no region with both a mask and a report")
        sample = load_sample(opened, entry, preprocessing, regions, lfd)
    except BaseException:
        opened.close()
        raise
    return opened, sample


def render_study(cache_dir: str | Path, study: int | str = 0, checkpoint: str | Path | None = None, *,
                 split: str = "valid", png_path: str | Path | None = None, html_path: str | Path | None = None,
                 max_new_tokens: int = 512, device: str | None = None, colours: int | None = None,
                 **figure_options: Any) -> GroundedFigure:
    """A cached study's grounded picture in one call (``scripts/render_example.py``).

    With ``checkpoint`` the reports are the model's (greedy); without one they are the study's
    reference reports, and the caption says so. Written to ``png_path`` / ``html_path`` when given;
    ``figure_options`` go to ``grounded_figure``.
    """
    opened, sample = open_study(cache_dir, study, split)
    try:
        truth = sample["regions"]
        if checkpoint is None:
            reports: Any = dict(zip(truth, sample["region_reports"]))
            first_index = 0
            caption = "Reference (ground-truth) region reports of the study, not model output"
        else:
            import torch

            from reg2rg.models import from_pretrained

            model = from_pretrained(checkpoint, device=device or ("cuda" if torch.cuda.is_available() else "cpu"))
            [reports] = model.generate_reports([sample], max_new_tokens=max_new_tokens)
            first_index = model.template.first_region_index
            caption = f"Model output: {Path(checkpoint).name}, greedy decoding"
        figure_options.setdefault("caption", caption)
        figure = grounded_figure(opened, reports, truth_regions=truth, first_index=first_index, **figure_options)
    finally:
        opened.close()
    if png_path is not None:
        save_grounded_report(figure, png_path, html_path, colours=colours)
    return figure
