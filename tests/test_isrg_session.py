"""The interactive session: clicks, undo / reset, bad clicks, NIfTI and JSON export, checkpoint loading.

The model is a tiny ISRG-CT whose mask head is set by hand to mark voxels far denser than soft tissue
(logits = GELU(v) - 1 of the normalised value v = arcsinh((HU - 40) / 100); attribute heads random): the
session's own logic is what is tested.
"""

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from reg2rg.isrg.attributes import ATTRIBUTES
from reg2rg.isrg.model import ISRGModel
from reg2rg.isrg.session import NO_LESION, InteractiveSession, load_isrg_model
from reg2rg.models.checkpoint import save_checkpoint

TINY = dict(dim=32, encoder_dim=32, encoder_depth=2, encoder_heads=2, decoder_depth=1, decoder_heads=2)
AFFINE = np.array([[0.0, 0.0, -0.8, 120.0], [0.0, -0.8, 0.0, 90.0], [2.5, 0.0, 0.0, -300.0], [0.0, 0.0, 0.0, 1.0]])


def threshold_model() -> ISRGModel:
    torch.manual_seed(0)
    model = ISRGModel(**TINY, point_refinement=True, feature_synergy=True).eval()
    head = model.mask_head
    with torch.no_grad():
        for module in (*head.upscaling, *head.image_detail):
            for parameter in module.parameters():
                parameter.zero_()
        for layer in head.upscaling:  # LayerNorm3d weights back to 1: a zero input stays zero
            if hasattr(layer, "eps"):
                layer.weight.fill_(1.0)
        first, second = head.image_detail[0], head.image_detail[2]
        first.weight[0, 0, 1, 1, 1] = 1.0  # channel 0: GELU(v) of the voxel itself
        second.weight[0, 0, 1, 1, 1] = 1.0
        second.bias[1] = 1.0  # channel 1: the constant 1
        head.voxel_classifier.weight.zero_()
        head.voxel_classifier.bias.zero_()
        last = head.hypernetwork[-1]
        last.weight.zero_()
        last.bias.zero_()
        last.bias[0], last.bias[1] = 1.0, -1.0  # logits = GELU(v) - 1
    return model


@pytest.fixture
def volume():
    """Soft tissue with a dense ball (radius 4) at (20, 22, 45), cut by the x border."""
    z, y, x = np.meshgrid(np.arange(40), np.arange(44), np.arange(48), indexing="ij")
    hu = np.full((40, 44, 48), 40.0, np.float32)
    hu[(z - 20) ** 2 + (y - 22) ** 2 + (x - 45) ** 2 <= 16] = 1000.0
    return hu


def test_a_click_on_the_lesion_gives_its_mask_attributes_and_report(volume):
    session = InteractiveSession(threshold_model(), volume, AFFINE)
    result = session.click(20, 22, 45)
    assert result.mask.shape == volume.shape and result.mask.dtype == bool
    np.testing.assert_array_equal(result.mask, volume > 100)  # the ball, cut by the border, nothing else
    # (the cube around the click is padded with air beyond x = 47)
    assert set(result.attributes) == set(ATTRIBUTES)
    for name, value in result.attributes.items():
        assert value["label"] in ATTRIBUTES[name]
        assert sum(value["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert value["label"] == max(value["probabilities"], key=value["probabilities"].get)
    assert result.report.splitlines()[0].startswith("Shape: ")


def test_a_click_on_background_is_an_empty_result_and_outside_clicks_are_refused(volume):
    session = InteractiveSession(threshold_model(), volume, AFFINE)
    result = session.click(20, 22, 24)  # its cube (x 8-39) is all soft tissue
    assert not result.mask.any() and result.attributes == {} and result.report == NO_LESION
    with pytest.raises(ValueError, match=r"click \(40, 0, 0\) is outside the volume of shape \(40, 44, 48\)"):
        session.click(40, 0, 0)
    with pytest.raises(ValueError, match=r"click \(20, 22, 45\) is outside the 32-voxel cube of this lesion"):
        session.click(20, 22, 45)  # in the volume, beyond the cube around the first click (x 8 .. 39)
    with pytest.raises(ValueError, match="whole numbers"):
        session.click(3.5, 3, 3)


def test_undo_and_reset_return_the_current_result(volume):
    session = InteractiveSession(threshold_model(), volume, AFFINE)
    first = session.click(20, 22, 45)
    second = session.click(20, 22, 40, positive=False)
    assert [c["positive"] for c in second.clicks] == [True, False]
    assert session.undo() is first
    assert session.undo() is None and session.result is None
    session.click(20, 22, 45)
    assert session.reset() is None and session.result is None


def test_exports_reload_onto_the_volume(volume, tmp_path):
    session = InteractiveSession(threshold_model(), volume, AFFINE)
    result = session.click(20, 22, 45)
    image = nib.load(session.export_mask(tmp_path / "lesion.nii.gz"))
    np.testing.assert_allclose(image.affine, AFFINE)
    np.testing.assert_array_equal(np.asarray(image.dataobj) > 0, result.mask)
    record = json.loads(session.export_report(tmp_path / "lesion.json").read_text())
    assert record == {
        "clicks": [{"z": 20, "y": 22, "x": 45, "positive": True}],
        "attributes": result.attributes,
        "report": result.report,
    }


def test_a_checkpoint_loads_the_same_model(tmp_path, volume):
    model = threshold_model()
    save_checkpoint(model, tmp_path / "checkpoint")
    loaded = load_isrg_model(tmp_path / "checkpoint")
    assert loaded.config == model.config
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    a = InteractiveSession(model, volume, AFFINE).click(20, 22, 45)
    b = InteractiveSession(loaded, volume, AFFINE).click(20, 22, 45)
    assert a.attributes == b.attributes
    (tmp_path / "checkpoint" / "reg2rg_modules.safetensors").write_bytes(b"damaged")
    with pytest.raises(ValueError):
        load_isrg_model(tmp_path / "checkpoint")
