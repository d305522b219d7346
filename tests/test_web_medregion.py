"""MedRegion-CT outside its training run: a checkpoint reloaded reports as the trained model did, and the web page
opens MedRegion-CT study folders, shows their six region masks and generates their region reports."""

from __future__ import annotations

import time

import pytest
import torch
from fastapi.testclient import TestClient
from test_medregion_model import LLM
from test_web_helpers import write_data

from reg2rg.medregion.features import EncoderSettings
from reg2rg.medregion.inference import encoder_settings, generate_reports, load_medregion_model, study_sample
from reg2rg.medregion.model import MedRegionCT
from reg2rg.medregion.phantom import PhantomConfig
from reg2rg.medregion.prompt import attribute_block, target_text
from reg2rg.medregion.regions import REGIONS, REPORT_HEADINGS
from reg2rg.medregion.sources import read_study_folder
from reg2rg.medregion.testbed import write_testbed
from reg2rg.models.checkpoint import save_checkpoint
from reg2rg.text import train_tokenizer
from reg2rg.visualize.palette import region_colour
from reg2rg.web.app import ServeSettings, create_app

# the encoder's slices: 84 x 84 pixels (a 6 x 6 patch grid, 6 tokens per region), 8 slices (8 global tokens)
ENCODER = EncoderSettings(volume_shape=(84, 84, 8))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(root, the testbed's valid folder, a MedRegion-CT checkpoint recorded as trained with ENCODER, its model)."""
    root = tmp_path_factory.mktemp("web-medregion")
    folders = write_testbed(root / "data" / "testbed", PhantomConfig(shape=(48, 48, 16)), 0, {"valid": 2})
    studies = [read_study_folder(folder) for folder in folders]
    texts = [target_text(s.region_reports) + "\n" + attribute_block(s.attributes) for s in studies]
    torch.manual_seed(0)
    model = MedRegionCT(LLM, train_tokenizer(texts * 4, vocab_size=400), vision_dim=32, feature_levels=2, depth=8,
                        region_tokens=6)  # fmt: skip
    checkpoint = save_checkpoint(model, root / "checkpoint", trained_with={"data": {"slice_encoder": ENCODER.record()}})
    return root, folders[0].parent, checkpoint, model.eval()


def test_a_reloaded_checkpoint_reports_as_the_saved_model_did(world):
    root, valid, checkpoint, saved = world
    assert encoder_settings(checkpoint) == ENCODER
    sample = study_sample(read_study_folder(valid / "valid_0000"), ENCODER)
    assert sample["present"].all() and sample["vision_region"].shape == (8 + 6 * 6, 32)
    reloaded = load_medregion_model(checkpoint)
    [report] = generate_reports(reloaded, [sample], max_new_tokens=12)
    assert report == generate_reports(saved, [sample], max_new_tokens=12)[0] and report["text"]
    torch.manual_seed(1)  # other weights write something else, so the equality above is the weights'
    other = MedRegionCT(LLM, reloaded.tokenizer, vision_dim=32, feature_levels=2, depth=8, region_tokens=6).eval()
    assert generate_reports(other, [sample], max_new_tokens=12)[0]["text"] != report["text"]


def test_a_reg2rg_checkpoint_is_not_taken_for_medregion(tmp_path):
    reg2rg_checkpoint = write_data(tmp_path)[1]
    assert encoder_settings(reg2rg_checkpoint) is None
    with pytest.raises(ValueError, match="not a MedRegion-CT checkpoint"):
        load_medregion_model(reg2rg_checkpoint)


def test_the_page_opens_medregion_studies_and_generates_their_region_reports(world):
    root, valid, checkpoint, _ = world
    settings = ServeSettings(data=valid, data_roots=[root / "data"], work_dir=root / "work", checkpoint=checkpoint)
    client = TestClient(create_app(settings))
    listed = client.get("/api/studies", params={"path": str(valid)}).json()["studies"]
    assert listed == [{"split": "valid", "study_id": "valid_0000"}, {"split": "valid", "study_id": "valid_0001"}]
    study = client.post("/api/open", json={"path": str(valid), **listed[0]}).json()
    assert [r["name"] for r in study["regions"]] == list(REGIONS)
    assert {r["name"]: r["colour"] for r in study["regions"]}["osseous"] == region_colour("bone")
    assert study["can_generate"] and set(study["reference"]) <= set(REGIONS) and study["reference"]["lung"]
    slice_url = f"/api/study/{study['key']}/slice/axial/{study['slices']['axial']}.png"
    assert client.get(slice_url, params={"highlight": "heart"}).status_code == 200
    job = client.post(f"/api/study/{study['key']}/generate").json()
    for _ in range(600):
        job = client.get(f"/api/jobs/{job['id']}").json()
        if job["state"] not in ("loading", "running"):
            break
        time.sleep(0.1)
    assert job["state"] == "done", job
    assert job["tokens"] > 0
    for report in job["reports"]:
        assert report["region"] in REGIONS and report["header"] == REPORT_HEADINGS[report["region"]]
        assert report["colour"] == region_colour(report["region"]) and report["flagged"] is False
    # one study folder opened on its own lists itself
    single = client.get("/api/studies", params={"path": str(valid / "valid_0001")}).json()["studies"]
    assert single == [{"split": "study", "study_id": "valid_0001"}]


def test_a_study_of_the_other_family_is_shown_but_not_reported_on(world, tmp_path):
    checkpoint = world[2]
    cache = write_data(tmp_path)[0]
    settings = ServeSettings(
        data=cache, data_roots=[tmp_path / "data"], work_dir=tmp_path / "work", checkpoint=checkpoint
    )
    client = TestClient(create_app(settings))
    first = client.get("/api/studies", params={"path": str(cache)}).json()["studies"][0]
    study = client.post("/api/open", json={"path": str(cache), **first}).json()
    assert study["regions"] and not study["can_generate"]
    refused = client.post(f"/api/study/{study['key']}/generate")
    assert refused.status_code == 400 and "the report model is MedRegion-CT" in refused.json()["detail"]
