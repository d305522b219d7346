"""Text layout of the figure: its sizes (inches, points), rendered text widths, word wrap, report blocks."""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.font_manager import FontProperties
from matplotlib.textpath import text_to_path

from reg2rg.visualize.grounding import GroundedRegion

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


@dataclass
class _Block:
    entry: GroundedRegion
    header: list[str]
    body: list[str]

    @property
    def height(self) -> float:  # inches
        return (len(self.header) * _HEADER_SIZE + len(self.body) * _BODY_SIZE) * _LINE / 72


def _layout_blocks(entries: list[GroundedRegion], width_in: float) -> list[_Block]:
    indent = 0.25 * 72  # the colour swatch left of the heading
    width_pt = width_in * 72 - indent
    return [
        _Block(e, _wrap(e.header(), width_pt, _HEADER_SIZE, bold=True), _wrap(e.body(), width_pt, _BODY_SIZE))
        for e in entries
    ]
