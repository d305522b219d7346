"""The fixed colour of each region, and its darker shade for text on white."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import to_rgb

from reg2rg.constants import REGIONS, canonical_region

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
# MedRegion-CT's regions that Reg2RG names otherwise take the colour of the Reg2RG region they cover.
MEDREGION_NAMES = {"airway": "trachea and bronchie", "osseous": "bone"}


def region_colour(region: str | None) -> str:
    """The fixed colour of a region (any spelling ``canonical_region`` knows, or a MedRegion-CT region); grey for
    unknown ones."""
    if region is None:
        return UNKNOWN_COLOUR
    return PALETTE.get(canonical_region(region) or MEDREGION_NAMES.get(region, ""), UNKNOWN_COLOUR)


def _text_colour(colour: str, contrast: float = 4.5) -> tuple[float, float, float]:
    """``colour`` darkened until it reaches ``contrast`` against white (WCAG), for text."""

    def luminance(rgb: np.ndarray) -> float:
        linear = np.where(rgb <= 0.03928, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
        return float(linear @ [0.2126, 0.7152, 0.0722])

    rgb = np.array(to_rgb(colour))
    while 1.05 / (luminance(rgb) + 0.05) < contrast:
        rgb = rgb * 0.92
    return tuple(rgb)
