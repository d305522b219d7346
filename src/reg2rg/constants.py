"""Names and numbers shared by every part of reg2rg (one place, so they never drift apart)."""

VERSION = "0.1.0"  # pyproject.toml's version; reg2rg.__version__, and recorded in every checkpoint

# The 10 anatomical regions of Reg2RG, in the canonical (evaluation) order.
REGIONS: tuple[str, ...] = (
    "abdomen",
    "bone",
    "breast",
    "esophagus",
    "heart",
    "lung",
    "mediastinum",
    "pleura",
    "thyroid",
    "trachea and bronchie",
)

# The 18 CT-RATE abnormality labels, in the column order of CT-RATE's label CSVs.
CT_RATE_LABELS: tuple[str, ...] = (
    "Medical material",
    "Arterial wall calcification",
    "Cardiomegaly",
    "Pericardial effusion",
    "Coronary artery wall calcification",
    "Hiatal hernia",
    "Lymphadenopathy",
    "Emphysema",
    "Atelectasis",
    "Lung nodule",
    "Lung opacity",
    "Pulmonary fibrotic sequela",
    "Pleural effusion",
    "Mosaic attenuation pattern",
    "Peribronchial thickening",
    "Consolidation",
    "Bronchiectasis",
    "Interlobular septal thickening",
)

# Label value ignored by the LM loss (prompt, visual and padding positions).
IGNORE_INDEX = -100


def canonical_region(name: str) -> str | None:
    """Map a region spelling ("Trachea_and_Bronchie", "lung ") to its canonical name, or None."""
    key = " ".join(name.replace("_", " ").replace("-", " ").split()).lower()
    return key if key in REGIONS else None
