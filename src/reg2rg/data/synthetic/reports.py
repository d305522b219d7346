"""CT-RATE style report sentences: a region report from the region's findings, several paraphrases each.

A region with findings states them (in ``FINDING_NAMES`` order); a region without any gets a
normal statement. Either way, findings of the region that are absent may be negated the way
radiologists write it ("No pleural effusion.", "Pericardial effusion-thickening was not
observed."), each with its own probability, so that a rule-based labeler meets realistic text.
Breast: every study has a breast mask (thin for men), so every study gets a breast sentence
(normal fibroglandular tissue for women, "no gynecomastia" for men).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from reg2rg.constants import REGIONS
from reg2rg.data.synthetic.findings import FINDING_NAMES, Finding

# Order of the regions in the whole report (the usual reading order of a chest CT report).
REPORT_ORDER: tuple[str, ...] = (
    "trachea and bronchie",
    "thyroid",
    "heart",
    "mediastinum",
    "esophagus",
    "lung",
    "pleura",
    "breast",
    "abdomen",
    "bone",
)

NORMAL: dict[str, tuple[str, ...]] = {
    "trachea and bronchie": (
        "Trachea and both main bronchi are in the midline and patent.",
        "The trachea and main bronchi are open, with no obstructive lesion.",
        "Trachea and main bronchi are patent; no endobronchial lesion is seen.",
    ),
    "thyroid": (
        "The thyroid gland is normal in size and attenuation.",
        "Both thyroid lobes appear normal.",
        "No nodule is seen in the thyroid gland.",
    ),
    "heart": ("The heart contour is normal.", "Cardiac contours are unremarkable.", "The heart appears normal."),
    "mediastinum": (
        "Mediastinal main vascular structures are of normal width.",
        "The thoracic aorta and main vascular structures are normal in calibre.",
        "Mediastinal structures are unremarkable.",
    ),
    "esophagus": (
        "Thoracic esophagus calibration is normal and no significant wall thickening is detected.",
        "The esophagus is of normal calibre.",
        "The thoracic esophagus appears normal.",
    ),
    "lung": (
        "Both lungs are clear.",
        "The lung parenchyma is normally aerated; no nodule or mass was detected.",
        "No focal or diffuse abnormality is seen in either lung.",
    ),
    "pleura": ("The pleural spaces are clear.", "No pleural thickening is seen.", "The pleura appear normal."),
    "breast": (
        "Breast tissue is symmetric with no mass lesion.",
        "Both breasts show normal fibroglandular tissue without a focal mass.",
        "No mass is seen in either breast.",
    ),
    "abdomen": (
        "Upper abdominal organs included in the sections are normal.",
        "The liver, spleen and stomach within the scan range are unremarkable.",
        "No abnormality is seen in the upper abdominal organs included in the sections.",
    ),
    "bone": (
        "No lytic-destructive lesions were detected in the bone structures within the sections.",
        "Bone structures are intact.",
        "The osseous structures show no lytic or blastic lesion.",
    ),
}
NORMAL_MALE_BREAST = ("No gynecomastia is seen.", "The breast regions are unremarkable, without gynecomastia.")

# Finding name -> (region, probability of stating its absence, paraphrases of the negation).
NEGATIONS: dict[str, tuple[str, float, tuple[str, ...]]] = {
    "Cardiomegaly": (
        "heart",
        0.9,
        (
            "Heart size is normal.",
            "The heart is of normal size.",
            "Cardiac size is within normal limits.",
        ),
    ),
    "Pericardial effusion": (
        "heart",
        0.7,
        ("Pericardial effusion-thickening was not observed.", "No pericardial effusion."),
    ),
    "Coronary artery wall calcification": ("heart", 0.3, ("No coronary artery calcification is seen.",)),
    "Lymphadenopathy": (
        "mediastinum",
        0.7,
        (
            "No lymph node of pathological size was detected in the mediastinum.",
            "No enlarged lymph nodes in prevascular, paratracheal, subcarinal or hilar stations.",
            "No mediastinal lymphadenopathy.",
        ),
    ),
    "Arterial wall calcification": ("mediastinum", 0.3, ("No calcification is seen in the aortic wall.",)),
    "Hiatal hernia": ("esophagus", 0.5, ("No hiatal hernia.", "No hiatal hernia is seen.")),
    "Pleural effusion": (
        "pleura",
        0.8,
        (
            "No pleural effusion.",
            "No pleural effusion was detected.",
            "Pleural effusion was not observed.",
        ),
    ),
    "Peribronchial thickening": ("trachea and bronchie", 0.3, ("No peribronchial thickening.",)),
    "Lung nodule": ("lung", 0.4, ("No pulmonary nodule was detected.", "No mass or nodule is seen in either lung.")),
    "Consolidation": ("lung", 0.3, ("No consolidation.", "No pneumonic consolidation is seen.")),
    "Lung opacity": ("lung", 0.3, ("No ground-glass opacity.", "No infiltrative opacity is seen.")),
    "Emphysema": ("lung", 0.2, ("No emphysema.", "No emphysematous change is seen.")),
    "Atelectasis": ("lung", 0.2, ("No atelectasis.",)),
    "Pulmonary fibrotic sequela": ("lung", 0.1, ("No fibrotic sequela is seen.",)),
    "Mosaic attenuation pattern": ("lung", 0.1, ("No mosaic attenuation.",)),
    "Bronchiectasis": ("lung", 0.1, ("No bronchiectasis.",)),
    "Interlobular septal thickening": ("lung", 0.1, ("No interlobular septal thickening.",)),
}


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _where(finding: Finding) -> str:
    """'both lungs', 'both upper lobes', 'the right lung', 'the right upper lobe and the left lower lobe'."""
    lobes = set(finding.lobes)
    sides = {lobe.split()[0] for lobe in lobes}
    if not lobes or (len(sides) == 2 and len(lobes) >= 4):
        return "both lungs"
    if lobes == {"right upper lobe", "left upper lobe"}:
        return "both upper lobes"
    if lobes == {"right lower lobe", "left lower lobe"}:
        return "both lower lobes"
    if lobes == {"right upper lobe", "right middle lobe", "right lower lobe"}:
        return "the right lung"
    if lobes == {"left upper lobe", "left lower lobe"}:
        return "the left lung"
    return _join([f"the {lobe}" for lobe in finding.lobes])


def _capital(text: str) -> str:
    return text[0].upper() + text[1:]


def _a(size_mm: int) -> str:
    """The article before a spoken number: 'an 8 mm', 'an 11 mm', 'a 12 mm'."""
    return "an" if str(size_mm).startswith("8") or size_mm in (11, 18) else "a"


def _nodule(f: Finding) -> tuple[str, ...]:
    lobe, a = f.lobes[0], _a(f.size_mm)
    return (
        f"{_capital(a)} {f.size_mm} mm solid nodule is seen in the {lobe}.",
        f"There is {a} {f.size_mm} mm nodule in the {lobe}.",
        f"A solid pulmonary nodule measuring {f.size_mm} mm is noted in the {lobe}.",
    )


def _effusions(findings: list[Finding]) -> tuple[str, ...]:
    """One sentence for the pleural effusion findings of a study (one per side)."""
    if len(findings) == 1:
        f = findings[0]
        return (
            f"A {f.extent} {f.side} pleural effusion is present.",
            f"There is a {f.extent} pleural effusion on the {f.side}.",
            f"{_capital(f.extent)} {f.side}-sided pleural effusion.",
        )
    extents = {f.side: f.extent for f in findings}
    if extents["right"] == extents["left"]:
        return (
            f"Bilateral {extents['right']} pleural effusions are present.",
            f"{_capital(extents['right'])} pleural effusions are seen on both sides.",
        )
    return (
        f"Bilateral pleural effusions are present, {extents['right']} on the right and {extents['left']} on the left.",
    )


def _nodes(f: Finding) -> tuple[str, ...]:
    stations = _join(list(f.detail)) + (" stations" if len(f.detail) > 1 else " station")
    return (
        f"Enlarged lymph nodes are seen in the {stations}, the largest measuring {f.size_mm} mm in short axis.",
        f"Lymphadenopathy is present in the {stations} (largest short axis {f.size_mm} mm).",
    )


def _material(f: Finding) -> tuple[str, ...]:
    if f.detail == ("pacemaker",):
        return (
            "A cardiac pacemaker is present, with its lead ending in the right ventricle.",
            "A pacemaker lead is seen extending into the right ventricle.",
        )
    return ("Sternotomy wires are seen.", "Median sternotomy wires are present.")


# Finding name -> paraphrases stating one finding.
POSITIVE: dict[str, Callable[[Finding], tuple[str, ...]]] = {
    "Lung nodule": _nodule,
    "Emphysema": lambda f: (
        f"{_capital(f.extent)} centrilobular emphysema is seen in {_where(f)}.",
        f"Emphysematous changes ({f.extent}) are present in {_where(f)}.",
    ),
    "Lung opacity": lambda f: (
        f"Ground-glass opacity is seen in {_where(f)}.",
        f"There are ground-glass densities in {_where(f)}.",
        f"Patchy ground-glass opacity is noted in {_where(f)}.",
    ),
    "Consolidation": lambda f: (
        f"Consolidation with air bronchograms is seen in {_where(f)}.",
        f"An area of consolidation is present in {_where(f)}.",
    ),
    "Atelectasis": lambda f: (
        f"Plate-like atelectasis is seen in {_where(f)}.",
        f"Subsegmental atelectasis is noted in {_where(f)}.",
    ),
    "Pulmonary fibrotic sequela": lambda f: (
        f"Fibrotic sequelae are seen in {_where(f)}.",
        f"Parenchymal fibrotic bands (sequelae) are present in {_where(f)}.",
    ),
    "Mosaic attenuation pattern": lambda f: (
        f"A mosaic attenuation pattern is seen in {_where(f)}.",
        f"Mosaic attenuation is observed in {_where(f)}.",
    ),
    "Bronchiectasis": lambda f: (
        f"Cylindrical bronchiectasis is seen in {_where(f)}.",
        f"Bronchiectatic changes are present in {_where(f)}.",
    ),
    "Interlobular septal thickening": lambda f: (
        f"Interlobular septal thickening is seen in the subpleural areas of {_where(f)}.",
        f"Thickened interlobular septa are noted in {_where(f)}.",
    ),
    "Cardiomegaly": lambda f: (
        "The heart is enlarged (cardiomegaly).",
        "Cardiomegaly is present.",
        "Heart size is increased, consistent with cardiomegaly.",
    ),
    "Pericardial effusion": lambda f: (
        f"Pericardial effusion measuring up to {f.size_mm} mm in thickness is present.",
        f"There is a pericardial effusion with a maximum thickness of {f.size_mm} mm.",
    ),
    "Coronary artery wall calcification": lambda f: (
        "Calcific plaques are seen in the coronary arteries.",
        "Coronary artery wall calcification is present.",
    ),
    "Arterial wall calcification": lambda f: (
        "Atherosclerotic calcifications are seen in the wall of the thoracic aorta.",
        "Calcific plaques are present in the aortic wall.",
    ),
    "Lymphadenopathy": _nodes,
    "Hiatal hernia": lambda f: (
        f"A hiatal hernia measuring {f.size_mm} mm is seen.",
        f"There is a sliding hiatal hernia ({f.size_mm} mm).",
    ),
    "Peribronchial thickening": lambda f: (
        "Peribronchial thickening is seen in both lungs.",
        "Bronchial walls are thickened (peribronchial thickening).",
    ),
    "Medical material": _material,
    "Thyroid nodule": lambda f: (
        f"{_capital(_a(f.size_mm))} {f.size_mm} mm hypodense nodule is seen in the {f.side} thyroid lobe.",
        f"There is {_a(f.size_mm)} {f.size_mm} mm nodule in the {f.side} lobe of the thyroid gland.",
    ),
    "Hepatic cyst": lambda f: (
        f"{_capital(_a(f.size_mm))} {f.size_mm} mm hypodense cyst is seen in the liver.",
        f"There is {_a(f.size_mm)} {f.size_mm} mm simple cyst in the liver.",
    ),
    "Vertebral osteophytes": lambda f: (
        "Degenerative osteophytes are seen at the thoracic vertebral margins.",
        "There are degenerative changes with osteophytes in the thoracic spine.",
    ),
}


def region_reports(
    findings: list[Finding], female: bool, regions: list[str], rng: np.random.Generator, varied: bool = True
) -> dict[str, str]:
    """A report for each region in ``regions`` (those with a non-empty mask), in ``REPORT_ORDER``.

    ``varied``: paraphrases drawn at random and absent findings negated at random (realistic text);
    else every statement in its first wording and no negations, so that all the text a region's
    report varies by comes from its image.
    """
    unknown = set(regions) - set(REGIONS)
    if unknown:
        raise ValueError(f"unknown region(s) {sorted(unknown)}; expected names from {REGIONS}")

    def pick(options: tuple[str, ...]) -> str:
        return options[int(rng.integers(len(options)))] if varied else options[0]

    present = {f.name for f in findings}
    reports = {}
    for region in (r for r in REPORT_ORDER if r in regions):
        sentences = []
        mine = [f for f in findings if f.region == region]
        for name in FINDING_NAMES:
            of_kind = [f for f in mine if f.name == name]
            if name == "Pleural effusion" and of_kind:
                sentences.append(pick(_effusions(of_kind)))
            else:
                sentences += [pick(POSITIVE[name](f)) for f in of_kind]
        if not mine:
            sentences.append(pick(NORMAL_MALE_BREAST if region == "breast" and not female else NORMAL[region]))
        for name, (where, probability, options) in NEGATIONS.items():
            if varied and where == region and rng.random() < probability and name not in present:
                sentences.append(pick(options))
        reports[region] = " ".join(sentences)
    return reports


def whole_report(reports: dict[str, str]) -> str:
    """The region reports joined in ``REPORT_ORDER``."""
    return " ".join(reports[region] for region in REPORT_ORDER if region in reports)
