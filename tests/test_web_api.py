"""The web page's HTTP API through FastAPI's TestClient: studies, slices, reports, lesion mode, and each bad input."""

from __future__ import annotations

import gzip
import io
import time

import nibabel as nib
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from test_web_helpers import click_places, study_folder, write_data

from reg2rg.data.cache import CachedStudy
from reg2rg.visualize.ras import VIEWS, _display
from reg2rg.web.app import ServeSettings, create_app
from reg2rg.web.slices import voxel_at


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("web-api")
    return root, *write_data(root)


def make_client(data, lesion_sessions=None, **overrides) -> tuple[TestClient, ServeSettings]:
    """A client of the app on the tiny data; lesion mode with the ISRG-CT checkpoint unless overridden."""
    root, cache, checkpoint, isrg = data
    options = dict(data=cache, data_roots=[root / "data"], work_dir=root / "work", checkpoint=checkpoint)
    settings = ServeSettings(**{**options, "isrg_checkpoint": isrg, "max_new_tokens": 24, **overrides})
    return TestClient(create_app(settings, lesion_sessions)), settings


@pytest.fixture(scope="module")
def client(data):
    return make_client(data)[0]


def open_first(client, cache) -> dict:
    studies = client.get("/api/studies", params={"path": str(cache)}).json()["studies"]
    response = client.post("/api/open", json={"path": str(cache), **studies[0]})
    assert response.status_code == 200, response.text
    return response.json()


def png(response) -> np.ndarray:
    assert response.status_code == 200 and response.headers["content-type"] == "image/png", response.text
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


def nifti_bytes(array: np.ndarray, affine: np.ndarray | None = None) -> bytes:
    return gzip.compress(nib.Nifti1Image(array, np.eye(4) if affine is None else affine).to_bytes())


# ----------------------------------------------------------------------------- the viewer


def test_the_page_and_its_files_are_served(client):
    assert "reg2rg" in client.get("/").text
    assert client.get("/static/app.js").status_code == 200
    config = client.get("/api/config").json()
    assert config["windows"] == ["lung", "mediastinum", "bone"] and config["lesion_mode"] is True


def test_a_cache_study_opens_with_its_views_regions_and_references(client, data):
    cache = data[1]
    study = open_first(client, cache)
    with CachedStudy(next((cache / "studies").glob(f"{study['study_id']}.npz"))) as cached:
        regions = cached.regions
    assert [r["name"] for r in study["regions"]] == regions
    assert study["views"]["axial"]["edges"] == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert study["views"]["sagittal"]["edges"] == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    axial = study["views"]["axial"]
    image = png(client.get(f"/api/study/{study['key']}/slice/axial/{study['slices']['axial']}.png"))
    assert image.shape == (axial["rows"], axial["cols"], 3)
    assert study["reference"] and study["can_generate"]


