"""The synthetic chest-CT phantoms: API, determinism, RadGenome layout, anatomy, findings and reports."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from reg2rg.constants import CT_RATE_LABELS, REGIONS
from reg2rg.data.synthetic import FINDING_NAMES, REPORT_ORDER, SyntheticConfig, make_study, perturb_masks, write_dataset

ROOT = Path(__file__).resolve().parents[1]
SMALL = (64, 64, 32)


def only(*names: str) -> dict[str, float]:
    """A prevalence that forces ``names`` and nothing else."""
    return {"default": 0.0, **{name: 1.0 for name in names}}


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def world(affine: np.ndarray, ijk) -> np.ndarray:
    """(n, 3) RAS mm of voxel indices (n, 3)."""
    ijk = np.atleast_2d(ijk)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, SyntheticConfig]:
    cfg = SyntheticConfig(n_train=3, n_valid=2, seed=7)
    root = tmp_path_factory.mktemp("synthetic")
    write_dataset(root, cfg)
    return root, cfg


# --- one study -----------------------------------------------------------------------------------------


def test_study_arrays_masks_and_text():
    study = make_study(SyntheticConfig(), seed=3, index=1)
    assert study.volume.dtype == np.int16 and study.volume.shape == (96, 96, 48)
    expected = np.diag([3.75, 3.75, 7.5, 1.0])
    expected[:3, 3] = -(np.array([96, 96, 48]) - 1) / 2 * [3.75, 3.75, 7.5]  # centred on the RAS origin
    assert np.allclose(study.affine, expected)
    assert list(study.masks) == list(REGIONS)
    for region, mask in study.masks.items():
        assert mask.dtype == bool and mask.shape == study.volume.shape
        assert mask.any(), f"empty mask: {region}"
    assert set(study.region_reports) == set(REGIONS)
    assert study.report == " ".join(study.region_reports[r] for r in REPORT_ORDER)
    assert list(study.labels) == list(CT_RATE_LABELS) and set(study.labels.values()) <= {0, 1}
    assert {f.label for f in study.findings} - {None} == {k for k, v in study.labels.items() if v}


def test_spacing_follows_shape_and_can_be_given():
    assert SyntheticConfig(shape=(480, 480, 240)).grid.spacing == (0.75, 0.75, 1.5)
    assert SyntheticConfig(shape=(32, 32, 16), spacing_mm=(10, 10, 20)).grid.spacing == (10.0, 10.0, 20.0)


def test_same_seed_same_study_and_other_seed_differs():
    cfg = SyntheticConfig(shape=SMALL)
    a, b = make_study(cfg, 5, 2), make_study(cfg, 5, 2)
    assert np.array_equal(a.volume, b.volume) and a.report == b.report and a.findings == b.findings
    assert all(np.array_equal(a.masks[r], b.masks[r]) for r in REGIONS)
    assert not np.array_equal(a.volume, make_study(cfg, 6, 2).volume)
    assert not np.array_equal(a.volume, make_study(cfg, 5, 3).volume)
    assert not np.array_equal(a.volume, make_study(cfg, 5, 2, split="valid").volume)
    from_mapping = make_study({"shape": SMALL}, np.random.default_rng(0), 2)
    assert from_mapping.volume.shape == SMALL


def test_hu_is_plausible_per_region():
    cfg = SyntheticConfig(finding_prevalence=0.0)
    for index in range(3):
        study = make_study(cfg, 11, index)
        median = {region: float(np.median(study.volume[mask])) for region, mask in study.masks.items()}
        assert median["lung"] < -700 and median["pleura"] < -700
        assert median["bone"] > 300
        assert 20 <= median["heart"] <= 80
        assert median["mediastinum"] < 0  # fat around the great vessels
        assert 60 <= median["thyroid"] <= 140
        assert 20 <= median["abdomen"] <= 90 and 0 <= median["esophagus"] <= 80
        assert median["trachea and bronchie"] < -500  # mostly air lumen
        assert median["breast"] < 0
        assert study.volume[0, 0, 0] == -1024  # outside the circular field of view
        assert abs(float(np.median(study.volume[0:3, 40:56, :])) + 1000) < 20  # air beside the body


def test_pleura_nearly_equals_lung():
    cfg = SyntheticConfig(finding_prevalence=0.0)
    for index in range(3):
        study = make_study(cfg, 2, index)
        lung, pleura = study.masks["lung"], study.masks["pleura"]
        assert (lung & ~pleura).sum() == 0
        assert 2 * (lung & pleura).sum() / (lung.sum() + pleura.sum()) > 0.9


def test_anatomy_sides_follow_ras():
    """+x in RAS world space is the patient's left: the heart leans left, both lungs flank the midline."""
    study = make_study(SyntheticConfig(finding_prevalence=0.0), 4, 0)
    lung_x = world(study.affine, np.argwhere(study.masks["lung"]))[:, 0]
    assert (lung_x > 0).sum() > 0.3 * lung_x.size and (lung_x < 0).sum() > 0.3 * lung_x.size
    assert world(study.affine, np.argwhere(study.masks["heart"]))[:, 0].mean() > 0


