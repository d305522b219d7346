"""Readers, volume and mask reading on well-formed inputs (tests/test_bad_inputs.py has the bad ones)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from _fixtures import (
    SHAPE,
    box_mask,
    ct_array,
    radgenome_mask_folder,
    radgenome_volume_path,
    report_rows,
    write_csv,
    write_dicom_series,
    write_jsonl,
    write_mask_folder,
    write_nifti,
    write_radgenome_reports,
    write_radgenome_study,
)
from hydra.utils import instantiate

from reg2rg.constants import CT_RATE_LABELS, REGIONS
from reg2rg.data.masks import drop_empty_regions, load_region_mapping, read_region_masks
from reg2rg.data.readers import CTRGReader, ManifestReader, RadGenomeReader, StudyIndex
from reg2rg.data.records import LabelMap, MaskFolder
from reg2rg.data.volumes import Volume, read_volume

REPO = Path(__file__).resolve().parents[1]
MAPPING = REPO / "configs" / "mappings" / "totalsegmentator.yaml"


def volume_on(affine: np.ndarray, shape: tuple[int, ...] = SHAPE) -> Volume:
    return Volume(ct_array(shape), affine, Path("reference.nii.gz"))


# --- volumes ---------------------------------------------------------------------------------------


def test_read_volume_keeps_int16_and_affine(tmp_path):
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    affine[:3, 3] = (-5.0, 7.0, 11.0)
    path = write_nifti(tmp_path / "ct.nii.gz", ct_array(), affine)

    volume = read_volume(path)

    assert volume.array.dtype == np.int16 and volume.shape == SHAPE
    assert np.array_equal(volume.array, ct_array())
    assert np.allclose(volume.affine, affine) and volume.affine.dtype == np.float64
    assert volume.spacing == pytest.approx((0.8, 0.8, 2.5))
    assert volume.path == path


def test_read_volume_applies_scaling_without_float64(tmp_path):
    raw = (ct_array() + 1024).astype(np.uint16)  # stored as unsigned, intercept -1024
    image = nib.Nifti1Image(raw, np.eye(4))
    image.header.set_slope_inter(1, -1024)
    nib.save(image, tmp_path / "integer.nii.gz")
    image.header.set_slope_inter(0.5, -1024)
    nib.save(image, tmp_path / "fractional.nii.gz")

    integer = read_volume(tmp_path / "integer.nii.gz").array
    fractional = read_volume(tmp_path / "fractional.nii.gz").array

    assert integer.dtype == np.int16 and np.array_equal(integer, ct_array())
    assert fractional.dtype == np.float32
    assert np.allclose(fractional, raw * 0.5 - 1024)


def test_read_volume_float_data_is_float32_and_singleton_4d_is_squeezed(tmp_path):
    array = ct_array().astype(np.float64)[..., None]  # (X, Y, Z, 1)
    volume = read_volume(write_nifti(tmp_path / "float.nii", array))
    assert volume.array.dtype == np.float32 and volume.shape == SHAPE


def test_read_volume_dicom_series_in_xyz_order_with_ras_affine(tmp_path):
    array = ct_array()
    array[1, 2, 3] = 500  # an asymmetric voxel pins down the axis order
    folder = write_dicom_series(tmp_path / "dicom", array, spacing=(0.8, 0.7, 2.5), origin_lps=(-10.0, -20.0, 30.0))

    volume = read_volume(folder)

    assert volume.array.dtype == np.int16 and np.array_equal(volume.array, array)
    expected = np.array([[-0.8, 0, 0, 10.0], [0, -0.7, 0, 20.0], [0, 0, 2.5, 30.0], [0, 0, 0, 1]])  # LPS -> RAS
    assert np.allclose(volume.affine, expected)


# --- masks -----------------------------------------------------------------------------------------


def test_mask_folder_on_the_volume_grid(tmp_path):
    folder = write_mask_folder(tmp_path / "seg", ["lung", "heart"])
    source = MaskFolder(folder, {"lung": folder / "lung.nii.gz", "heart": folder / "heart.nii.gz"})

    masks = read_region_masks(source, volume_on(np.eye(4)), regions=["lung", "trachea_and_bronchie", "heart"])

    assert list(masks) == ["lung", "heart"]  # requested order, only regions the source has
    assert all(mask.dtype == bool and mask.shape == SHAPE for mask in masks.values())
    assert np.array_equal(masks["lung"], box_mask((2, 3, 1), (12, 12, 6)).astype(bool))


def test_label_map_with_the_totalsegmentator_mapping(tmp_path):
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[2:6] = 10  # lung_upper_lobe_left
    labels[6:8] = 14  # lung_lower_lobe_right
    labels[8:10] = 51  # heart
    labels[10:12] = 92  # rib_left_1
    path = write_nifti(tmp_path / "total.nii.gz", labels)

    masks = read_region_masks(LabelMap(path, load_region_mapping(MAPPING)), volume_on(np.eye(4)))

    assert set(masks) == {
        "abdomen",
        "bone",
        "esophagus",
        "heart",
        "lung",
        "mediastinum",
        "thyroid",
        "trachea and bronchie",
    }
    assert np.array_equal(masks["lung"], (labels == 10) | (labels == 14))
    assert np.array_equal(masks["heart"], labels == 51)
    assert np.array_equal(masks["bone"], labels == 92)
    assert not masks["abdomen"].any()


def test_shipped_totalsegmentator_mapping():
    mapping = load_region_mapping(MAPPING)
    assert list(mapping) == [region for region in REGIONS if region not in ("breast", "pleura")]
    assert mapping["lung"] == (10, 11, 12, 13, 14)
    assert mapping["trachea and bronchie"] == (16,)
    assert mapping["heart"] == (51, 61)
    assert mapping["thyroid"] == (17,)
    assert set(range(92, 118)) | set(range(26, 51)) | set(range(69, 75)) == set(mapping["bone"])
    assert {52, 53, 54, 55, 56, 57, 58, 59, 60, 62} == set(mapping["mediastinum"])
    assert {1, 2, 3, 4, 5, 6, 7, 8, 9, 18, 19, 20} <= set(mapping["abdomen"])


def test_mapping_accepts_ids_and_names(tmp_path):
    path = tmp_path / "mapping.yaml"
    path.write_text("labels: {3: left_lobe, 4: right_lobe}\nregions:\n  Lung: [left_lobe, 4, 7]\n  pleura: []\n")
    assert load_region_mapping(path) == {"lung": (3, 4, 7)}


def test_drop_empty_regions_reports_what_it_dropped():
    masks = {"lung": np.ones(SHAPE, bool), "breast": np.zeros(SHAPE, bool)}
    kept, dropped = drop_empty_regions(masks, "study_1")
    assert list(kept) == ["lung"] and dropped == ["breast"]


# --- RadGenome-ChestCT ----------------------------------------------------------------------------


def test_radgenome_reader(tmp_path):
    write_radgenome_study(tmp_path, "train_1_a_1", ["lung", "heart", "trachea_and_bronchie", "left lung"])
    write_radgenome_study(tmp_path, "train_2_b_3", ["trachea and bronchie", "bone"])
    rows = report_rows("train_1_a_1", ["lung", "Heart", "left lung", "trachea and bronchie"])
    rows.append(["train_1_a_1.nii.gz", "lung", "No nodule."])  # a second lung sentence
    rows += report_rows("train_2_b_3", ["trachea and bronchie"], whole=False)
    write_radgenome_reports(tmp_path, "train", rows)
    header = ["VolumeName", *CT_RATE_LABELS]
    write_csv(
        tmp_path / "multi_abnormality_labels" / "train_predicted_labels.csv",
        header,
        [["train_1_a_1.nii.gz"] + ["0", "1"] * 9],
    )

    index = RadGenomeReader(tmp_path).read("train")

    assert isinstance(index, StudyIndex) and not index.skips.skipped
    first, second = index.records
    assert first.study_id == "train_1_a_1" and first.split == "train"
    assert first.volume == radgenome_volume_path(tmp_path, "train_1_a_1")
    assert first.volume.is_file()
    assert first.masks.folder == radgenome_mask_folder(tmp_path, "train_1_a_1")
    assert list(first.masks.files) == ["heart", "lung", "trachea and bronchie"]
    assert first.region_reports == {
        "heart": "The Heart of train_1_a_1 is normal.",
        "lung": "The lung of train_1_a_1 is normal. No nodule.",
        "trachea and bronchie": "The trachea and bronchie of train_1_a_1 is normal.",
    }
    assert first.report == "Whole report of train_1_a_1."
    assert first.labels == dict(zip(CT_RATE_LABELS, [0, 1] * 9))
    assert second.region_reports == {"trachea and bronchie": "The trachea and bronchie of train_2_b_3 is normal."}
    assert second.report == "" and second.labels == {}
    assert index.ignored == {"anatomy 'left lung'": 1, "mask file 'left lung.nii.gz'": 1}


def test_radgenome_valid_split_and_separate_mask_root(tmp_path):
    data, masks = tmp_path / "data", tmp_path / "masks"
    write_radgenome_study(data, "valid_7_a_2", [])
    write_mask_folder(radgenome_mask_folder(masks, "valid_7_a_2"), ["esophagus"])
    write_radgenome_reports(data, "valid", report_rows("valid_7_a_2", ["esophagus"]))

    (record,) = RadGenomeReader(data, mask_root=masks).read("valid").records

    assert record.volume == data / "valid_preprocessed" / "valid_7" / "valid_7a" / "valid_7_a_2.nii.gz"
    assert record.masks.files == {"esophagus": radgenome_mask_folder(masks, "valid_7_a_2") / "esophagus.nii.gz"}


# --- CTRG-Chest-548K ------------------------------------------------------------------------------


def write_ctrg(root: Path, ids: list[str]) -> None:
    write_csv(root / "reports.csv", ["id", "report"], [[sid, f"Report of {sid}."] for sid in ids])
    write_csv(
        root / "region_reports.csv",
        ["Volumename", "Anatomy", "Sentence"],
        [[sid, "lung", f"Lung of {sid}."] for sid in ids],
    )
    for sid in ids:
        write_nifti(root / "volumes" / f"{sid}.nii.gz", ct_array())
        write_mask_folder(root / "masks" / f"seg_{sid}", ["lung"])


def ctrg_reader(root: Path, **overrides) -> CTRGReader:
    arguments = dict(
        root=root,
        report_table="reports.csv",
        id_column="id",
        report_column="report",
        volume_pattern="volumes/{id}.nii.gz",
        mask_root="masks",
        region_report_csv="region_reports.csv",
    )
    return CTRGReader(**(arguments | overrides))


def test_ctrg_split_is_seeded_8_to_2_and_reproducible(tmp_path):
    ids = [f"case{n:03d}" for n in range(50)]
    split = ctrg_reader(tmp_path).split_ids(reversed(ids))

    assert len(split["train"]) == 40 and len(split["valid"]) == 10
    assert sorted(split["train"] + split["valid"]) == ids
    assert ctrg_reader(tmp_path).split_ids(ids) == split  # input order does not matter
    assert ctrg_reader(tmp_path, seed=1).split_ids(ids) != split


def test_ctrg_reader(tmp_path):
    ids = ["a1", "b2", "c3", "d4", "e5"]
    write_ctrg(tmp_path, ids)
    reader = ctrg_reader(tmp_path)

    train, valid = reader.read("train"), reader.read("valid")

    assert sorted(r.study_id for r in train.records + valid.records) == ids
    assert [r.study_id for r in valid.records] == reader.split_ids(ids)["valid"]
    record = train.records[0]
    assert record.volume == tmp_path / "volumes" / f"{record.study_id}.nii.gz"
    assert record.report == f"Report of {record.study_id}."
    assert record.region_reports == {"lung": f"Lung of {record.study_id}."}


# --- manifest -------------------------------------------------------------------------------------


def test_manifest_csv(tmp_path):
    write_nifti(tmp_path / "ct" / "s1.nii.gz", ct_array())
    write_mask_folder(tmp_path / "seg" / "s1", ["lung", "heart"])
    write_nifti(tmp_path / "ct" / "s2.nii.gz", ct_array())
    write_nifti(tmp_path / "seg" / "s2_total.nii.gz", np.zeros(SHAPE, np.uint8))
    header = [
        "study_id",
        "split",
        "volume",
        "masks",
        "label_map",
        "mapping",
        "report",
        "report_lung",
        "report_trachea_and_bronchie",
    ]
    rows = [
        ["s1", "train", "ct/s1.nii.gz", "seg/s1", "", "", "Whole.", "Clear lungs.", ""],
        ["s2", "train", "ct/s2.nii.gz", "", "seg/s2_total.nii.gz", str(MAPPING), "", "Emphysema.", "Patent."],
        ["s3", "valid", "ct/s3.nii.gz", "seg/s3", "", "", "", "x", ""],
    ]
    path = write_csv(tmp_path / "manifest.csv", header, rows)

    s1, s2 = ManifestReader(path).read("train").records

    assert s1.volume == tmp_path / "ct" / "s1.nii.gz" and s1.report == "Whole."
    assert isinstance(s1.masks, MaskFolder) and s1.region_reports == {"lung": "Clear lungs."}
    assert isinstance(s2.masks, LabelMap) and s2.masks.classes == load_region_mapping(MAPPING)
    assert s2.region_reports == {"lung": "Emphysema.", "trachea and bronchie": "Patent."}


def test_manifest_jsonl_with_reader_wide_mapping(tmp_path):
    write_nifti(tmp_path / "s1.nii.gz", ct_array())
    write_nifti(tmp_path / "s1_total.nii.gz", np.zeros(SHAPE, np.uint8))
    row = {
        "study_id": 17,
        "split": "valid",
        "volume": "s1.nii.gz",
        "label_map": "s1_total.nii.gz",
        "report": "Whole.",
        "region_reports": {"Heart": "Normal size.", "trachea and bronchie": "Patent.", "left lung": "Clear."},
    }
    path = write_jsonl(tmp_path / "manifest.jsonl", [row])

    index = ManifestReader(path, mapping=MAPPING).read("valid")

    (record,) = index.records
    assert record.study_id == "17" and record.masks.path == tmp_path / "s1_total.nii.gz"
    assert record.region_reports == {"heart": "Normal size.", "trachea and bronchie": "Patent."}
    assert index.ignored == {"region report 'left lung'": 1}


# --- configs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reader_type", "override"),
    [
        ("synthetic", RadGenomeReader, "data.root={tmp}"),
        ("radgenome", RadGenomeReader, "data.root={tmp}"),
        ("ctrg", CTRGReader, "data.root={tmp}"),
        ("manifest", ManifestReader, "data.reader.path={tmp}/manifest.csv"),
    ],
)
def test_data_configs_compose_and_instantiate(tmp_path, name, reader_type, override):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "configs")):
        config = compose(
            "preprocess",
            overrides=[f"data={name}", override.format(tmp=tmp_path), "data.cache_dir=" + str(tmp_path / "cache")],
        )
    reader = instantiate(config.data.reader)
    assert config.data.name == name and isinstance(reader, reader_type)
    assert config.data.reader.policy == config.data.policy == "skip"