def test_window_presets_and_masks_change_the_pixels_they_should(client, data):
    cache = data[1]
    study = open_first(client, cache)
    url = f"/api/study/{study['key']}/slice/coronal/{study['slices']['coronal']}.png"
    plain = png(client.get(url, params={"regions": False, "window": "lung"}))
    bone = png(client.get(url, params={"regions": False, "window": "bone"}))
    assert (plain != bone).any()
    grey = plain[..., 0]
    assert (plain[..., 1] == grey).all() and (plain[..., 2] == grey).all()  # no masks: grey only
    lung = png(client.get(url, params={"highlight": "lung"}))
    changed = (lung != plain).any(axis=2)
    assert changed.any()
    for row, col in np.argwhere(changed)[:: max(1, int(changed.sum()) // 25)]:  # a sample of the coloured pixels
        found = client.get(
            f"/api/study/{study['key']}/at",
            params=dict(view="coronal", index=study["slices"]["coronal"], row=int(row), col=int(col)),
        ).json()
        assert found["regions"], (row, col)  # colour only where some mask is


def test_a_pixel_maps_back_to_the_voxel_it_shows():
    shape = (5, 6, 7)
    for view, axis in VIEWS.items():
        for voxel in [(0, 0, 0), (4, 5, 6), (1, 4, 2)]:
            volume = np.zeros(shape, dtype=bool)
            volume[voxel] = True
            [[row, col]] = np.argwhere(_display(np.take(volume, voxel[axis], axis=axis), view))
            assert voxel_at(shape, view, voxel[axis], row, col) == voxel
    with pytest.raises(ValueError, match="outside the volume"):
        voxel_at(shape, "axial", 0, 6, 0)


def test_a_nifti_study_folder_opens_and_can_be_reported_on(client, data):
    root, cache = data[:2]
    folder = study_folder(cache, root / "data" / "nifti_study")
    listed = client.get("/api/studies", params={"path": str(folder)}).json()["studies"]
    assert listed == [{"split": "study", "study_id": next(folder.glob("*.nii.gz")).name.split(".")[0]}]
    study = client.post("/api/open", json={"path": str(folder), **listed[0]}).json()
    assert study["can_generate"] and len(study["regions"]) == len(list((folder / "masks").iterdir()))


# ----------------------------------------------------------------------------- paths outside the data roots


@pytest.mark.parametrize("path", ["/etc", "../../../../etc", "{root}/data/../checkpoint", "{root}/data/link_out"])
def test_paths_outside_the_data_roots_are_refused(client, data, path):
    root = data[0]
    link = root / "data" / "link_out"  # a link inside a data root that leads out of it
    if not link.is_symlink():
        link.symlink_to(root / "checkpoint")
    path = path.format(root=root)
    for response in (
        client.get("/api/studies", params={"path": path}),
        client.post("/api/open", json={"path": path, "split": "valid", "study_id": "x"}),
    ):
        assert response.status_code == 403, response.text
        assert response.json()["detail"].startswith(f"{path} is outside the data roots (")


def test_a_missing_path_and_an_unknown_study_are_named(client, data):
    root, cache = data[:2]
    missing = client.get("/api/studies", params={"path": str(root / "data" / "nothing")})
    assert missing.status_code == 400 and "does not exist" in missing.json()["detail"]
    unknown = client.post("/api/open", json={"path": str(cache), "split": "valid", "study_id": "no_such"})
    assert unknown.status_code == 400 and "'no_such' is not in" in unknown.json()["detail"]
    assert client.get("/api/study/nokey/slice/axial/0.png").status_code == 404
    a_file = str(cache / "valid.jsonl")
    for response in (
        client.get("/api/studies", params={"path": a_file}),
        client.post("/api/open", json={"path": a_file, "split": "valid", "study_id": "x"}),
    ):
        assert response.status_code == 400 and "is a file" in response.json()["detail"]


# ----------------------------------------------------------------------------- uploads


def synthetic_volume(cache, study_id: str = "*") -> tuple[np.ndarray, np.ndarray]:
    """A synthetic study's source volume (X, Y, Z) and affine."""
    image = nib.load(next(cache.parent.glob(f"valid_preprocessed/*/*/{study_id}.nii.gz")))
    return np.asarray(image.dataobj), image.affine


def test_an_uploaded_volume_opens_and_takes_region_masks(client, data):
    cache = data[1]
    volume, affine = synthetic_volume(cache)
    response = client.post("/api/upload", params={"name": "my scan.nii.gz"}, content=nifti_bytes(volume, affine))
    assert response.status_code == 200, response.text
    study = response.json()
    assert study["study_id"] == "my_scan" and study["uploaded"] and not study["can_generate"]
    assert png(client.get(f"/api/study/{study['key']}/slice/sagittal/3.png")).shape[:2] == volume.shape[1:][::-1]
    heart = np.zeros(volume.shape, dtype=np.uint8)
    heart[10:20, 10:20, 5:10] = 1
    response = client.post(
        f"/api/study/{study['key']}/mask",
        params={"region": "heart", "name": "heart.nii.gz"},
        content=nifti_bytes(heart, affine),
    )
    assert response.status_code == 200, response.text
    with_mask = response.json()
    assert [r["name"] for r in with_mask["regions"]] == ["heart"] and with_mask["can_generate"]


@pytest.mark.parametrize(
    "name, content, phrase",
    [
        ("notes.txt", b"hello", "notes.txt is not a NIfTI file: upload a .nii or .nii.gz volume"),
        ("scan.nii.gz", b"hello, not gzip", "scan.nii.gz is not a NIfTI file"),
        ("scan.nii.gz", gzip.compress(b"hello, not NIfTI" * 30), "scan.nii.gz is not a NIfTI file (no NIfTI header)"),
        ("flat.nii.gz", nifti_bytes(np.zeros((16, 16), np.int16)), "flat.nii.gz: expected a 3D volume"),
        ("series.nii", nib.Nifti1Image(np.zeros((8, 8, 8, 3), np.int16), np.eye(4)).to_bytes(), "expected a 3D volume"),
    ],
)
def test_bad_uploads_are_named_with_their_problem(client, name, content, phrase):
    response = client.post("/api/upload", params={"name": name}, content=content)
    assert response.status_code == 400, response.text
    assert phrase in response.json()["detail"]


def test_an_upload_over_the_cap_is_refused_and_not_kept(data):
    root = data[0]
    client, settings = make_client(data, max_upload_mb=0.01)
    before = set((root / "work").rglob("*")) if (root / "work").exists() else set()
    response = client.post("/api/upload", params={"name": "big.nii.gz"}, content=bytes(20_000))
    assert response.status_code == 413
    assert response.json()["detail"] == "big.nii.gz is larger than the upload limit of 0.01 MB (max_upload_mb=...)"
    assert not [p for p in set((root / "work").rglob("*")) - before if p.is_file()]


def test_a_mask_on_another_grid_is_refused(client, data):
    cache = data[1]
    volume, affine = synthetic_volume(cache)
    study = client.post("/api/upload", params={"name": "scan.nii.gz"}, content=nifti_bytes(volume, affine)).json()
    wrong = np.ones(tuple(n - 2 for n in volume.shape), dtype=np.uint8)
    response = client.post(
        f"/api/study/{study['key']}/mask", params={"region": "lung", "name": "lung.nii.gz"}, content=nifti_bytes(wrong)
    )
    assert response.status_code == 400 and response.json()["detail"].startswith("lung.nii.gz: ")
    assert str(wrong.shape) in response.json()["detail"]
    unknown = client.post(
        f"/api/study/{study['key']}/mask", params={"region": "liver", "name": "liver.nii.gz"}, content=b"x"
    )
    assert unknown.status_code == 400 and "unknown region 'liver'" in unknown.json()["detail"]


# ----------------------------------------------------------------------------- generation


def wait(client, job: dict) -> dict:
    deadline = time.monotonic() + 60
    while job["state"] in ("loading", "running") and time.monotonic() < deadline:
        time.sleep(0.05)
        job = client.get(f"/api/jobs/{job['id']}").json()
    return job


def test_generation_reports_progress_and_its_reports(client, data):
    study = open_first(client, data[1])
    job = client.post(f"/api/study/{study['key']}/generate").json()
    assert job["state"] in ("loading", "running", "done")
    done = wait(client, job)
    assert done["state"] == "done" and 0 < done["tokens"] <= done["max_new_tokens"] == 24
    assert done["reports"] and all({"header", "body", "colour"} <= set(r) for r in done["reports"])
    assert client.get("/api/jobs/unknown").status_code == 404


def test_a_cancelled_generation_stops_at_the_next_step(data):
    from reg2rg.visualize import open_study
    from reg2rg.web.jobs import ReportGenerator

    _, cache, checkpoint, _ = data
    generator = ReportGenerator(checkpoint, max_new_tokens=200)
    steps = []

    def cancel_at_the_third_step(module, inputs):  # runs before the job's own hook, which then stops it
        steps.append(1)
        if len(steps) == 3:
            for job_id in generator.jobs:
                generator.cancel(job_id)

    generator.model().llm.get_output_embeddings().register_forward_pre_hook(cancel_at_the_third_step)
    study, sample = open_study(cache, 0)
    study.close()
    job = generator.start("study", sample)
    deadline = time.monotonic() + 30
    while job.state in ("loading", "running") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert job.state == "cancelled" and job.tokens == 2 and len(steps) == 3 and job.reports == []
    assert generator.start("study", sample).id != job.id  # free for the next one


def test_a_second_generation_waits_for_the_first(data):
    import threading

    from reg2rg.visualize import open_study
    from reg2rg.web.jobs import Busy, ReportGenerator

    _, cache, checkpoint, _ = data
    generator = ReportGenerator(checkpoint, max_new_tokens=8)
    release = threading.Event()

    def hold(module, inputs) -> None:  # every step waits until the test lets it go
        release.wait(30)

    generator.model().llm.get_output_embeddings().register_forward_pre_hook(hold)
    study, sample = open_study(cache, 0)
    study.close()
    first = generator.start("study", sample)
    with pytest.raises(Busy, match=f"a generation is running \\(job {first.id}\\): wait for it or cancel it"):
        generator.start("study", sample)
    release.set()
    deadline = time.monotonic() + 30
    while first.state in ("loading", "running") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert first.state == "done"


# ----------------------------------------------------------------------------- lesion mode


def recording_sessions(checkpoint) -> tuple[list, object]:
    """(the sessions opened so far, a factory of real ISRG-CT sessions that records them)."""
    from reg2rg.isrg.session import InteractiveSession, load_isrg_model

    model, opened = load_isrg_model(checkpoint), []

    def open_session(volume, affine):
        opened.append(InteractiveSession(model, volume, affine))
        return opened[-1]

    return opened, open_session


def world(affine: np.ndarray, voxels: np.ndarray) -> np.ndarray:
    """(N, 3) voxel indices -> (N, 3) world mm."""
    return (affine @ np.c_[voxels, np.ones(len(voxels))].T)[:3].T


def test_lesion_clicks_masks_undo_reset_and_exports(data):
    from reg2rg.isrg.attributes import ATTRIBUTES

    cache, isrg = data[1], data[3]
    opened, open_session = recording_sessions(isrg)
    client, _ = make_client(data, open_session)
    study = open_first(client, cache)
    key, index = study["key"], study["slices"]["axial"]
    axial = study["views"]["axial"]
    for row, col in click_places(axial["rows"], axial["cols"]):
        click = {"view": "axial", "index": index, "row": row, "col": col}
        first = client.post(f"/api/study/{key}/lesion/click", json=click).json()
        if first["voxels"]:
            break
        assert first["attributes"] == {} and first["report"]  # no lesion there: no attributes, a report saying so
        client.post(f"/api/study/{key}/lesion/reset")
    [session] = opened
    voxel = first["points"][0]["voxel"]
    assert session.result.clicks == [{"z": voxel[2], "y": voxel[1], "x": voxel[0], "positive": True}]
    assert first["voxels"] == int(session.result.mask.sum()) > 0
    assert set(first["attributes"]) == set(ATTRIBUTES) and first["report"] == session.result.report
    for name, value in first["attributes"].items():
        probabilities = value["probabilities"]
        assert set(probabilities) == set(ATTRIBUTES[name]) and abs(sum(probabilities.values()) - 1) < 1e-3
        assert value["label"] == max(probabilities, key=probabilities.get)
    for view, axis in VIEWS.items():  # the mask shows in all three views through the clicked voxel
        drawn = png(client.get(f"/api/study/{key}/slice/{view}/{voxel[axis]}.png", params={"regions": False}))
        assert ((drawn[..., 0] > 200) & (drawn[..., 1] < 60)).any(), view  # the lesion's red outline

    # The session's volume and affine put each voxel where the source NIfTI has it.
    source, source_affine = synthetic_volume(cache, study["study_id"])
    zyx = np.argwhere(session.volume > -1000)[::97]
    at_source = np.rint(world(np.linalg.inv(source_affine) @ session.affine, zyx)).astype(int)
    assert np.array_equal(session.volume[tuple(zyx.T)], source[tuple(at_source.T)])

    second = client.post(f"/api/study/{key}/lesion/click", json={**click, "col": click["col"] + 1, "positive": False})
    assert [p["positive"] for p in second.json()["points"]] == [True, False]
    undone = client.post(f"/api/study/{key}/lesion/undo").json()
    assert undone["voxels"] == first["voxels"] and len(undone["points"]) == 1 and len(session.result.clicks) == 1

    # The exported mask lies on the source grid, holding the session's mask's voxels at the same places.
    exported = client.get(f"/api/study/{key}/lesion/mask.nii.gz")
    assert f"{study['study_id']}_lesion.nii.gz" in exported.headers["content-disposition"]
    image = nib.Nifti1Image.from_bytes(gzip.decompress(exported.content))
    assert image.shape == source.shape and np.allclose(image.affine, source_affine)
    lesion = np.argwhere(session.result.mask)
    expected = np.zeros(source.shape, dtype=np.uint8)
    expected[tuple(np.rint(world(np.linalg.inv(source_affine) @ session.affine, lesion)).astype(int).T)] = 1
    assert np.array_equal(np.asarray(image.dataobj), expected)

    report = client.get(f"/api/study/{key}/lesion/report.json").json()
    assert report["report"] == first["report"] and report["attributes"] == first["attributes"]
    assert report["study_id"] == study["study_id"]
    assert client.get(f"/api/study/{key}/lesion/report.txt").text == first["report"]
    reset = client.post(f"/api/study/{key}/lesion/reset").json()
    assert reset["points"] == [] and reset["voxels"] == 0 and session.result is None
    none_yet = client.get(f"/api/study/{key}/lesion/mask.nii.gz")
    assert none_yet.status_code == 400 and "click on the lesion first" in none_yet.json()["detail"]


def test_a_click_answers_within_a_second_on_the_cpu(client, data):
    study = open_first(client, data[1])
    axial = study["views"]["axial"]
    click = {"view": "axial", "index": study["slices"]["axial"], "row": axial["rows"] // 2, "col": axial["cols"] // 2}
    for _ in range(3):  # the first click also encodes the crop
        start = time.perf_counter()
        response = client.post(f"/api/study/{study['key']}/lesion/click", json=click)
        assert response.status_code == 200 and time.perf_counter() - start < 1.0
        assert 0 <= response.json()["seconds"] < 1.0


def test_lesion_mode_without_a_model_says_how_to_get_one(data):
    client, _ = make_client(data, isrg_checkpoint=None)
    study = open_first(client, data[1])
    response = client.post(
        f"/api/study/{study['key']}/lesion/click", json={"view": "axial", "index": 0, "row": 0, "col": 0}
    )
    assert response.status_code == 400 and "isrg_checkpoint=" in response.json()["detail"]
    assert client.get("/api/config").json()["lesion_mode"] is False


def test_a_click_outside_the_volume_is_refused(client, data):
    study = open_first(client, data[1])
    response = client.post(
        f"/api/study/{study['key']}/lesion/click", json={"view": "axial", "index": 0, "row": 999, "col": 0}
    )
    assert response.status_code == 400 and "outside the volume" in response.json()["detail"]