# --- findings ------------------------------------------------------------------------------------------

KEYWORDS = {  # a word of the finding's sentence (lower case)
    "Medical material": ("wire", "pacemaker"),
    "Arterial wall calcification": ("aort",),
    "Cardiomegaly": ("cardiomegaly",),
    "Pericardial effusion": ("pericardial effusion",),
    "Coronary artery wall calcification": ("coronary",),
    "Hiatal hernia": ("hiatal hernia",),
    "Lymphadenopathy": ("lymph",),
    "Emphysema": ("emphysema",),
    "Atelectasis": ("atelectasis",),
    "Lung nodule": ("nodule",),
    "Lung opacity": ("ground-glass",),
    "Pulmonary fibrotic sequela": ("fibrotic",),
    "Pleural effusion": ("pleural effusion",),
    "Mosaic attenuation pattern": ("mosaic",),
    "Peribronchial thickening": ("peribronchial", "bronchial walls"),
    "Consolidation": ("consolidation",),
    "Bronchiectasis": ("bronchiecta",),
    "Interlobular septal thickening": ("septa",),
    "Thyroid nodule": ("nodule",),
    "Hepatic cyst": ("cyst",),
    "Vertebral osteophytes": ("osteophytes",),
}


@pytest.mark.parametrize("name", FINDING_NAMES)
def test_each_finding_can_be_forced_and_is_reported_in_its_region(name):
    study = make_study(SyntheticConfig(finding_prevalence=only(name)), 1, 0)
    assert [f.name for f in study.findings] and {f.name for f in study.findings} == {name}
    expected = {label: int(label == name) for label in CT_RATE_LABELS}
    assert study.labels == expected
    for finding in study.findings:
        text = study.region_reports[finding.region].lower()
        assert any(word in text for word in KEYWORDS[name]), (name, text)


def test_plain_reports_vary_only_with_the_findings():
    """varied_reports=false: one wording per statement, no negations; a normal region always reads the same."""
    plain = SyntheticConfig(shape=SMALL, finding_prevalence=only("Cardiomegaly"), varied_reports=False)
    normal = SyntheticConfig(shape=SMALL, finding_prevalence=0.0, varied_reports=False)
    varied = SyntheticConfig(shape=SMALL, finding_prevalence=0.0)
    hearts = {make_study(normal, 0, index).region_reports["heart"] for index in range(6)}
    assert hearts == {"The heart contour is normal."}
    assert make_study(plain, 0, 0).region_reports["heart"] == "The heart is enlarged (cardiomegaly)."
    assert len({make_study(varied, 0, index).region_reports["heart"] for index in range(6)}) > 1


def test_all_labels_occur_in_small_random_studies():
    cfg = SyntheticConfig(shape=(48, 48, 24))
    seen = set()
    for index in range(60):
        seen |= {label for label, value in make_study(cfg, 0, index).labels.items() if value}
    assert seen == set(CT_RATE_LABELS)


def test_nodule_size_side_and_lobe_match_the_voxels():
    cfg = SyntheticConfig(finding_prevalence=only("Lung nodule"))
    checked = 0
    for index in range(4):
        study = make_study(cfg, 9, index)
        spacing = np.diag(study.affine)[:3]
        components, _ = ndimage.label((study.volume > -300) & study.masks["lung"])
        for nodule in study.findings:
            lobe = nodule.lobes[0]
            assert f"{nodule.size_mm} mm" in study.region_reports["lung"] and lobe in study.region_reports["lung"]
            ijk = np.rint(np.linalg.solve(study.affine, [*nodule.center_mm, 1.0])[:3]).astype(int)
            voxels = np.argwhere(components == components[tuple(ijk)])
            measured = max((np.ptp(voxels[:, axis]) + 1) * spacing[axis] for axis in (0, 1))
            assert abs(measured - nodule.size_mm) <= max(spacing[:2])
            x = world(study.affine, voxels)[:, 0].mean()
            assert (x > 0) == lobe.startswith("left")
            checked += 1
    assert checked >= 4


