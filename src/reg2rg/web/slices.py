"""PNG slices of a study for the page: a window preset, the region masks, a lesion mask and its click points.

Slices are drawn in the radiological convention of ``reg2rg.visualize.ras`` (axial seen from the feet,
coronal from the front, sagittal from the patient's left), one image pixel per voxel; the page stretches
them to the voxel spacing's aspect ratio and writes the RAS letters at their edges.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

import numpy as np
from matplotlib.colors import to_rgb
from scipy.ndimage import binary_erosion

from reg2rg.visualize.palette import region_colour
from reg2rg.visualize.ras import _EDGES, VIEWS, _best_slice, _display, _RasStudy

# Window presets as (level, width) in HU.
WINDOWS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "bone": (400.0, 1800.0),
}
LESION_COLOUR = "#ff2020"
POINT_COLOURS = {True: "#20ff40", False: "#ff40ff"}  # positive, negative click
FILL, HIGHLIGHT_FILL, DIMMED_FILL, LESION_FILL = 0.25, 0.55, 0.08, 0.45


def _plane_axes(view: str) -> tuple[int, int, int]:
    """(the RAS axis the view slices, then the other two in RAS order)."""
    axis = VIEWS[view]
    first, second = (a for a in range(3) if a != axis)
    return axis, first, second


def view_geometry(ras: _RasStudy, view: str) -> dict:
    """What the page needs to lay out one view: slice count, image size, pixel size (mm) and edge letters."""
    axis, first, second = _plane_axes(view)
    left, right, top, bottom = _EDGES[view]
    return {
        "slices": int(ras.shape[axis]),
        "rows": int(ras.shape[second]),
        "cols": int(ras.shape[first]),
        "row_mm": float(ras.spacing[second]),
        "col_mm": float(ras.spacing[first]),
        "edges": {"left": left, "right": right, "top": top, "bottom": bottom},
    }


def best_slices(ras: _RasStudy, regions: Sequence[str]) -> dict[str, int]:
    """The slice of each view that cuts through the most regions (the grounded figure's choice)."""
    return {view: _best_slice(ras, regions, axis) for view, axis in VIEWS.items()}


def voxel_at(shape: Sequence[int], view: str, index: int, row: int, col: int) -> tuple[int, int, int]:
    """The RAS voxel (x, y, z) under image pixel (row, col) of slice ``index``: the inverse of ``_display``."""
    axis, first, second = _plane_axes(view)
    position = [0, 0, 0]
    position[axis] = index
    position[second] = shape[second] - 1 - row  # rows run from the high end (anterior / superior) down
    position[first] = shape[first] - 1 - col if view == "sagittal" else col
    for value, size in zip(position, shape):
        if not 0 <= value < size:
            raise ValueError(f"pixel ({row}, {col}) of {view} slice {index} is outside the volume {tuple(shape)}")
    return position[0], position[1], position[2]


def _blend(image: np.ndarray, mask: np.ndarray, colour: str, alpha: float, outline: bool) -> None:
    """Paint ``mask`` over the RGB float ``image`` (rows, cols, 3) in place: a fill, and its outline opaque."""
    rgb = np.asarray(to_rgb(colour))
    image[mask] = (1 - alpha) * image[mask] + alpha * rgb
    if outline:
        image[mask & ~binary_erosion(mask)] = rgb


def render_slice(
    ras: _RasStudy,
    view: str,
    index: int,
    window: str,
    regions: Iterable[str] = (),
    highlight: str | None = None,
    lesion: np.ndarray | None = None,
    points: Sequence[tuple[tuple[int, int, int], bool]] = (),
) -> bytes:
    """One slice as PNG bytes.

    ``regions``: the region masks to draw (filled; ``highlight`` strongly and outlined, the others dimmed then).
    ``lesion``: a bool RAS mask (X, Y, Z), filled and outlined. ``points``: ((x, y, z), positive) clicks,
    drawn as rings around the clicked voxel where they lie on this slice.
    """
    from PIL import Image

    if view not in VIEWS:
        raise ValueError(f"view must be one of {list(VIEWS)}, got {view!r}")
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {list(WINDOWS)}, got {window!r}")
    axis = VIEWS[view]
    if not 0 <= index < ras.shape[axis]:
        raise ValueError(f"{view} slice {index} is outside 0..{ras.shape[axis] - 1}")
    level, width = WINDOWS[window]
    plane = np.take(ras.volume, index, axis=axis).astype(np.float32)
    grey = np.clip((plane - (level - width / 2)) / width, 0.0, 1.0)
    image = np.repeat(_display(grey, view)[..., None], 3, axis=2)  # (rows, cols, 3)
    for region in regions:
        mask = ras.plane(region, axis, index)
        if mask is not None:
            alpha = FILL if highlight is None else HIGHLIGHT_FILL if region == highlight else DIMMED_FILL
            _blend(image, _display(mask, view), region_colour(region), alpha, outline=region == highlight)
    if lesion is not None:
        _blend(image, _display(np.take(lesion, index, axis=axis), view), LESION_COLOUR, LESION_FILL, outline=True)
    for voxel, positive in points:
        if voxel[axis] == index:
            marker = np.zeros(plane.shape, dtype=bool)
            centre = [v for a, v in enumerate(voxel) if a != axis]
            marker[tuple(slice(max(c - 1, 0), c + 2) for c in centre)] = True
            marker[tuple(centre)] = False  # a ring: the clicked voxel itself stays visible
            _blend(image, _display(marker, view), POINT_COLOURS[positive], 1.0, outline=False)
    buffer = io.BytesIO()
    Image.fromarray(np.round(image * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
