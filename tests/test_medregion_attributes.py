"""MedRegion-CT's patient-specific attributes: the extractor against values computed here from the files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from _fixtures import SHAPE, ct_array, expect_error, write_nifti

from reg2rg.medregion.attributes import LesionMask, extract_attributes
from reg2rg.medregion.phantom import PhantomConfig
from reg2rg.medregion.regions import radgenome_to_medregion, regroup_reports
from reg2rg.medregion.study_masks import read_mask_folder
from reg2rg.medregion.testbed import phantom_study, write_study

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("extract_attributes", ROOT / "scripts" / "extract_attributes.py")
extract_script = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(extract_script)

# Every lesion kind in every study; 3 nodules wanted (fewer when they do not fit apart from each other).
LESIONS = PhantomConfig(nodule_counts=(0, 0, 0, 1), cyst_probability=1.0, effusion_probability=1.0)


def run_script(*args: str) -> int:
    return extract_script.main(list(args))


@pytest.fixture(scope="module")
def written_study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("medregion") / "study"
    write_study(folder, phantom_study(LESIONS, seed=3, split="train", index=0))
    return folder


def test_script_matches_the_phantom_files(written_study, tmp_path):
    out = tmp_path / "attributes.json"
    assert run_script("--volume", str(written_study / "volume.nii.gz"), "--masks", str(written_study / "masks"),
                      "--json", str(out)) == 0  # fmt: skip
    attributes = json.loads(out.read_text())
    truth = json.loads((written_study / "study.json").read_text())["truth"]

    # Organ volumes: voxels counted in each file times the voxel volume from its affine.
    for name, entry in attributes["organs"].items():
        image = nib.load(written_study / "masks" / f"{name}.nii.gz")
        voxel_ml = abs(np.linalg.det(image.affine[:3, :3])) / 1000
        assert entry["volume_ml"] == pytest.approx(np.count_nonzero(image.get_fdata()) * voxel_ml, rel=1e-9)
    assert set(attributes["organs"]) == set(truth["organs_ml"])

    # Nodules: as many as the phantom placed, in its lobes (found by overlap with the lobe masks), listed from the
    # patient's right to left (first voxel in raster order); each diameter is the nodule's bounding box measured
    # around its recorded centre, and within a voxel of the nominal diameter.
    nodules = attributes["lesions"]["nodule"]
    assert nodules["count"] == len(truth["nodules"]) >= 2
    ordered = sorted(truth["nodules"], key=lambda n: n["first_voxel"])
    assert nodules["locations"] == [n["location"].replace("_", " ") for n in ordered]
    spacing = np.abs(np.diag(nib.load(written_study / "volume.nii.gz").affine)[:3])
    expected = []
    for nodule in truth["nodules"]:
        mask = nib.load(written_study / "masks" / "nodule.nii.gz").get_fdata() > 0
        voxels = np.argwhere(mask)
        near = voxels[np.linalg.norm((voxels - nodule["center_voxel"]) * spacing, axis=1) <= nodule["diameter_mm"]]
        extent = (near.max(axis=0) - near.min(axis=0) + 1) * spacing
        expected.append(extent.max())
        assert abs(extent.max() - nodule["diameter_mm"]) <= spacing.max()
    order = sorted(range(len(expected)), key=lambda i: truth["nodules"][i]["first_voxel"])
    assert nodules["diameters_mm"] == pytest.approx([expected[i] for i in order])

    cyst, effusion = attributes["lesions"]["cyst"], attributes["lesions"]["effusion"]
    assert cyst["count"] == 1 and cyst["locations"] == [truth["cysts"][0]["location"].replace("_", " ")]
    assert effusion["count"] == 1 and effusion["locations"] == [f"{truth['effusion']['side']} pleural space"]


def test_spacing_connectivity_and_edge_cases():
    spacing = (0.5, 2.0, 3.0)
    block = np.zeros((10, 10, 10), dtype=bool)
    block[1:4, 1:5, 1:6] = True  # 3 x 4 x 5 voxels: 1.5 x 8 x 15 mm, 60 voxels of 3 mm³
    corners = np.zeros_like(block)
    corners[0, 0, 0] = corners[1, 1, 1] = True  # touch by a corner: one lesion
    apart = np.zeros_like(block)
    apart[0, 0, 0] = apart[0, 0, 2] = True  # a voxel between them: two lesions
    single = np.zeros_like(block)
    single[5, 5, 5] = True
    empty = np.zeros_like(block)
    result = extract_attributes(
        {"block": block, "empty": empty, "single": single},
        [
            LesionMask("nodule", block),
            LesionMask("cyst", corners, "liver"),
            LesionMask("effusion", apart),
            LesionMask("effusion", empty),
        ],  # fmt: skip
        spacing,
    )
    assert result["organs"]["block"]["volume_ml"] == pytest.approx(60 * 3 / 1000)
    assert result["organs"]["empty"]["volume_ml"] == 0.0
    assert result["organs"]["single"]["volume_ml"] == pytest.approx(3 / 1000)
    assert result["lesions"]["nodule"] == {"count": 1, "diameters_mm": [15.0], "locations": ["block"]}
    assert result["lesions"]["cyst"] == {"count": 1, "diameters_mm": [6.0], "locations": ["liver"]}
    # Located in no organ: "unspecified"; the empty second effusion mask adds nothing.
    assert result["lesions"]["effusion"] == {"count": 2, "diameters_mm": [3.0, 3.0],
                                             "locations": ["unspecified", "unspecified"]}  # fmt: skip
    one_voxel = extract_attributes({}, [LesionMask("nodule", single)], spacing)
    assert one_voxel["lesions"]["nodule"]["diameters_mm"] == [3.0]  # the largest voxel side
    assert extract_attributes({}, [LesionMask("nodule", empty)], spacing)["lesions"]["nodule"]["count"] == 0


def test_location_from_organ_overlap_and_missing_masks_left_out(tmp_path):
    affine = np.diag([1.5, 1.5, 4.0, 1.0])
    write_nifti(tmp_path / "ct.nii.gz", ct_array(), affine)
    lobe = np.zeros(SHAPE, dtype=np.uint8)
    lobe[3:8, 4:12, 1:7] = 1
    nodule = np.zeros(SHAPE, dtype=np.uint8)
    nodule[4:6, 5:7, 2] = 1
    write_nifti(tmp_path / "masks" / "right_upper_lobe.nii.gz", lobe, affine)
    write_nifti(tmp_path / "masks" / "nodule.nii.gz", nodule, affine)
    attributes = read_mask_folder(tmp_path / "ct.nii.gz", tmp_path / "masks").attributes()
    assert attributes["lesions"] == {"nodule": {"count": 1, "diameters_mm": [4.0], "locations": ["right upper lobe"]}}
    assert list(attributes["organs"]) == ["right_upper_lobe"]  # no heart, liver or kidney mask: none invented
    assert attributes["organs"]["right_upper_lobe"]["volume_ml"] == pytest.approx(5 * 8 * 6 * 9 / 1000)


def test_mask_off_the_volume_grid_names_the_file(tmp_path, capsys):
    write_nifti(tmp_path / "ct.nii.gz", ct_array())
    small = write_nifti(tmp_path / "shape" / "liver.nii.gz", np.ones((8, 8, 8), dtype=np.uint8))
    with expect_error("grid_mismatch", small, "mask shape (8, 8, 8) differs"):
        read_mask_folder(tmp_path / "ct.nii.gz", tmp_path / "shape")
    moved = write_nifti(tmp_path / "affine" / "liver.nii.gz", np.ones(SHAPE, dtype=np.uint8), np.diag([2, 1, 1, 1]))
    with expect_error("grid_mismatch", moved, "mask affine"):
        read_mask_folder(tmp_path / "ct.nii.gz", tmp_path / "affine")
    assert run_script("--volume", str(tmp_path / "ct.nii.gz"), "--masks", str(tmp_path / "affine"),
                      "--json", str(tmp_path / "out.json")) == 1  # fmt: skip
    assert str(moved) in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()


def test_label_map_with_the_totalsegmentator_mapping(tmp_path):
    affine = np.diag([2.0, 2.0, 5.0, 1.0])
    write_nifti(tmp_path / "ct.nii.gz", ct_array(), affine)
    labels = np.zeros(SHAPE, dtype=np.int16)
    labels[3:9, 4:10, 1:5] = 3  # kidney_left
    labels[5:7, 5:7, 2:4] = 23  # kidney_cyst_left, inside it
    labels[10:13, 4:12, 1:7] = 12  # lung_upper_lobe_right
    write_nifti(tmp_path / "seg.nii.gz", labels, affine)
    out = tmp_path / "attributes.json"
    assert run_script("--volume", str(tmp_path / "ct.nii.gz"), "--labelmap", str(tmp_path / "seg.nii.gz"),
                      "--mapping", "medregion_totalsegmentator", "--json", str(out)) == 0  # fmt: skip
    attributes = json.loads(out.read_text())
    voxel_ml = 2 * 2 * 5 / 1000
    assert attributes["organs"] == {
        "right_upper_lobe": {"volume_ml": pytest.approx(3 * 8 * 6 * voxel_ml)},
        "left_kidney": {"volume_ml": pytest.approx((6 * 6 * 4 - 2 * 2 * 2) * voxel_ml)},
    }
    assert attributes["lesions"] == {"cyst": {"count": 1, "diameters_mm": [10.0], "locations": ["left kidney"]}}


def test_radgenome_regions_regroup_into_six():
    mapping = radgenome_to_medregion(ROOT / "configs" / "mappings" / "medregion_radgenome.yaml")
    assert set(mapping.values()) == {"lung", "airway", "mediastinum", "heart", "osseous", "abdomen"}
    assert "breast" not in mapping
    reports = {"lung": "Nodule.", "pleura": "Effusion.", "breast": "Normal.", "trachea and bronchie": "Patent."}
    assert regroup_reports(reports, mapping) == {"lung": "Nodule. Effusion.", "airway": "Patent."}