def test_nodule_diameters_follow_the_config():
    sizes = {}
    for diameters in ((4.0, 20.0), (16.0, 24.0)):
        cfg = SyntheticConfig(finding_prevalence=only("Lung nodule"), nodule_diameter_mm=diameters)
        sizes[diameters] = [f.size_mm for index in range(6) for f in make_study(cfg, 9, index).findings]
    spacing = SyntheticConfig().grid.spacing[0]
    assert min(sizes[(16.0, 24.0)]) >= 16 - spacing and max(sizes[(16.0, 24.0)]) <= 24 + spacing
    assert np.mean(sizes[(16.0, 24.0)]) > np.mean(sizes[(4.0, 20.0)]) + 4


def test_pleural_effusion_side_and_extent_match_the_fluid():
    for index in range(4):
        with_fluid = make_study(SyntheticConfig(finding_prevalence=only("Pleural effusion")), 5, index)
        dry = make_study(SyntheticConfig(finding_prevalence=0.0), 5, index)
        fluid = dry.masks["lung"] & ~with_fluid.masks["lung"]
        assert np.abs(with_fluid.volume[fluid].mean() - 10) < 10  # water-like
        assert (fluid & ~with_fluid.masks["pleura"]).sum() == 0  # the fluid belongs to the pleura
        x = world(with_fluid.affine, np.argwhere(fluid))[:, 0]
        sides = {f.side for f in with_fluid.findings}
        assert ((x > 0).sum() > 0) == ("left" in sides) and ((x < 0).sum() > 0) == ("right" in sides)
        text = with_fluid.region_reports["pleura"]
        assert ("Bilateral" in text or "both sides" in text) if len(sides) == 2 else (sides.pop() in text)
        assert all(f.extent in text.lower() for f in with_fluid.findings)


def test_cardiomegaly_enlarges_the_heart_with_the_same_texture():
    normal = make_study(SyntheticConfig(finding_prevalence=0.0), 8, 0)
    large = make_study(SyntheticConfig(finding_prevalence=only("Cardiomegaly")), 8, 0)
    assert large.masks["heart"].sum() > 1.4 * normal.masks["heart"].sum()
    hu_normal, hu_large = normal.volume[normal.masks["heart"]], large.volume[large.masks["heart"]]
    assert abs(np.median(hu_large) - np.median(hu_normal)) <= 3
    assert abs(hu_large.std() - hu_normal.std()) < 3
    assert "cardiomegaly" in large.report.lower() and "cardiomegaly" not in normal.report.lower()


def test_pericardial_effusion_grows_the_heart_mask_with_fluid():
    normal = make_study(SyntheticConfig(finding_prevalence=0.0), 8, 1)
    effusion = make_study(SyntheticConfig(finding_prevalence=only("Pericardial effusion")), 8, 1)
    rim = effusion.masks["heart"] & ~normal.masks["heart"]
    assert rim.sum() > 0 and abs(np.median(effusion.volume[rim]) - 10) < 10
    (finding,) = effusion.findings
    assert f"{finding.size_mm} mm" in effusion.region_reports["heart"]


# --- the dataset on disk -------------------------------------------------------------------------------


