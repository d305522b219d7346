"""The files of a grounded figure: its PNG (optionally with a palette) and a self-contained HTML page."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from reg2rg.files import atomic_write_bytes
from reg2rg.visualize.grounding import WARNING, Grounding
from reg2rg.visualize.palette import PALETTE, UNKNOWN_COLOUR, _text_colour


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
    nearest = np.concatenate(
        [
            ((part[:, None, :] - palette[None]) ** 2).sum(-1).argmin(1)
            for part in np.array_split(distinct, max(1, len(distinct) // 4096))
        ]
    )
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
    caption = f'<p class="caption">{esc(grounding.caption)}</p>' if grounding.caption else ""
    legend = "".join(
        f'<li><span class="swatch" style="background:{PALETTE[r]}"></span>{esc(r)}'
        f"{' (not in these slices)' if r in grounding.hidden else ''}</li>"
        for r in grounding.regions
    )
    note = ""
    if any(e.mismatch for e in grounding.entries):
        note = (
            f'<p class="note">{WARNING} The model named another area than the region\'s true one: '
            "that report is unreliable.</p>"
        )
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


def save_grounded_report(
    figure: Figure,
    png_path: str | Path,
    html_path: str | Path | None = None,
    dpi: float = 100,
    colours: int | None = None,
) -> tuple[Path, Path | None]:
    """Write a ``grounded_figure`` as a PNG and, when ``html_path`` is given, a self-contained HTML page
    (the same PNG embedded as base64 and the reports as coloured text; no external assets).

    ``colours``: store the PNG with a palette of this many colours (e.g. 256: files about 4x
    smaller, the CT's greys slightly posterised; the region colours stay exact).
    """
    _grounding(figure)
    png = _png_bytes(figure, dpi, colours)
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(png_path, png)
    if html_path is None:
        return png_path, None
    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(html_path, grounded_html(figure, png).encode("utf-8"))
    return png_path, html_path
