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

from reg2rg.visualize.figure import GroundedFigure, grounded_figure
from reg2rg.visualize.grounding import WARNING, GroundedRegion, Grounding, ground_reports
from reg2rg.visualize.page import grounded_html, save_grounded_report
from reg2rg.visualize.palette import PALETTE, region_colour
from reg2rg.visualize.ras import VIEWS
from reg2rg.visualize.study import open_study, render_study

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