def test_layout_is_exactly_radgenome(dataset):
    root, cfg = dataset
    for split, n in (("train", cfg.n_train), ("valid", cfg.n_valid)):
        for i in range(1, n + 1):
            name = f"{split}_{i}_a_1"
            volume = nib.load(root / f"{split}_preprocessed" / f"{split}_{i}" / f"{split}_{i}a" / f"{name}.nii.gz")
            assert volume.get_data_dtype() == np.int16 and volume.shape == cfg.shape
            assert np.allclose(volume.affine, cfg.grid.affine)
            folder = root / f"{split}_region_mask" / f"seg_{name}"
            assert sorted(p.name for p in folder.iterdir()) == sorted(f"{r}.nii.gz" for r in REGIONS)
            mask = nib.load(folder / "trachea and bronchie.nii.gz")
            assert mask.get_data_dtype() == np.uint8 and mask.shape == cfg.shape
            assert set(np.unique(np.asarray(mask.dataobj))) == {0, 1}

    reports = read_csv(root / "radgenome_files" / "train_region_report.csv")
    assert reports[0] == ["Volumename", "Anatomy", "Sentence"]
    study = make_study(cfg, cfg.seed, 0, "train")
    rows = [row for row in reports[1:] if row[0] == "train_1_a_1.nii.gz"]
    assert rows[0] == ["train_1_a_1.nii.gz", "", study.report]
    assert {row[1]: row[2] for row in rows[1:]} == study.region_reports
    assert (root / "radgenome_files" / "validation_region_report.csv").is_file()

    labels = read_csv(root / "multi_abnormality_labels" / "train_predicted_labels.csv")
    assert labels[0] == ["VolumeName", *CT_RATE_LABELS]
    assert labels[1] == ["train_1_a_1.nii.gz", *(str(study.labels[label]) for label in CT_RATE_LABELS)]
    assert len(read_csv(root / "multi_abnormality_labels" / "valid_predicted_labels.csv")) == cfg.n_valid + 1


def test_written_dataset_is_byte_identical_per_seed_and_independent_of_n(dataset, tmp_path):
    root, cfg = dataset
    again = tmp_path / "again"
    write_dataset(again, SyntheticConfig(n_train=2, n_valid=0, seed=cfg.seed))
    csv_path = Path("radgenome_files") / "train_region_report.csv"
    wanted = ("Volumename", "train_1_a_1.nii.gz", "train_2_a_1.nii.gz")
    first_two = [row for row in read_csv(root / csv_path) if row[0] in wanted]
    assert read_csv(again / csv_path) == first_two
    volume = Path("train_preprocessed/train_2/train_2a/train_2_a_1.nii.gz")
    assert (again / volume).read_bytes() == (root / volume).read_bytes()

    same = tmp_path / "same"
    write_dataset(same, cfg)
    for path in (
        "radgenome_files/train_region_report.csv",
        "multi_abnormality_labels/valid_predicted_labels.csv",
        "valid_region_mask/seg_valid_2_a_1/lung.nii.gz",
    ):
        assert (same / path).read_bytes() == (root / path).read_bytes()
    other = tmp_path / "other"
    write_dataset(other, SyntheticConfig(n_train=2, n_valid=0, seed=cfg.seed + 1))
    assert (other / csv_path).read_bytes() != (again / csv_path).read_bytes()


def test_resume_reuses_finished_studies_and_redoes_changed_ones(tmp_path):
    cfg = SyntheticConfig(n_train=2, n_valid=1, shape=SMALL)
    assert write_dataset(tmp_path, cfg)["generated"] == 3
    (tmp_path / "train_region_mask" / "seg_train_2_a_1" / "lung.nii.gz").unlink()
    summary = write_dataset(tmp_path, cfg)
    assert (summary["generated"], summary["reused"]) == (1, 2)
    assert write_dataset(tmp_path, SyntheticConfig(n_train=2, n_valid=1, shape=SMALL, noise_hu=5.0))["generated"] == 3


def test_mask_perturbation_changes_written_masks_only(tmp_path):
    base = dict(n_train=2, n_valid=0, shape=SMALL, seed=3)
    clean, dilated, dropped = tmp_path / "clean", tmp_path / "dilated", tmp_path / "dropped"
    write_dataset(clean, SyntheticConfig(**base))
    write_dataset(dilated, SyntheticConfig(**base, mask_perturbation={"dilate_p": 1.0, "dilate_k": 2}))
    write_dataset(dropped, SyntheticConfig(**base, mask_perturbation={"drop_p": 1.0}))
    for path in ("radgenome_files/train_region_report.csv", "multi_abnormality_labels/train_predicted_labels.csv"):
        assert (dilated / path).read_bytes() == (clean / path).read_bytes() == (dropped / path).read_bytes()
    mask = Path("train_region_mask/seg_train_1_a_1/heart.nii.gz")
    truth, grown = (np.asarray(nib.load(r / mask).dataobj).astype(bool) for r in (clean, dilated))
    assert grown.sum() > truth.sum() and not (truth & ~grown).any()
    assert not np.asarray(nib.load(dropped / mask).dataobj).any()


