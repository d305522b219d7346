"""Synthetic chest-CT phantoms in the RadGenome-ChestCT layout: the embedded default dataset.

``make_study`` builds one study (volume, region masks, region reports, CT-RATE labels, findings);
``write_dataset`` writes a whole dataset. See ``anatomy`` for the coordinate frame
(voxel axes i, j, k = RAS x (patient Left), y (Anterior), z (Superior)).
"""

from reg2rg.data.synthetic.config import SyntheticConfig
from reg2rg.data.synthetic.findings import EXTRA_FINDINGS, FINDING_NAMES, Finding
from reg2rg.data.synthetic.perturb import perturb_masks
from reg2rg.data.synthetic.reports import REPORT_ORDER
from reg2rg.data.synthetic.study import SyntheticStudy, make_study
from reg2rg.data.synthetic.writer import dataset_matches, summary_line, write_dataset

__all__ = [
    "EXTRA_FINDINGS",
    "FINDING_NAMES",
    "Finding",
    "REPORT_ORDER",
    "SyntheticConfig",
    "SyntheticStudy",
    "dataset_matches",
    "make_study",
    "perturb_masks",
    "summary_line",
    "write_dataset",
]
