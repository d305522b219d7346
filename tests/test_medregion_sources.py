"""MedRegion-CT on a RadGenome-layout dataset: 10 regions mapped onto 6, reports regrouped, features cached."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from omegaconf import OmegaConf
from test_training_helpers import compose_train

from reg2rg.data.synthetic import SyntheticConfig, write_dataset
from reg2rg.medregion.dataset import MedRegionDataset, prepare_features
from reg2rg.medregion.regions import REGIONS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def radgenome_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("radgenome-layout")
    write_dataset(root, SyntheticConfig(n_train=2, n_valid=1, shape=(40, 40, 20), seed=1))
    return root


def data_section(root: Path, cache: Path, **extra) -> dict:
    cfg = compose_train(["experiment=medregion_stage1", "output_dir=unused", f"data.root={root}",
                         f"data.cache_dir={cache}", "data.slice_encoder.rad_dino=null", "data.slice_encoder.hidden_size=16",
                         "data.slice_encoder.layers=1", "data.slice_encoder.heads=2", "data.slice_encoder.feature_layers=[1]",
                         "data.slice_encoder.volume_shape=[84,84,8]",
                         f"data.region_mapping={ROOT / 'configs' / 'mappings' / 'medregion_radgenome.yaml'}"])  # fmt: skip
    return {**OmegaConf.to_container(cfg.data, resolve=True), **extra}


def test_radgenome_studies_map_onto_six_regions(radgenome_root, tmp_path):
    data = data_section(radgenome_root, tmp_path / "cache")
    reports = prepare_features(data, ["train"])
    assert reports["train"] == {"usable": 2, "studies": 2, "skipped": {}}
    split = MedRegionDataset(tmp_path / "cache", "train")
    record = json.loads((radgenome_root / ".synthetic" / "train" / "train_1_a_1.json").read_text())
    sample = split[0]
    assert sample["study_id"] == "train_1_a_1"
    originals = record["region_reports"]
    expected_lung = " ".join(originals[r].strip() for r in ("lung", "pleura") if originals.get(r, "").strip())
    assert sample["region_reports"]["lung"] == expected_lung
    assert set(sample["region_reports"]) <= set(REGIONS)
    assert sample["attributes"] == {"organs": {}, "lesions": {}}  # no attribute masks given: none invented
    # The lung region's mask is the union of RadGenome's lung and pleura masks: present, as every other region
    # the phantom has a mask for.
    masks = radgenome_root / "train_region_mask" / "seg_train_1_a_1"
    has = {r: (masks / f"{r}.nii.gz").is_file() and nib.load(masks / f"{r}.nii.gz").get_fdata().any() for r in
           ("lung", "pleura", "heart", "bone")}  # fmt: skip
    assert sample["present"][REGIONS.index("lung")].item() == (has["lung"] or has["pleura"])
    assert sample["present"][REGIONS.index("osseous")].item() == has["bone"]
    assert sample["vision_region"].shape == (8 + 6 * 6, 16)  # 8 slices; a 6 x 6 grid: 6 regions of 6 tokens


def test_a_volume_shape_that_cannot_be_pooled_is_refused_before_any_work(radgenome_root, tmp_path):
    with pytest.raises(ValueError, match=r"volume_shape \[56, 56, 8\]: a 4 x 4 token grid cannot be pooled by 6"):
        prepare_features(
            {**data_section(radgenome_root, tmp_path), "slice_encoder": {"volume_shape": [56, 56, 8]}}, ["train"]
        )


def test_attribute_masks_come_from_their_own_folder(radgenome_root, tmp_path):
    volume = nib.load(next((radgenome_root / "train_preprocessed").glob("*/*/train_1_a_1.nii.gz")))
    nodule = np.zeros(volume.shape, dtype=np.uint8)
    nodule[10:12, 10:12, 5] = 1
    folder = tmp_path / "attributes" / "train_1_a_1"
    folder.mkdir(parents=True)
    nib.save(nib.Nifti1Image(nodule, volume.affine), folder / "nodule_right_upper_lobe.nii.gz")
    nib.save(nib.Nifti1Image(nodule, volume.affine), tmp_path / "attributes" / "unused.nii.gz")
    (tmp_path / "attributes" / "train_2_a_1").mkdir()
    nib.save(nib.Nifti1Image(nodule, volume.affine), tmp_path / "attributes" / "train_2_a_1" / "liver.nii.gz")
    data = data_section(radgenome_root, tmp_path / "cache", attribute_masks=str(tmp_path / "attributes"))
    prepare_features(data, ["train"])
    entries = MedRegionDataset(tmp_path / "cache", "train").entries
    assert entries[0]["attributes"]["lesions"]["nodule"]["count"] == 1
    assert entries[0]["attributes"]["lesions"]["nodule"]["locations"] == ["right upper lobe"]
    assert list(entries[1]["attributes"]["organs"]) == ["liver"]
