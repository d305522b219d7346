"""ISRG-CT lesion phantoms: the recorded attributes are what the image shows; the held-out types stay out."""

import numpy as np
from scipy import ndimage

from reg2rg.isrg.attributes import ATTRIBUTES
from reg2rg.isrg.crops import crop, largest_lesion_centre
from reg2rg.isrg.phantoms import LESION_TYPES, SEEN_TYPES, ZERO_SHOT_TYPES, phantom_split
from reg2rg.isrg.report import append_to_region_report, render_report


def test_eight_types_in_seven_organs_and_two_held_out():
    assert len(LESION_TYPES) == 8 and len({t.organ for t in LESION_TYPES}) == 7
    train = phantom_split("train", 12, seed=0)
    assert {p.lesion_type for p in train} == set(SEEN_TYPES)
    assert {p.lesion_type for p in phantom_split("zeroshot", 4, seed=0)} == set(ZERO_SHOT_TYPES)
    again = phantom_split("train", 2, seed=0)
    np.testing.assert_array_equal(again[1].volume_hu, train[1].volume_hu)


def test_recorded_attributes_match_the_image():
    phantoms = phantom_split("train", 60, seed=1)
    for p in phantoms:
        shape, invasion, density, heterogeneous, ill_defined = p.attributes
        lesion = p.label
        inner = ndimage.binary_erosion(lesion, iterations=1)
        if not ill_defined and inner.sum() > 20:  # a blurred edge reaches deep into a small lesion
            spread = p.volume_hu[inner].std()
            assert (spread > 20) == bool(heterogeneous), (p.lesion_type, spread)  # texture of 45 HU or noise of 10
        vessel = (p.volume_hu > 150) & (p.volume_hu < 210) & ~lesion  # the contrast vessel (180 HU)
        if p.lesion_type not in ("bone metastasis", "kidney tumor"):  # their organs are as bright as the vessel
            distance = ndimage.distance_transform_edt(~lesion)[ndimage.binary_opening(vessel)].min()
            assert distance <= 2.5 if invasion else distance >= 3.5, (p.lesion_type, distance)  # touching / 4-6 away
        if shape == 3:
            assert lesion.sum() <= 4 / 3 * np.pi * 3.3**3
        if shape == 2:
            assert p.lesion_type == "esophageal cancer"


def test_a_lesion_at_the_border_is_cropped_with_air_padding():
    volume = np.zeros((10, 10, 10), np.float32)
    label = np.zeros((10, 10, 10), bool)
    label[0:3, 4:6, 7:10] = True
    centre = largest_lesion_centre(label)
    cube, origin = crop(volume, centre, 8, -1000.0)
    assert centre == (1, 5, 8) and tuple(origin) == (-3, 1, 4)  # the middle of the lesion's bounding box
    assert (cube[:3] == -1000).all() and (cube[3:, :, :6] == 0).all() and (cube[:, :, 6:] == -1000).all()


def test_report_fills_table_1_and_appends_to_a_region_report():
    labels = {name: classes[0] for name, classes in ATTRIBUTES.items()}
    report = render_report(labels)
    assert report.splitlines() == [
        "Shape: Round-like.",
        "Invasion: No close relationship with surrounding structures.",
        "Density: Hypodense.",
        "Heterogeneity: Homogeneous.",
        "Surface: Well-defined margin.",
    ]
    assert append_to_region_report("The liver is enlarged.", report).startswith(
        "The liver is enlarged. Lesion: Shape: Round-like. Invasion:"
    )
