"""Region reports of the testbed phantom, written from its truth in one wording per statement."""

from __future__ import annotations

from reg2rg.medregion.attributes import readable
from reg2rg.medregion.phantom import CHAMBERS

COUNT_WORDS = ("No", "One", "Two", "Three", "Four", "Five")
ENLARGED_HEART_ML = 280.0  # summed chamber volume above which the phantom's heart is reported enlarged


def lung_report(truth: dict) -> str:
    """Nodule count and lobes, then the effusion: "Two nodules in the right upper lobe and the left lower lobe.".

    The lobes are named from the patient's right to left: in the order of each nodule's first voxel in (X, Y, Z)
    raster order, the order in which the attribute extractor's component labelling lists them (each lobe once).
    """
    nodules = sorted(truth["nodules"], key=lambda n: n["first_voxel"])
    lobes = list(dict.fromkeys(n["location"] for n in nodules))
    count = len(nodules)
    if count == 0:
        statement = "No lung nodule."
    else:
        places = " and ".join(f"the {readable(lobe)}" for lobe in lobes)
        statement = f"{COUNT_WORDS[count]} nodule{'s' if count > 1 else ''} in {places}."
    effusion = truth["effusion"]
    pleura = f"{effusion['side'].capitalize()} pleural effusion." if effusion else "No pleural effusion."
    return f"{statement} {pleura}"


def region_reports(truth: dict) -> dict[str, str]:
    """{region: report} for the six regions, from a phantom's truth record."""
    heart_ml = sum(truth["organs_ml"][chamber] for chamber in CHAMBERS)
    cysts = [readable(c["location"]) for c in truth["cysts"]]
    return {
        "lung": lung_report(truth),
        "airway": "Trachea and main bronchi are patent.",
        "mediastinum": "No mediastinal mass.",
        "heart": "The heart is enlarged." if heart_ml > ENLARGED_HEART_ML else "Heart size is normal.",
        "osseous": "No osseous lesion.",
        "abdomen": " ".join(f"A cyst in the {c}." for c in cysts) or "No abdominal cyst.",
    }
