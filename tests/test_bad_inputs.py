"""The bad-input corpus: each case pins down the error kind, the file it names and what it says,
or the counted skip under policy "skip" and the raise under policy "strict"."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from _fixtures import (
    SHAPE,
    box_mask,
    ct_array,
    expect_error,
    radgenome_mask_folder,
    radgenome_volume_path,
    report_rows,
    write_csv,
    write_jsonl,
    write_mask_folder,
    write_nifti,
    write_radgenome_reports,
    write_radgenome_study,
)

from reg2rg.data.errors import SkipLog, StudyError
from reg2rg.data.masks import drop_empty_regions, load_region_mapping, read_region_masks
from reg2rg.data.readers import CTRGReader, ManifestReader, RadGenomeReader
from reg2rg.data.records import LabelMap, MaskFolder
from reg2rg.data.volumes import Volume, read_volume


def reference() -> Volume:
    return Volume(ct_array(), np.eye(4), Path("ct.nii.gz"))


def one_study_dataset(root: Path, study_id: str = "train_1_a_1", masks=("lung",), anatomies=("lung",)) -> Path:
    """A RadGenome tree with one good study; returns the report CSV."""
    write_radgenome_study(root, study_id, list(masks))
    return write_radgenome_reports(root, study_id.split("_")[0], report_rows(study_id, list(anatomies)))


def folder_source(folder: Path, regions: list[str]) -> MaskFolder:
    return MaskFolder(folder, {region: folder / f"{region}.nii.gz" for region in regions})


# 1. missing volume ---------------------------------------------------------------------------------


def test_missing_volume_file(tmp_path):
    with expect_error("missing", tmp_path / "nope.nii.gz", "volume not found"):
        read_volume(tmp_path / "nope.nii.gz")


def test_missing_volume_is_skipped_or_raised_by_the_reader(tmp_path):
    one_study_dataset(tmp_path)
    volume = radgenome_volume_path(tmp_path, "train_1_a_1")
    volume.unlink()

    index = RadGenomeReader(tmp_path).read("train")
    assert index.records == [] and index.skips.counts() == {"missing": 1}
    assert index.skips.skipped[0] == {
        "study_id": "train_1_a_1",
        "kind": "missing",
        "path": str(volume),
        "problem": index.skips.skipped[0]["problem"],
    }
    with expect_error("missing", volume, "volume not found"):
        RadGenomeReader(tmp_path, policy="strict").read("train")


# 2. missing mask -----------------------------------------------------------------------------------


def test_missing_mask_folder_is_skipped(tmp_path):
    one_study_dataset(tmp_path, masks=())
    folder = radgenome_mask_folder(tmp_path, "train_1_a_1")

    assert RadGenomeReader(tmp_path).read("train").skips.counts() == {"missing_mask": 1}
    with expect_error("missing_mask", folder, "mask folder not found"):
        RadGenomeReader(tmp_path, policy="strict").read("train")


def test_missing_mask_for_every_reported_region_is_skipped(tmp_path):
    one_study_dataset(tmp_path, masks=("heart",), anatomies=("lung",))
    index = RadGenomeReader(tmp_path).read("train")
    assert index.skips.counts() == {"missing_mask": 1}
    assert "none of the reported regions ['lung'] has a mask" in index.skips.skipped[0]["problem"]
    assert index.ignored["report of region 'lung' without a mask"] == 1


def test_mask_file_deleted_after_indexing(tmp_path):
    folder = write_mask_folder(tmp_path / "seg", ["lung"])
    (folder / "lung.nii.gz").unlink()
    with expect_error("missing_mask", folder / "lung.nii.gz", "mask of region 'lung' not found"):
        read_region_masks(folder_source(folder, ["lung"]), reference())


# 3. empty mask -------------------------------------------------------------------------------------


def test_empty_region_mask_is_dropped_and_reported(tmp_path):
    folder = write_mask_folder(tmp_path / "seg", ["lung"])
    write_nifti(folder / "breast.nii.gz", np.zeros(SHAPE, np.uint8))

    masks = read_region_masks(folder_source(folder, ["lung", "breast"]), reference())
    assert not masks["breast"].any()  # returned as is: the caller decides
    kept, dropped = drop_empty_regions(masks, "train_1_a_1")
    assert list(kept) == ["lung"] and dropped == ["breast"]


def test_study_whose_every_mask_is_empty_is_skipped(tmp_path):
    folder = tmp_path / "seg"
    write_nifti(folder / "lung.nii.gz", np.zeros(SHAPE, np.uint8))
    masks = read_region_masks(folder_source(folder, ["lung"]), reference())

    skips = SkipLog("skip")
    try:
        drop_empty_regions(masks, folder)
    except StudyError as error:
        skips.record("train_1_a_1", error)
    assert skips.counts() == {"empty_masks": 1}
    with expect_error("empty_masks", folder, "every region mask is empty (lung)"):
        drop_empty_regions(masks, folder)


# 4. mask grid mismatch -----------------------------------------------------------------------------


def test_mask_on_a_coarser_shifted_grid_is_resampled(tmp_path):
    coarse = np.zeros((8, 8, 4), np.uint8)
    coarse[1:5, 2:6, 1:3] = 1
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = 0.5  # coarse voxel k covers fine voxels 2k and 2k + 1
    path = write_nifti(tmp_path / "seg" / "lung.nii.gz", coarse, affine)

    masks = read_region_masks(folder_source(path.parent, ["lung"]), reference(), grid="resample")

    expected = coarse.repeat(2, 0).repeat(2, 1).repeat(2, 2).astype(bool)
    assert masks["lung"].shape == SHAPE and np.array_equal(masks["lung"], expected)


def test_mask_stored_with_a_flipped_axis_is_resampled(tmp_path):
    mask = box_mask((1, 3, 2), (5, 9, 4))
    flipped = np.diag([-1.0, 1.0, 1.0, 1.0])
    flipped[0, 3] = SHAPE[0] - 1  # same world positions, x stored in reverse
    path = write_nifti(tmp_path / "seg" / "lung.nii.gz", mask[::-1].copy(), flipped)

    masks = read_region_masks(folder_source(path.parent, ["lung"]), reference(), grid="resample")
    assert np.array_equal(masks["lung"], mask.astype(bool))


def test_mask_grid_mismatch_is_rejected_by_default(tmp_path):
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    path = write_nifti(tmp_path / "seg" / "lung.nii.gz", np.ones((8, 8, 4), np.uint8), affine)
    both_grids = (
        "shape (8, 8, 4), spacing [2.0, 2.0, 2.0]",
        "shape (16, 16, 8), spacing [1.0, 1.0, 1.0]",
        "of the volume ct.nii.gz",
    )
    with expect_error("grid_mismatch", path, *both_grids, "data.grid=resample"):
        read_region_masks(folder_source(path.parent, ["lung"]), reference())


# 5. corrupt .gz --------------------------------------------------------------------------------------


def test_truncated_gzip_volume(tmp_path):
    good = write_nifti(tmp_path / "good.nii.gz", np.random.default_rng(0).integers(-1000, 1000, SHAPE, dtype=np.int16))
    path = tmp_path / "truncated.nii.gz"
    path.write_bytes(good.read_bytes()[:-200])
    with expect_error("corrupt", path, "damaged or truncated"):
        read_volume(path)


def test_not_gzip_at_all(tmp_path):
    path = tmp_path / "html.nii.gz"
    path.write_text("<html>rate limit exceeded</html>")
    with expect_error("corrupt", path, "cannot decode the NIfTI file"):
        read_volume(path)


def test_corrupt_mask_is_reported_with_the_mask_path(tmp_path):
    path = tmp_path / "seg" / "lung.nii.gz"
    path.parent.mkdir()
    path.write_bytes(gzip.compress(b"not a nifti header"))
    with expect_error("corrupt", path, "cannot decode"):
        read_region_masks(folder_source(path.parent, ["lung"]), reference())


# 6. NaN / inf voxels -----------------------------------------------------------------------------------


def test_non_finite_voxels(tmp_path):
    array = ct_array().astype(np.float32)
    array[0, 0, 0], array[1, 1, 1] = np.nan, np.inf
    path = write_nifti(tmp_path / "nan.nii.gz", array)
    with expect_error("non_finite", path, f"2 of {array.size} voxels are NaN or infinite"):
        read_volume(path)


# 7. all-air volume --------------------------------------------------------------------------------------


def test_all_air_volume(tmp_path):
    path = write_nifti(tmp_path / "air.nii.gz", np.full(SHAPE, -1024, np.int16))
    with expect_error("all_air", path, "no voxel is above -1000 HU (max -1024)", "no body to crop"):
        read_volume(path)


# 8. unknown region names ------------------------------------------------------------------------------


def test_unknown_region_names_are_counted_as_ignored(tmp_path):
    write_radgenome_study(tmp_path, "train_1_a_1", ["lung", "left lung", "lung_nodules"])
    rows = report_rows("train_1_a_1", ["lung", "left lung", "right lung", "left lung"])
    write_radgenome_reports(tmp_path, "train", rows)

    index = RadGenomeReader(tmp_path).read("train")

    assert len(index.records) == 1 and list(index.records[0].masks.files) == ["lung"]
    assert index.ignored == {
        "anatomy 'left lung'": 1,
        "anatomy 'right lung'": 1,
        "duplicate report row (dropped)": 1,  # the second 'left lung' row repeats the first
        "mask file 'left lung.nii.gz'": 1,
        "mask file 'lung_nodules.nii.gz'": 1,
    }


def test_unknown_region_requested_from_masks_is_a_programming_error(tmp_path):
    with pytest.raises(ValueError, match="unknown region name"):
        read_region_masks(folder_source(tmp_path, []), reference(), regions=["lungs"])


# 9. CSV missing columns --------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["skip", "strict"])
def test_csv_missing_columns_always_raises(tmp_path, policy):
    path = write_csv(tmp_path / "radgenome_files" / "train_region_report.csv", ["VolumeName", "Text"], [["x", "y"]])
    with expect_error("columns", path, "missing column(s) ['Anatomy', 'Sentence']"):
        RadGenomeReader(tmp_path, policy=policy).read("train")


def test_manifest_without_mask_columns_raises(tmp_path):
    path = write_csv(tmp_path / "m.csv", ["study_id", "split", "volume"], [["a", "train", "a.nii.gz"]])
    with expect_error("columns", path, "missing column ['masks' or 'label_map']"):
        ManifestReader(path).read("train")


# 10. duplicate study ids ---------------------------------------------------------------------------------


def test_duplicate_manifest_ids(tmp_path):
    write_nifti(tmp_path / "a.nii.gz", ct_array())
    write_mask_folder(tmp_path / "seg", ["lung"])
    rows = [
        ["a", "train", "a.nii.gz", "seg", "x"],
        ["b", "train", "a.nii.gz", "seg", "y"],
        ["a", "valid", "a.nii.gz", "seg", "z"],  # also a train/test leak
    ]
    path = write_csv(tmp_path / "m.csv", ["study_id", "split", "volume", "masks", "report_lung"], rows)

    index = ManifestReader(path).read("train")
    assert [r.study_id for r in index.records] == ["b"] and index.skips.counts() == {"duplicate": 1}
    assert ManifestReader(path).read("valid").skips.counts() == {"duplicate": 1}
    with expect_error("duplicate", path, "study id 'a' appears 2 times (row 1, row 3)"):
        ManifestReader(path, policy="strict").read("train")


def test_duplicate_ctrg_ids(tmp_path):
    path = write_csv(tmp_path / "reports.csv", ["id", "report"], [["a", "x"], ["a", "y"]])
    reader = CTRGReader(tmp_path, "reports.csv", "id", "report", "{id}.nii.gz", "masks", policy="strict")
    split = "train" if reader.split_ids(["a"])["train"] else "valid"
    with expect_error("duplicate", path, "study id 'a' appears 2 times"):
        reader.read(split)


# 11. report without any known region ----------------------------------------------------------------------


def test_report_without_any_region_sentence(tmp_path):
    csv = one_study_dataset(tmp_path, anatomies=("left lung",))  # only a sub-anatomy besides the whole report
    index = RadGenomeReader(tmp_path).read("train")
    assert index.skips.counts() == {"no_region_report": 1} and index.skips.skipped[0]["path"] == str(csv)
    with expect_error("no_region_report", csv, "study 'train_1_a_1' has no report sentence for any of the regions"):
        RadGenomeReader(tmp_path, policy="strict").read("train")


def test_ctrg_without_region_reports_skips_every_study(tmp_path):
    path = write_csv(tmp_path / "reports.csv", ["id", "report"], [[f"s{n}", "Whole."] for n in range(5)])
    reader = CTRGReader(tmp_path, "reports.csv", "id", "report", "{id}.nii.gz", "masks")
    train, valid = reader.read("train"), reader.read("valid")
    assert train.skips.counts() == {"no_region_report": 4} and valid.skips.counts() == {"no_region_report": 1}
    assert train.skips.skipped[0]["path"] == str(path)


# 12. non-UTF-8 text -------------------------------------------------------------------------------------------


def test_latin1_csv_is_a_clear_error_and_readable_with_the_encoding(tmp_path):
    write_radgenome_study(tmp_path, "train_1_a_1", ["lung"])
    rows = [["train_1_a_1.nii.gz", "lung", "Opacité in the left lung."]]
    csv = write_radgenome_reports(tmp_path, "train", rows, encoding="latin-1")

    with expect_error(
        "encoding", csv, "not valid utf-8 text (byte 0xe9 on line 2)", "iconv -f latin1 -t utf-8", "encoding"
    ):
        RadGenomeReader(tmp_path).read("train")
    (record,) = RadGenomeReader(tmp_path, encoding="latin-1").read("train").records
    assert record.region_reports["lung"] == "Opacité in the left lung."


# 13. zero-size files -------------------------------------------------------------------------------------------


def test_zero_size_volume(tmp_path):
    path = tmp_path / "ct.nii.gz"
    path.touch()
    with expect_error("empty_file", path, "is empty (0 bytes)"):
        read_volume(path)


def test_zero_size_mask_file_skips_the_study(tmp_path):
    one_study_dataset(tmp_path)
    mask = radgenome_mask_folder(tmp_path, "train_1_a_1") / "lung.nii.gz"
    mask.write_bytes(b"")
    index = RadGenomeReader(tmp_path).read("train")
    assert index.skips.skipped[0]["kind"] == "empty_file" and index.skips.skipped[0]["path"] == str(mask)


def test_zero_size_csv(tmp_path):
    path = tmp_path / "radgenome_files" / "train_region_report.csv"
    path.parent.mkdir()
    path.touch()
    with expect_error("empty_file", path, "is empty (0 bytes)"):
        RadGenomeReader(tmp_path).read("train")


# 14. wrong dimensionality -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(16, 16), (16, 16, 8, 2)])
def test_wrong_dimensionality(tmp_path, shape):
    path = write_nifti(tmp_path / "ct.nii.gz", np.zeros(shape, np.int16))
    with expect_error("dimensionality", path, f"expected a 3D volume, got data of shape {shape}"):
        read_volume(path)


# 15. unreadable DICOM folder ------------------------------------------------------------------------------------


def test_unreadable_dicom_folder(tmp_path):
    folder = tmp_path / "dicom"
    folder.mkdir()
    (folder / "001.dcm").write_bytes(b"\x00" * 64 + b"not dicom")
    with expect_error("dicom", folder, "no readable DICOM series"):
        read_volume(folder)


# 16. label map without mapping ----------------------------------------------------------------------------------


def test_label_map_without_mapping(tmp_path):
    write_nifti(tmp_path / "a.nii.gz", ct_array())
    label_map = write_nifti(tmp_path / "total.nii.gz", np.zeros(SHAPE, np.uint8))
    path = write_csv(
        tmp_path / "m.csv",
        ["study_id", "split", "volume", "label_map", "report_lung"],
        [["a", "train", "a.nii.gz", "total.nii.gz", "x"]],
    )

    assert ManifestReader(path).read("train").skips.counts() == {"no_mapping": 1}
    with expect_error("no_mapping", label_map, "label map without a class-to-region mapping"):
        ManifestReader(path, policy="strict").read("train")
    with expect_error("no_mapping", label_map, "label map without a class-to-region mapping"):
        read_region_masks(LabelMap(label_map, {}), reference())


# 17. mapping YAML with an unknown region ------------------------------------------------------------------------


def test_mapping_with_an_unknown_region(tmp_path):
    path = tmp_path / "mapping.yaml"
    path.write_text("labels: {1: lobe}\nregions:\n  lung: [lobe]\n  lungs: [2]\n")
    with expect_error("mapping", path, "unknown region name(s) ['lungs']"):
        load_region_mapping(path)
    with expect_error("mapping", path, "unknown region name(s) ['lungs']"):
        ManifestReader(tmp_path / "m.csv", mapping=path)  # a reader-wide mapping fails at construction


def test_mapping_with_an_unknown_class_name(tmp_path):
    path = tmp_path / "mapping.yaml"
    path.write_text("labels: {1: lobe}\nregions:\n  lung: [lobes]\n")
    with expect_error("mapping", path, "region 'lung': class 'lobes' is not in the `labels:` table"):
        load_region_mapping(path)


# 18. more malformed inputs -------------------------------------------------------------------------------------


def test_non_binary_mask(tmp_path):
    path = write_nifti(tmp_path / "seg" / "lung.nii.gz", box_mask((1, 1, 1), (4, 4, 4)) * 255)
    with expect_error("not_binary", path, "region mask is not binary: it holds [255] besides 0 and 1"):
        read_region_masks(folder_source(path.parent, ["lung"]), reference())


def test_unsupported_volume_format(tmp_path):
    path = tmp_path / "ct.mha"
    path.write_bytes(b"ObjectType = Image\n")
    with expect_error("format", path, "expected a .nii or .nii.gz file or a DICOM series folder"):
        read_volume(path)


def test_radgenome_volume_name_outside_the_naming_scheme(tmp_path):
    csv = write_radgenome_reports(tmp_path, "train", [["train_case7.nii.gz", "lung", "Clear."]])
    with expect_error("bad_name", csv, "'train_case7.nii.gz' is not <split>_<patient>_<scan>_<reconstruction>.nii.gz"):
        RadGenomeReader(tmp_path, policy="strict").read("train")


def test_manifest_row_with_both_masks_and_label_map(tmp_path):
    write_nifti(tmp_path / "a.nii.gz", ct_array())
    path = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {
                "study_id": "a",
                "split": "train",
                "volume": "a.nii.gz",
                "masks": "seg",
                "label_map": "t.nii.gz",
                "report_lung": "x",
            }
        ],
    )
    with expect_error("manifest_row", path, "line 1 (study 'a'): give exactly one of `masks`"):
        ManifestReader(path, policy="strict").read("train")


def test_manifest_jsonl_line_that_is_not_json(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"study_id": "a", "split": "train"}\n{"study_id": "b",\n')
    with expect_error("corrupt", path, "line 2 is not valid JSON"):
        ManifestReader(path).read("train")


# 19. a dataset with several bad studies finishes -----------------------------------------------------------------


def test_dataset_with_several_bad_studies_returns_the_good_ones_and_the_counts(tmp_path):
    good = ["train_1_a_1", "train_2_a_1"]
    for study_id in good + ["train_3_a_1", "train_4_a_1", "train_5_a_1"]:
        write_radgenome_study(tmp_path, study_id, ["lung", "heart"])
    radgenome_volume_path(tmp_path, "train_3_a_1").unlink()  # missing volume
    radgenome_volume_path(tmp_path, "train_4_a_1").write_bytes(b"")  # zero-size volume
    rows = [
        row for study_id in good + ["train_3_a_1", "train_4_a_1"] for row in report_rows(study_id, ["lung", "heart"])
    ]
    rows += report_rows("train_5_a_1", [])  # whole report only
    rows += report_rows("train_6_a_1", ["lung"])  # neither volume nor masks
    write_radgenome_reports(tmp_path, "train", rows)

    index = RadGenomeReader(tmp_path).read("train")

    assert [record.study_id for record in index.records] == good
    assert index.skips.counts() == {"missing": 2, "empty_file": 1, "no_region_report": 1}
    assert index.summary().startswith(
        "2 studies kept, 4 studies skipped (empty_file: 1, missing: 2, no_region_report: 1)"
    )
    with pytest.raises(StudyError):
        RadGenomeReader(tmp_path, policy="strict").read("train")


# 20. configuration mistakes are ValueErrors at construction ------------------------------------------------------


def test_reader_arguments_are_validated(tmp_path):
    with pytest.raises(ValueError, match="unknown bad-input policy 'lenient'"):
        RadGenomeReader(tmp_path, policy="lenient")
    with pytest.raises(ValueError, match="volume_pattern must contain '{id}'"):
        CTRGReader(tmp_path, "reports.csv", "id", "report", "volumes/{name}.nii.gz", "masks")
    with pytest.raises(ValueError, match="train_fraction must be between 0 and 1"):
        CTRGReader(tmp_path, "reports.csv", "id", "report", "{id}.nii.gz", "masks", train_fraction=1.0)
    with pytest.raises(ValueError, match="manifest must be a .csv or .jsonl file"):
        ManifestReader(tmp_path / "manifest.xlsx")
    with pytest.raises(ValueError, match="unknown grid policy 'nearest'"):
        read_region_masks(folder_source(tmp_path, []), reference(), grid="nearest")
