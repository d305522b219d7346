"""The five lesion attributes and their classes (ISRG-CT's Table 1, in its order)."""

from __future__ import annotations

# attribute -> its classes; a label is the index of its class
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "shape": ("round-like", "irregular", "wall thickening", "punctate, nodular"),
    "invasion": ("no close relationship with surrounding structures", "close relationship with adjacent structures"),
    "density": ("hypodense", "isodense", "hyperdense"),
    "heterogeneity": ("homogeneous", "heterogeneous"),
    "surface": ("well-defined margin", "ill-defined margin"),
}
ATTRIBUTE_NAMES = tuple(ATTRIBUTES)
NUM_CLASSES = tuple(len(classes) for classes in ATTRIBUTES.values())


def class_index(attribute: str, label: str) -> int:
    """The index of ``label`` among ``attribute``'s classes (case-insensitive); a clear error otherwise."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; the attributes are {list(ATTRIBUTES)}")
    classes = [c.lower() for c in ATTRIBUTES[attribute]]
    if label.strip().lower() not in classes:
        raise ValueError(f"{label!r} is not a class of {attribute}; the classes are {list(ATTRIBUTES[attribute])}")
    return classes.index(label.strip().lower())