def test_perturb_masks_erodes_and_shifts():
    cube = np.zeros((10, 10, 10), bool)
    cube[3:7, 3:7, 3:7] = True
    masks = {region: cube for region in REGIONS}
    eroded = perturb_masks(
        masks, SyntheticConfig(mask_perturbation={"erode_p": 1.0}).perturbation, np.random.default_rng(0)
    )
    assert all(mask.sum() == 8 for mask in eroded.values())
    spec = SyntheticConfig(mask_perturbation={"shift_p": 1.0, "shift_k": 1}).perturbation
    shifted = perturb_masks(masks, spec, np.random.default_rng(0))
    assert all(mask.sum() == 64 and not np.array_equal(mask, cube) for mask in shifted.values())


def test_radgenome_reader_reads_the_dataset(dataset):
    from reg2rg.data.readers.radgenome import RadGenomeReader

    root, cfg = dataset
    index = RadGenomeReader(root, policy="strict").read("valid")
    assert len(index.records) == cfg.n_valid
    record = index.records[0]
    assert set(record.region_reports) == set(REGIONS)
    assert record.labels.keys() == set(CT_RATE_LABELS)


def test_script_writes_a_dataset(tmp_path):
    command = [
        sys.executable,
        str(ROOT / "scripts" / "make_synthetic.py"),
        f"out={tmp_path / 'data'}",
        "n_train=1",
        "n_valid=1",
        "shape=[32,32,16]",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    ]
    result = subprocess.run(command, capture_output=True, encoding="utf-8", errors="replace", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert re.search(r"1 train \+ 1 valid studies", result.stdout)
    assert (tmp_path / "data" / "radgenome_files" / "validation_region_report.csv").is_file()


@pytest.mark.parametrize(
    "changes",
    [
        {"shape": (64, 64)},
        {"shape": (4, 64, 32)},
        {"spacing_mm": (1.0, -1.0, 1.0)},
        {"n_train": -1},
        {"finding_prevalence": 1.5},
        {"finding_prevalence": {"Lung tumour": 0.5}},
        {"mask_perturbation": {"blur_p": 0.5}},
        {"mask_perturbation": {"drop_p": 2.0}},
        {"noise_hu": -1.0},
        {"nodule_diameter_mm": (20.0, 10.0)},
        {"nodule_diameter_mm": (0.0, 10.0)},
    ],
)
def test_bad_config_raises_a_clear_error(changes):
    with pytest.raises(ValueError):
        SyntheticConfig(**changes)


def test_bad_study_arguments_raise():
    with pytest.raises(ValueError, match="split"):
        make_study(SyntheticConfig(shape=SMALL), 0, 0, split="test")
    with pytest.raises(ValueError, match="index"):
        make_study(SyntheticConfig(shape=SMALL), 0, -1)


def test_ensure_synthetic_follows_the_config_but_never_rewrites_a_hand_written_dataset(tmp_path):
    from omegaconf import OmegaConf

    from reg2rg.data.prepare import ensure_synthetic

    def data_cfg(root: Path, **synthetic) -> object:
        return OmegaConf.create(
            {"name": "synthetic", "root": str(root), "synthetic": {"shape": [24, 24, 12], "seed": 3, **synthetic}}
        )

    managed = tmp_path / "managed"
    ensure_synthetic(data_cfg(managed, n_train=1, n_valid=1))
    ensure_synthetic(data_cfg(managed, n_train=2, n_valid=1))  # a changed count takes effect
    assert len(read_csv(managed / "multi_abnormality_labels" / "train_predicted_labels.csv")) == 3

    by_hand = tmp_path / "by_hand"
    write_dataset(by_hand, SyntheticConfig(n_train=1, n_valid=1, shape=(24, 24, 12), seed=3))
    before = {p: p.stat().st_mtime_ns for p in by_hand.rglob("*") if p.is_file()}
    ensure_synthetic(data_cfg(by_hand, n_train=1, n_valid=1))  # its own settings: used as it is
    with pytest.raises(ValueError, match=f"{by_hand}.*other settings"):
        ensure_synthetic(data_cfg(by_hand, n_train=2, n_valid=1))
    assert {p: p.stat().st_mtime_ns for p in by_hand.rglob("*") if p.is_file()} == before
