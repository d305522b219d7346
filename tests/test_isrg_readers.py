"""ISRG-CT lesion dataset readers: MSD, nnU-Net and KiTS23 layouts with the attribute CSV."""

import json

import nibabel as nib
import numpy as np
import pytest

from reg2rg.isrg.readers import read_attribute_csv, read_lesion_split
from reg2rg.isrg.studies import load_studies, prepare_studies

HEADER = "study_id,shape,invasion,density,heterogeneity,surface,split\n"
ROW = "{},Irregular,Close relationship with adjacent structures,Hypodense,Heterogeneous,Ill-defined margin,{}\n"


def _write_case(image_path, label_path, lesion: bool, label_value: int = 2):
    """A 40 x 30 x 12 volume (x, y, z) at 1 x 1 x 2.5 mm; a 6-voxel lesion box near the x = 0 border."""
    affine = np.diag([1.0, 1.0, 2.5, 1.0])
    hu = np.full((40, 30, 12), 40.0, np.float32)
    label = np.zeros(hu.shape, np.uint8)
    label[15:25, 5:25, 2:10] = 1  # an organ, not a lesion
    if lesion:
        label[0:6, 10:16, 4:7] = label_value
        hu[0:6, 10:16, 4:7] = -20.0
    image_path.parent.mkdir(parents=True, exist_ok=True)
    label_path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(hu, affine), image_path)
    nib.save(nib.Nifti1Image(label, affine), label_path)


@pytest.fixture
def msd(tmp_path):
    root = tmp_path / "Task03_Liver"
    training = []
    for case, lesion in (("liver_0", True), ("liver_1", True), ("liver_2", False)):
        _write_case(root / "imagesTr" / f"{case}.nii.gz", root / "labelsTr" / f"{case}.nii.gz", lesion)
        training.append({"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"})
    (root / "dataset.json").write_text(
        json.dumps({"labels": {"0": "bg", "1": "liver", "2": "tumour"}, "training": training})
    )
    csv = tmp_path / "attributes.csv"
    csv.write_text(
        HEADER + ROW.format("liver_0", "train") + ROW.format("liver_1", "valid") + ROW.format("liver_2", "train")
    )
    return {
        "source": "msd",
        "root": str(root),
        "reader": {"attributes": str(csv), "lesion_labels": [2]},
        "cube": 16,
        "spacing": 1.5,
        "cache_dir": str(tmp_path / "cache"),
    }


def test_msd_split_is_read_around_the_largest_lesion_and_an_empty_label_map_is_counted(msd):
    studies, skipped, listed = read_lesion_split(msd, "train")
    assert listed == 2 and skipped == {"empty label map": 1} and [s.study_id for s in studies] == ["liver_0"]
    study = studies[0]
    assert study.volume_hu.shape == (16, 16, 16) and study.spacing == (1.5, 1.5, 1.5)
    assert study.attributes.tolist() == [1, 1, 0, 1, 1]
    # the lesion (6 x 6 x 7.5 mm) is in the cube's middle; the padding beyond x = 0 is air
    assert 0.5 * 4**2 * 5 <= study.label.sum() <= 2 * 4**2 * 5
    centre = np.argwhere(study.label).mean(axis=0)
    assert np.all(np.abs(centre - 7.5) <= 1.5)
    assert study.volume_hu[:, :, 0].max() == pytest.approx(-1000.0)
    assert np.median(study.volume_hu[study.label]) < 30  # the -20 HU lesion, blended at its edge by resampling


def test_prepare_writes_each_split_once_and_reports_what_it_skipped(msd):
    report = prepare_studies(msd, ["train", "valid"])
    assert report["train"] == {"usable": 1, "studies": 2, "skipped": {"empty label map": 1}}
    assert report["valid"]["usable"] == 1
    assert [s.study_id for s in load_studies(msd["cache_dir"], "valid")] == ["liver_1"]
    assert prepare_studies(msd, ["train"])["train"] == report["train"]  # read back, not made again


def test_nnunet_and_kits23_layouts(tmp_path, msd):
    nnunet = tmp_path / "Dataset001"
    _write_case(nnunet / "imagesTr" / "liver_0_0000.nii.gz", nnunet / "labelsTr" / "liver_0.nii.gz", True)
    (nnunet / "dataset.json").write_text(
        json.dumps({"labels": {"background": 0, "tumour": 2}, "file_ending": ".nii.gz"})
    )
    studies, _, _ = read_lesion_split({**msd, "root": str(nnunet)}, "train")
    assert [s.study_id for s in studies] == ["liver_0"]
    kits = tmp_path / "kits23"
    _write_case(kits / "case_00000" / "imaging.nii.gz", kits / "case_00000" / "segmentation.nii.gz", True, 2)
    csv = tmp_path / "kits.csv"
    csv.write_text(HEADER + ROW.format("case_00000", "train"))
    data = {**msd, "source": "kits23", "root": str(kits), "reader": {"attributes": str(csv)}}
    studies, skipped, _ = read_lesion_split(data, "train")
    assert [s.study_id for s in studies] == ["case_00000"] and skipped == {}


def test_attribute_csv_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + ROW.format("a", "train").replace("Hypodense", "Very dark"))
    with pytest.raises(ValueError, match=r"bad\.csv, line 2 \(a\): 'Very dark' is not a class of density"):
        read_attribute_csv(bad)
    missing = tmp_path / "missing.csv"
    missing.write_text("study_id,shape\na,Irregular\n")
    with pytest.raises(ValueError, match=r"missing\.csv: columns \['invasion'"):
        read_attribute_csv(missing)
