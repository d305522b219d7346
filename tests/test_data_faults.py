"""Faults injected into tiny synthetic studies: bad data never becomes training data.

Each test damages one study of a small RadGenome-layout dataset (or a manifest) and checks the
outcome: a clear error naming the file, or a counted skip in preprocess_report.json, while the
good studies' cache entries stay bit-identical to those of a clean dataset.
"""

from __future__ import annotations

import gzip
import json
import shutil
import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from _fixtures import (
    BODY,
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

from reg2rg.data import codec
from reg2rg.data.build import build_cache, read_index, study_file
from reg2rg.data.cache import CachedStudy
from reg2rg.data.dataset import CachedRegionDataset
from reg2rg.data.errors import SkipLog, StudyError
from reg2rg.data.preprocessing import PreprocessConfig
from reg2rg.data.readers import CTRGReader, ManifestReader, RadGenomeReader
from reg2rg.data.records import MaskFolder, StudyRecord
from reg2rg.data.volumes import check_hu_plausible, read_volume

CFG = PreprocessConfig(target_size=(8, 8, 4))
GOOD = ("train_1_a_1", "train_2_a_1")
BAD = "train_3_a_1"
ANATOMIES = ["lung", "heart"]


def dataset(root: Path, studies=(*GOOD, BAD), extra_rows=()) -> Path:
    """A RadGenome tree whose studies each have a volume, lung and heart masks and report rows; returns the CSV."""
    for study_id in studies:
        write_radgenome_study(root, study_id, ANATOMIES)
    rows = [row for study_id in studies for row in report_rows(study_id, ANATOMIES)]
    return write_radgenome_reports(root, "train", rows + list(extra_rows))


def build(root: Path, policy: str = "skip", **options) -> dict:
    """Read the train split and build its cache, as scripts/preprocess.py does."""
    index = RadGenomeReader(root, policy=policy).read("train")
    return build_cache(index.records, root / "cache", "train", CFG, skips=index.skips, ignored=index.ignored, **options)


def written_report(root: Path) -> dict:
    return json.loads((root / "cache" / "preprocess_report.json").read_text())["train"]


def cache_entry(root: Path, study_id: str) -> dict:
    """A study's cache file: its meta (less the sizes and times of its source files) and every array's bytes."""
    with np.load(study_file(root / "cache", study_id), allow_pickle=False) as npz:
        meta = json.loads(npz["meta"].tobytes())
        arrays = {key: npz[key].tobytes() for key in npz.files if key != "meta"}
    meta.pop("source")
    return {"meta": meta, **arrays}


def assert_good_studies_unchanged(tmp_path: Path, root: Path) -> None:
    """The good studies of ``root`` are cached exactly as in a dataset without the faulty study."""
    clean = tmp_path / "clean"
    dataset(clean, GOOD)
    build(clean)
    for study_id in GOOD:
        assert cache_entry(root, study_id) == cache_entry(clean, study_id)
    clean_entries = read_index(clean / "cache", "train")
    entries = {entry["study_id"]: entry for entry in read_index(root / "cache", "train")}
    assert [entries[entry["study_id"]] for entry in clean_entries] == clean_entries


def the_skip(report: dict) -> dict:
    (skip,) = report["skips"]
    return skip


# 1. study ids that leave the cache folder ---------------------------------------------------------


MANIFEST_HEADER = ["study_id", "split", "volume", "masks", "report_lung"]


def test_manifest_ids_that_are_not_plain_file_names_are_skipped_naming_the_row(tmp_path):
    write_nifti(tmp_path / "a.nii.gz", ct_array())
    write_mask_folder(tmp_path / "seg", ["lung"])
    bad_ids = ["../../escaped", "..", "a b", "sub/dir"]
    rows = [["good", "train", "a.nii.gz", "seg", "Clear."]] + [
        [bad, "train", "a.nii.gz", "seg", "Clear."] for bad in bad_ids
    ]
    path = write_csv(tmp_path / "m.csv", MANIFEST_HEADER, rows)

    index = ManifestReader(path).read("train")
    report = build_cache(index.records, tmp_path / "cache", "train", CFG, skips=index.skips)

    assert [r.study_id for r in index.records] == ["good"]
    assert report["skipped"] == {"bad_id": 4} and report["studies"] == 5 and report["usable"] == 1
    problems = [skip["problem"] for skip in report["skips"]]
    assert problems[0].startswith("row 2: study id '../../escaped' contains a path separator; use letters, digits")
    assert problems[1].startswith("row 3: study id '..' names a folder")
    assert {skip["path"] for skip in report["skips"]} == {str(path)}
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.npz")) == ["cache/studies/good.npz"]
    with expect_error("bad_id", path, "row 2: study id '../../escaped' contains a path separator"):
        ManifestReader(path, policy="strict").read("train")


def test_jsonl_ctrg_and_radgenome_readers_refuse_unsafe_ids(tmp_path):
    write_nifti(tmp_path / "a.nii.gz", ct_array())
    write_mask_folder(tmp_path / "seg", ["lung"])
    jsonl = write_jsonl(
        tmp_path / "m.jsonl",
        [{"study_id": "../x", "split": "train", "volume": "a.nii.gz", "masks": "seg", "report_lung": "x"}],
    )
    with expect_error("bad_id", jsonl, "line 1: study id '../x' contains a path separator"):
        ManifestReader(jsonl, policy="strict").read("train")

    table = write_csv(tmp_path / "ctrg" / "reports.csv", ["id", "report"], [["../../x", "Whole."]])
    reader = CTRGReader(tmp_path / "ctrg", "reports.csv", "id", "report", "{id}.nii.gz", "masks", policy="strict")
    split = "train" if reader.split_ids(["../../x"])["train"] else "valid"
    with expect_error("bad_id", table, "row 1: study id '../../x' contains a path separator"):
        reader.read(split)

    root = tmp_path / "radgenome"
    dataset(root, GOOD[:1])
    csv = write_radgenome_reports(
        root, "train", report_rows(GOOD[0], ["lung"]) + report_rows("train_4_a_1/../../x", ["lung"])
    )
    index = RadGenomeReader(root).read("train")
    assert [r.study_id for r in index.records] == [GOOD[0]] and index.skips.counts() == {"bad_id": 1}
    assert index.skips.skipped[0]["path"] == str(csv)
    assert "line 4: study id 'train_4_a_1/../../x' contains a path separator" in index.skips.skipped[0]["problem"]


def test_the_cache_path_itself_refuses_ids_that_leave_the_cache_folder(tmp_path):
    for bad in ("../x", "..", ".", "a/b", "a\\b", "", ".hidden", "x" * 201):
        with expect_error("bad_id", tmp_path / "studies", "cannot name a cache file"):
            study_file(tmp_path, bad)
    assert study_file(tmp_path, "CT-1.2.840_a") == tmp_path / "studies" / "CT-1.2.840_a.npz"

    # records made without a reader are skipped by the build, not written outside the cache
    volume = write_nifti(tmp_path / "src" / "a.nii.gz", ct_array())
    masks = write_mask_folder(tmp_path / "src" / "seg", ["lung"])
    source = MaskFolder(masks, {"lung": masks / "lung.nii.gz"})
    records = [
        StudyRecord(study_id, "train", volume, source, {"lung": "Clear."}) for study_id in ("../../escaped", "good")
    ]
    report = build_cache(records, tmp_path / "cache", "train", CFG)
    assert report["skipped"] == {"bad_id": 1} and report["usable"] == 1
    assert not (tmp_path / "escaped.npz").exists()
    with pytest.raises(StudyError, match="contains a path separator"):
        build_cache(records, tmp_path / "cache", "train", CFG, skips=SkipLog("strict"))


def test_an_index_entry_pointing_at_another_file_is_refused(tmp_path):
    dataset(tmp_path, GOOD)
    build(tmp_path)
    index = tmp_path / "cache" / "train.jsonl"
    entries = [json.loads(line) for line in index.read_text().splitlines()]
    entries[1]["file"] = "../../outside.npz"
    index.write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    with pytest.raises(ValueError, match="line 2 names file '../../outside.npz' for study 'train_2_a_1'"):
        read_index(tmp_path / "cache", "train")


# 2. a flipped byte in a .nii.gz ---------------------------------------------------------------------


def flip_a_byte_keeping_the_gzip_checksum(path: Path) -> None:
    """Store the file's content in uncompressed deflate blocks and flip one bit of a voxel: the stream still
    decodes, only the gzip CRC-32 (kept from the original content) tells."""
    content = gzip.decompress(path.read_bytes())
    stream = bytearray(gzip.compress(content, compresslevel=0, mtime=0))
    stream[-8 - 100] ^= 0x40  # a voxel 100 bytes before the end of the data; the last 8 bytes are CRC and length
    path.write_bytes(bytes(stream))


@pytest.mark.parametrize("damaged", ["volume", "mask"])
def test_a_flipped_byte_in_a_gzip_file_fails_its_checksum(tmp_path, damaged):
    root = tmp_path / "faulty"
    dataset(root)
    path = (
        radgenome_volume_path(root, BAD) if damaged == "volume" else radgenome_mask_folder(root, BAD) / "heart.nii.gz"
    )
    original = np.asanyarray(nib.load(path).dataobj)
    flip_a_byte_keeping_the_gzip_checksum(path)
    assert (
        np.count_nonzero(np.asanyarray(nib.load(path).dataobj) != original) == 1
    )  # nibabel alone decodes a wrong voxel

    report = build(root)

    assert report["skipped"] == {"corrupt": 1} and report["usable"] == 2
    assert (
        the_skip(report)["path"] == str(path)
        and "the gzip checksum does not match the content" in the_skip(report)["problem"]
    )
    assert written_report(root)["skipped"] == {"corrupt": 1}
    assert_good_studies_unchanged(tmp_path, root)


def test_a_flipped_byte_fails_when_read_directly(tmp_path):
    path = write_nifti(tmp_path / "ct.nii.gz", ct_array())
    flip_a_byte_keeping_the_gzip_checksum(path)
    with expect_error("corrupt", path, "the gzip checksum does not match the content", "download or write it again"):
        read_volume(path)


# 3. masks on another grid --------------------------------------------------------------------------


def test_a_mask_on_another_grid_is_rejected_by_default_and_resampled_only_on_request(tmp_path):
    root = tmp_path / "faulty"
    dataset(root)
    heart = radgenome_mask_folder(root, BAD) / "heart.nii.gz"
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = 0.5  # coarse voxel k covers fine voxels 2k and 2k + 1
    write_nifti(heart, box_mask((2, 2, 1), (6, 6, 3), shape=(8, 8, 4)), affine)

    report = build(root)

    assert report["skipped"] == {"grid_mismatch": 1} and report["usable"] == 2
    problem = the_skip(report)["problem"]
    assert the_skip(report)["path"] == str(heart) and str(radgenome_volume_path(root, BAD)) in problem
    assert (
        "shape (8, 8, 4), spacing [2.0, 2.0, 2.0] mm" in problem
        and "shape (16, 16, 8), spacing [1.0, 1.0, 1.0] mm" in problem
    )
    assert_good_studies_unchanged(tmp_path, root)

    resampled = build(root, grid="resample")
    assert resampled["usable"] == 3 and resampled["skipped"] == {}
    assert resampled["resampled"] == {"studies": 1, "masks": 1, "regions": {BAD: ["heart"]}}
    assert written_report(root)["resampled"]["masks"] == 1 and written_report(root)["grid"] == "resample"

    again = build(root)  # back to the default: the resampled cache entry is not reused
    assert again["skipped"] == {"grid_mismatch": 1} and again["reused"] == 2


# 4. intensities in other units ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "stored_as"),
    [
        (np.clip(ct_array() // 8, -128, 127).astype(np.int8), "int8 with no scaling"),  # an 8-bit image
        ((ct_array().astype(np.int32) + 1024).astype(np.uint16), "uint16 with no scaling"),  # HU + 1024, no intercept
    ],
    ids=["int8", "uint16_hu_plus_1024"],
)
def test_a_volume_in_other_units_than_hu_is_skipped(tmp_path, values, stored_as):
    root = tmp_path / "faulty"
    dataset(root)
    volume = write_nifti(radgenome_volume_path(root, BAD), values)

    report = build(root)

    assert report["skipped"] == {"intensity": 1} and the_skip(report)["path"] == str(volume)
    problem = the_skip(report)["problem"]
    assert "the values do not look like Hounsfield units" in problem and "0.0% of the voxels are air" in problem
    assert f"the file stores {stored_as}" in problem and "intercept -1024" in problem
    with pytest.raises(StudyError, match="do not look like Hounsfield units"):
        build(root, policy="strict")
    assert_good_studies_unchanged(tmp_path, root)


def test_plausible_ct_values_pass_the_unit_check():
    padded = ct_array()
    padded[:2] = -3024  # scanners pad outside the field of view with -3024 or -2048
    check_hu_plausible("ct.nii.gz", padded)
    check_hu_plausible("ct.nii.gz", ct_array())
    bright = ct_array()
    bright[BODY] = 4000  # a body far above the CT range
    with expect_error("intensity", "ct.nii.gz", "are above 3071 HU"):
        check_hu_plausible("ct.nii.gz", bright)


# 5. duplicate rows, studies without rows, an unterminated quote ---------------------------------------


def test_duplicate_report_rows_are_dropped_counted_and_logged(tmp_path, caplog):
    root = tmp_path / "faulty"
    csv = dataset(root, extra_rows=report_rows(BAD, ["lung"], whole=False))  # BAD's lung row once more, at the end

    report = build(root)

    (entry,) = [e for e in read_index(root / "cache", "train") if e["study_id"] == BAD]
    assert entry["region_reports"]["lung"] == f"The lung of {BAD} is normal."  # once, not joined twice
    assert report["ignored"] == {"duplicate report row (dropped)": 1} == written_report(root)["ignored"]
    assert f"{csv}: 1 rows repeat an earlier row of their study" in caplog.text and "lines 11" in caplog.text
    assert_good_studies_unchanged(tmp_path, root)


def test_a_volume_without_report_rows_is_a_counted_skip(tmp_path):
    root = tmp_path / "faulty"
    csv = dataset(root, GOOD)
    write_radgenome_study(root, BAD, ANATOMIES)  # volume and masks, but no row in the CSV

    report = build(root)

    assert (report["studies"], report["usable"], report["skipped_by_reader"]) == (3, 2, 1)
    assert report["skipped"] == {"no_report": 1} and the_skip(report)["path"] == str(radgenome_volume_path(root, BAD))
    assert f"no row in the report CSV {csv}" in the_skip(report)["problem"]
    assert written_report(root)["studies"] == 3


def test_an_unterminated_quote_skips_every_study_whose_rows_it_swallows(tmp_path):
    root = tmp_path / "faulty"
    other = "train_4_a_1"
    dataset(root, GOOD)
    for study_id in (BAD, other):
        write_radgenome_study(root, study_id, ANATOMIES)
    csv = root / "radgenome_files" / "train_region_report.csv"
    csv.write_text(
        csv.read_text() + f'{BAD}.nii.gz,lung,"No nodules.\n'  # line 8: the quote is never closed on its line
        f"{BAD}.nii.gz,heart,Normal heart.\n"
        f"{other}.nii.gz,lung,Clear.\n"
        f'{other}.nii.gz,heart,"Fine, really."\n'  # line 11: this quote closes it
    )

    report = build(root)

    assert report["skipped"] == {"corrupt": 2} and [s["study_id"] for s in report["skips"]] == [BAD, other]
    problem = report["skips"][0]["problem"]
    assert report["skips"][0]["path"] == str(csv)
    assert problem.startswith("lines 8-11: a quoted field runs over 4 lines and holds 3 rows of studies")
    assert "(an unterminated quote?)" in problem
    with expect_error("corrupt", csv, "lines 8-11: a quoted field runs over 4 lines"):
        build(root, policy="strict")
    assert_good_studies_unchanged(tmp_path, root)


def test_a_report_row_with_an_unquoted_comma_skips_its_study(tmp_path):
    root = tmp_path / "faulty"
    csv = dataset(root)
    csv.write_text(csv.read_text() + f"{BAD}.nii.gz,lung,No nodules, no effusion.\n")

    report = build(root)

    assert report["skipped"] == {"corrupt": 1} and the_skip(report)["study_id"] == BAD
    assert (
        the_skip(report)["problem"]
        == "line 11: the row has 4 fields but the header has 3: quote fields that contain commas"
    )
    assert_good_studies_unchanged(tmp_path, root)


# 6. damaged cache files -----------------------------------------------------------------------------


def rewrite_cache_file(path: Path, changed: dict[str, np.ndarray]) -> None:
    """Write the cache file again (a valid zip) with some arrays replaced and the meta kept."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays.update(changed)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def test_a_cache_array_that_fails_its_checksum_is_an_error_naming_the_file(tmp_path):
    dataset(tmp_path)
    build(tmp_path)
    path = study_file(tmp_path / "cache", BAD)
    with np.load(path, allow_pickle=False) as npz:
        arrays = json.loads(npz["meta"].tobytes())["arrays"]
        volume, image = (
            codec.decode(npz[key], arrays[key]["dtype"], tuple(arrays[key]["shape"])) for key in ("volume", "image")
        )
    volume[2, 2, 2] += 1
    image[0, 0, 0] += 1
    rewrite_cache_file(path, {"volume": codec.encode(volume), "image": codec.encode(image)})

    with (
        CachedStudy(path, BAD) as study,
        expect_error("corrupt_cache", path, "array 'volume' does not match its SHA-256"),
    ):
        _ = study.volume
    samples = CachedRegionDataset(tmp_path / "cache", "train", CFG, shuffle_regions=False)
    assert samples[2]["study_id"] == GOOD[0]  # the damaged study is replaced by the next one
    assert list(samples.bad_reads) == [BAD] and "array 'image' does not match its SHA-256" in samples.bad_reads[BAD]


def test_a_cache_file_swapped_for_another_studys_is_refused_and_rebuilt(tmp_path):
    dataset(tmp_path)
    build(tmp_path)
    path = study_file(tmp_path / "cache", BAD)
    shutil.copyfile(study_file(tmp_path / "cache", GOOD[0]), path)

    with expect_error("wrong_study", path, f"the cache file holds study '{GOOD[0]}', not '{BAD}'"):
        CachedStudy(path, BAD)
    samples = CachedRegionDataset(tmp_path / "cache", "train", CFG, shuffle_regions=False)  # prepare_data=false
    assert samples[2]["study_id"] == GOOD[0] and list(samples.bad_reads) == [BAD]

    report = build(tmp_path)  # prepare_data=true: the foreign file is rebuilt, and counted
    assert report["damaged_cache_files_rebuilt"] == {"another study": 1} and (report["built"], report["reused"]) == (
        1,
        2,
    )
    assert cache_entry(tmp_path, BAD)["meta"]["study_id"] == BAD


# 7. a header that lies about its size, and other failures inside one study ----------------------------


def write_lying_nifti(path: Path, claimed: tuple[int, int, int]) -> Path:
    """A .nii.gz holding 64 x 64 x 128 int16 voxels (1 MB) whose header claims ``claimed``."""
    image = nib.Nifti1Image(np.zeros((64, 64, 128), np.int16), np.eye(4))
    content = bytearray(image.to_bytes())
    struct.pack_into(f"{image.header.endianness}8h", content, 40, 3, *claimed, 1, 1, 1, 1)  # dim[0..7]
    path.write_bytes(gzip.compress(bytes(content)))
    return path


def test_a_header_claiming_too_many_voxels_is_refused_before_decoding(tmp_path):
    root = tmp_path / "faulty"
    dataset(root)
    volume = write_lying_nifti(radgenome_volume_path(root, BAD), (30000, 30000, 30000))

    with expect_error(
        "too_large",
        volume,
        "the header claims 30000 x 30000 x 30000 = 27,000,000,000,000 voxels",
        "data.max_voxels = 2,147,483,648",
    ):
        read_volume(volume)
    report = build(root)

    assert report["skipped"] == {"too_large": 1} and the_skip(report)["path"] == str(volume)
    assert written_report(root)["skipped"] == {"too_large": 1}
    assert_good_studies_unchanged(tmp_path, root)


def test_a_header_claiming_more_data_than_the_file_holds_is_truncated(tmp_path):
    volume = write_lying_nifti(tmp_path / "ct.nii.gz", (100, 100, 100))  # 1,000,000 voxels claimed, 524,288 stored
    with expect_error(
        "corrupt", volume, "the file holds 1,048,928 of the 2,000,352 bytes its header describes: it is truncated"
    ):
        read_volume(volume)
    plain = tmp_path / "ct.nii"
    plain.write_bytes(gzip.decompress(volume.read_bytes()))
    with expect_error("corrupt", plain, "the file holds 1,048,928 of the 2,000,352 bytes"):
        read_volume(plain)


def test_the_voxel_limit_is_configurable(tmp_path):
    dataset(tmp_path, GOOD)
    report = build(tmp_path, max_voxels=1000)  # the 16 x 16 x 8 volumes hold 2048 voxels
    assert report["skipped"] == {"too_large": 2}


def test_an_unexpected_error_in_one_study_is_a_counted_skip_naming_its_files(tmp_path, monkeypatch):
    import reg2rg.data.volumes as volumes

    root = tmp_path / "faulty"
    dataset(root)
    decode = volumes._as_hu

    def run_out_of_memory_on_the_bad_study(path, array):
        if BAD in str(path):
            raise MemoryError("Unable to allocate 20.0 TiB")
        return decode(path, array)

    monkeypatch.setattr(volumes, "_as_hu", run_out_of_memory_on_the_bad_study)
    report = build(root)

    assert report["skipped"] == {"error": 1} and the_skip(report)["path"] == str(radgenome_volume_path(root, BAD))
    assert the_skip(report)["problem"].startswith(
        f"MemoryError while preprocessing the study (volume {radgenome_volume_path(root, BAD)}"
    )
    with pytest.raises(StudyError, match="MemoryError while preprocessing"):
        build(root, policy="strict")
    assert_good_studies_unchanged(tmp_path, root)


# 8. honest counts and accurate messages ---------------------------------------------------------------


def test_the_report_counts_reader_skips_and_lists_regions_left_out(tmp_path):
    root = tmp_path / "faulty"
    dataset(root)
    radgenome_volume_path(root, "train_2_a_1").unlink()  # a reader-level skip
    (radgenome_mask_folder(root, BAD) / "heart.nii.gz").unlink()  # a reported region without a mask file
    write_nifti(
        radgenome_mask_folder(root, "train_1_a_1") / "heart.nii.gz", np.zeros((16, 16, 8), np.uint8)
    )  # an empty mask

    build(root)
    report = written_report(root)

    assert (report["studies"], report["usable"], report["skipped_by_reader"]) == (3, 2, 1)
    assert report["skipped"] == {"missing": 1}
    assert report["regions_left_out"] == {"train_1_a_1": {"heart": "empty mask"}, BAD: {"heart": "no mask file"}}
    assert report["ignored"] == {"report of region 'heart' without a mask": 1}


def test_symbolic_link_problems_are_named_as_such(tmp_path):
    loop = tmp_path / "loop.nii.gz"
    loop.symlink_to(loop)
    with expect_error("unreadable", loop, "volume is a symbolic link loop"):
        read_volume(loop)
    dangling = tmp_path / "gone.nii.gz"
    dangling.symlink_to(tmp_path / "nowhere.nii.gz")
    with expect_error(
        "missing", dangling, f"volume is a symbolic link to {tmp_path / 'nowhere.nii.gz'}, which does not exist"
    ):
        read_volume(dangling)

    root = tmp_path / "faulty"
    dataset(root)
    folder = radgenome_mask_folder(root, BAD)
    shutil.rmtree(folder)
    folder.symlink_to(folder)
    index = RadGenomeReader(root).read("train")
    assert (
        index.skips.counts() == {"unreadable": 1}
        and "mask folder is a symbolic link loop" in index.skips.skipped[0]["problem"]
    )


def test_a_tiny_volume_and_a_zero_spacing_affine_get_their_own_messages(tmp_path):
    tiny = write_nifti(tmp_path / "tiny.nii.gz", np.full((1, 1, 1), 40, np.int16))
    with expect_error("too_small", tiny, "the volume has only 1 x 1 x 1 voxels"):
        read_volume(tiny)

    flat = tmp_path / "flat.nii.gz"
    content = bytearray(nib.Nifti1Image(ct_array(), np.eye(4)).to_bytes())
    struct.pack_into("<4f", content, 312, 0.0, 0.0, 0.0, 0.0)  # srow_z: the z axis has no length
    flat.write_bytes(gzip.compress(bytes(content)))
    with expect_error("affine", flat, "voxel spacing [1.0, 1.0, 0.0] mm", "positive size"):
        read_volume(flat)


def test_a_mask_outside_the_body_is_not_called_empty(tmp_path):
    root = tmp_path / "faulty"
    dataset(root)
    write_nifti(radgenome_mask_folder(root, BAD) / "heart.nii.gz", box_mask((0, 0, 0), (2, 2, 1)))  # in the air corner

    report = build(root)

    assert report["regions_left_out"] == {BAD: {"heart": "mask entirely outside the box of the voxels above -1000 HU"}}


# configuration -----------------------------------------------------------------------------------------


def test_prepare_dataset_takes_grid_and_voxel_limit_from_the_data_config(tmp_path):
    from hydra import compose, initialize_config_dir

    from reg2rg.data.prepare import prepare_dataset

    repo = Path(__file__).resolve().parents[1]
    write_nifti(tmp_path / "a.nii.gz", ct_array())
    write_mask_folder(tmp_path / "seg", ["lung"], affine=np.diag([2.0, 1.0, 1.0, 1.0]))
    manifest = write_csv(
        tmp_path / "m.csv", MANIFEST_HEADER + ["report_pleura"], [["a", "train", "a.nii.gz", "seg", "Clear.", "x"]]
    )
    overrides = ["data=manifest", f"data.reader.path={manifest}"]
    with initialize_config_dir(version_base="1.3", config_dir=str(repo / "configs")):
        default = compose("preprocess", overrides=[*overrides, f"data.cache_dir={tmp_path / 'cache'}"])
        resample = compose(
            "preprocess", overrides=[*overrides, f"data.cache_dir={tmp_path / 'cache'}", "data.grid=resample"]
        )
        small = compose(
            "preprocess", overrides=[*overrides, f"data.cache_dir={tmp_path / 'small'}", "data.max_voxels=1000"]
        )

    assert prepare_dataset(default.data, ["train"])["train"]["skipped"] == {"grid_mismatch": 1}
    report = prepare_dataset(resample.data, ["train"])["train"]
    assert report["usable"] == 1 and report["resampled"]["masks"] == 1
    assert json.loads((tmp_path / "cache" / "preprocess_report.json").read_text())["train"]["ignored"] == {
        "report of region 'pleura' without a mask": 1
    }
    assert prepare_dataset(small.data, ["train"])["train"]["skipped"] == {"too_large": 1}
