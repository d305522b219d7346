"""The grounded figure: three slices with the region masks, a legend, and the reports beside them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Patch, Rectangle

from reg2rg.constants import REGIONS, canonical_region
from reg2rg.visualize.grounding import WARNING, Grounding, ground_reports
from reg2rg.visualize.layout import (
    _BLOCK_GAP,
    _BODY_SIZE,
    _CELL,
    _EDGE,
    _GAP,
    _HEADER_SIZE,
    _LEGEND_SIZE,
    _LINE,
    _MARGIN,
    _PANEL_SIZE,
    _PANEL_TITLE,
    _TEXT_GAP,
    _TITLE_BAND,
    _TITLE_SIZE,
    _WIDTH,
    _Block,
    _layout_blocks,
    _wrap,
)
from reg2rg.visualize.page import _png_bytes
from reg2rg.visualize.palette import PALETTE, _text_colour
from reg2rg.visualize.ras import _EDGES, VIEWS, _best_slice, _display, _RasStudy

if TYPE_CHECKING:
    from reg2rg.data.cache import CachedStudy


DEFAULT_WINDOW = (-1000.0, 400.0)  # HU: lungs and soft tissue both readable
FILL_ALPHA = 0.28


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
    figure.text(
        _MARGIN,
        height - 0.38,
        grounding.title,
        fontsize=_TITLE_SIZE,
        weight="bold",
        va="center",
        transform=figure.dpi_scale_trans,
        gid="title",
    )
    if caption:
        figure.text(
            _MARGIN,
            height - 0.62,
            caption,
            fontsize=_BODY_SIZE,
            color="#444444",
            va="center",
            transform=figure.dpi_scale_trans,
            gid="caption",
        )
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


def _draw_view(
    ax, ras: _RasStudy, view: str, index: int, regions: Sequence[str], window: tuple[float, float]
) -> set[str]:
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
        Patch(
            facecolor=(*to_rgb(PALETTE[r]), 0.45),
            edgecolor=PALETTE[r],
            linewidth=1.5,
            label=f"{r} (not in these slices)" if r in grounding.hidden else r,
        )
        for r in grounding.regions
    ]
    legend = ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(0.02, 1.0),
        frameon=False,
        fontsize=_LEGEND_SIZE,
        title="Region masks",
        title_fontsize=_PANEL_SIZE,
        alignment="left",
        handlelength=1.6,
        handleheight=1.1,
        labelspacing=0.55,
    )
    legend.set_gid("legend")
    notes = []
    if any(e.index is not None for e in grounding.entries):
        notes.append("Each region report is written for the mask of its region.")
    if any(e.mismatch for e in grounding.entries):
        notes.append(f"{WARNING} The model named another area than the region's true one: that report is unreliable.")
    lines = [line for note in notes for line in _wrap(note, _CELL * 72 * 0.95, 9)]
    if lines:
        ax.text(
            0.02,
            0.0,
            "\n".join(lines),
            transform=ax.transAxes,
            va="bottom",
            ha="left",
            fontsize=9,
            color="#333333",
            linespacing=1.35,
            gid="legend-note",
        )


def _draw_reports(figure: Figure, blocks: list[_Block], x: float, width: float, top: float) -> None:
    inch = figure.dpi_scale_trans
    figure.text(
        x,
        top - 0.05,
        "Region reports",
        fontsize=_PANEL_SIZE + 1,
        weight="bold",
        va="top",
        transform=inch,
        gid="reports-title",
    )
    y = top - 0.4
    indent = 0.25
    for block in blocks:
        entry = block.entry
        if entry.mismatch:
            figure.add_artist(
                FancyBboxPatch(
                    (x - 0.08, y - block.height - 0.04),
                    width + 0.12,
                    block.height + 0.08,
                    transform=inch,
                    boxstyle="round,pad=0,rounding_size=0.06",
                    facecolor="#FFF1D6",
                    edgecolor="#E0A030",
                    linewidth=1.0,
                    gid=f"flag-box-{entry.index}",
                )
            )
        line_header = _HEADER_SIZE * _LINE / 72
        swatch = 0.15
        figure.add_artist(
            Rectangle(
                (x, y - line_header / 2 - swatch / 2),
                swatch,
                swatch,
                transform=inch,
                facecolor=entry.colour,
                edgecolor=_text_colour(entry.colour),
                linewidth=0.8,
                gid=f"swatch-{entry.index}",
            )
        )
        header_colour = (0.72, 0.1, 0.05) if entry.mismatch else _text_colour(entry.colour)
        for k, line in enumerate(block.header):
            figure.text(
                x + indent,
                y - (k + 0.5) * line_header,
                line,
                fontsize=_HEADER_SIZE,
                weight="bold",
                color=header_colour,
                va="center",
                transform=inch,
                gid=f"header-{entry.index}",
            )
        y -= len(block.header) * line_header
        line_body = _BODY_SIZE * _LINE / 72
        body_style = {"color": "#777777", "style": "italic"} if entry.missing else {"color": "#1A1A1A"}
        for k, line in enumerate(block.body):
            figure.text(
                x + indent,
                y - (k + 0.5) * line_body,
                line,
                fontsize=_BODY_SIZE,
                va="center",
                transform=inch,
                gid=f"body-{entry.index}",
                **body_style,
            )
        y -= len(block.body) * line_body + _BLOCK_GAP
