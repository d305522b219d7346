"""MedRegion-CT's vision side: the strict Rad-DINO load, R² token pooling (356 tokens) and the mask extractor."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import Dinov2Config, Dinov2Model

from reg2rg.medregion.mask_extractor import MaskDrivenExtractor, mask_weights
from reg2rg.medregion.r2_pooling import (
    global_tokens,
    pooled_grid,
    r2_pool,
    region_tokens,
    representative_slices,
    uniform_slices,
)
from reg2rg.medregion.slice_encoder import (
    VOLUME_SHAPE,
    RadDinoLoadError,
    SliceEncoder,
    image_normalisation,
    load_rad_dino,
    prepare_volume,
    tiny_dinov2,
)

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 518, "patch_size": 14}


def write_rad_dino_folder(folder, seed: int = 0) -> Dinov2Model:
    """The microsoft/rad-dino file layout (config.json, model.safetensors, preprocessor_config.json), tiny weights."""
    torch.manual_seed(seed)
    model = Dinov2Model(Dinov2Config(**TINY))
    model.save_pretrained(folder, safe_serialization=True)
    processor = {"image_mean": [0.5307] * 3, "image_std": [0.2583] * 3, "crop_size": {"height": 518, "width": 518}}
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return model


def test_rad_dino_folder_loads_strictly_and_frozen(tmp_path):
    written = write_rad_dino_folder(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ]
    loaded = load_rad_dino(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == ["Dinov2Model"]
    expected = written.state_dict()
    assert loaded.state_dict().keys() == expected.keys()
    assert all(torch.equal(tensor, expected[name]) for name, tensor in loaded.state_dict().items())
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training
    assert image_normalisation(tmp_path) == (0.5307, 0.2583)


def test_rad_dino_folder_with_a_missing_or_extra_weight_is_refused(tmp_path):
    write_rad_dino_folder(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    name = next(key for key in weights if "layer.1." in key)
    save_file(
        {k: v for k, v in weights.items() if k != name}, tmp_path / "model.safetensors", metadata={"format": "pt"}
    )
    with pytest.raises(RadDinoLoadError, match=str(tmp_path)) as info:
        load_rad_dino(tmp_path)
    assert "missing_keys" in str(info.value) and "layer.1." in str(info.value)  # transformers' name of the weight
    save_file({**weights, "head.weight": torch.zeros(2, 2)}, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(RadDinoLoadError, match="head.weight"):
        load_rad_dino(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(RadDinoLoadError, match="no model.safetensors"):
        load_rad_dino(tmp_path)


def test_paper_settings_give_356_vision_tokens():
    # The paper: 256 x 256 x 32 volumes, Rad-DINO's 14-pixel patches, 6 regions; D + T = 356.
    # Each 256 x 256 slice is an 18 x 18 patch grid (256 // 14 = 18): T = 324 tokens per slice.
    # Global tokens: one per slice, D = 32. Region tokens: s = 6 slices (one per region), each pooled by s to
    # 324 / 6 = 54 tokens (a 9 x 6 grid): 6 x 54 = 324 = T. Total 32 + 324 = 356.
    # The token count depends on the patch size and the input size only, so a tiny-width /14 ViT shows it.
    assert Dinov2Config().patch_size == 14
    encoder = SliceEncoder(tiny_dinov2(), feature_layers=(1, 2))
    slices = prepare_volume(torch.randn(40, 48, 20) * 300)
    assert slices.shape == (32, 256, 256) and (slices.min(), slices.max()) == (0.0, 1.0)
    assert VOLUME_SHAPE == (256, 256, 32)
    features = encoder(slices[None])
    assert features.tokens.shape == (1, 32, 18, 18, 32) and features.levels.shape == (1, 2, 32, 18, 18, 32)
    masks = torch.zeros(1, 6, 32, 256, 256)
    for region in range(6):
        masks[0, region, 4 * region : 4 * region + 3, 50:150, 60:200] = 1
    slices_chosen = representative_slices(masks)
    tokens = torch.cat([global_tokens(features.tokens), region_tokens(features.tokens, slices_chosen).flatten(1, 2)], 1)
    assert tokens.shape == (1, 356, 32)
    assert torch.equal(r2_pool(features.tokens, slices_chosen), tokens)
    assert pooled_grid(18, 18, 6) == (9, 6)


def test_region_slice_pooling_and_lita_sampling():
    tokens = torch.randn(1, 10, 6, 6, 3)  # (B, D, h, w, C)
    masks = torch.zeros(1, 2, 10, 12, 12)
    masks[0, 0, 7, :4, :4] = 1
    masks[0, 0, 3, :2, :2] = 1  # fewer pixels than slice 7
    slices = representative_slices(masks)
    assert slices.tolist() == [[7, -1]]  # region 1 has no mask: -1
    pooled = region_tokens(tokens, slices)  # factor 2: 6 x 6 -> 6 x 3 (1 x 2 cells)
    assert pooled.shape == (1, 2, 18, 3)
    assert torch.allclose(pooled[0, 0, 0], tokens[0, 7, 0, 0:2].mean(dim=0))
    assert torch.allclose(pooled[0, 0, 4], tokens[0, 7, 1, 2:4].mean(dim=0))
    assert torch.all(pooled[0, 1] == 0)  # the region without a mask
    assert torch.allclose(global_tokens(tokens)[0, 5], tokens[0, 5].reshape(-1, 3).mean(dim=0))
    assert uniform_slices(32, 6).tolist() == [2, 8, 13, 18, 24, 29]


def test_mask_extractor_gives_two_tokens_per_mask():
    torch.manual_seed(0)
    depth, grid = 4, (6, 6)
    masks = torch.zeros(1, 2, depth, 12, 12)
    masks[0, 0, 1, :6, :6] = 1
    slices = representative_slices(masks)
    weights = mask_weights(masks, slices, grid)
    assert weights.shape == (1, 2, depth + 36)
    # The global part: each slice's mask share (slice 1: 6 x 6 of 12 x 12 pixels). Region 1 has no mask: zeros.
    assert weights[0, 0, :depth].tolist() == [0.0, 0.25, 0.0, 0.0]
    assert torch.all(weights[0, 1] == 0)
    level_tokens = torch.randn(1, 2, depth + 36, 8)
    extractor = MaskDrivenExtractor(levels=2, channels=8, positions=depth + 36, dim=16)
    out = extractor(level_tokens, weights)
    assert out.shape == (1, 2, 2, 16)
    constant = torch.ones(1, 2, depth + 36, 8) * torch.tensor([1.0, 2.0])[None, :, None, None]
    expected = extractor.mask_projection(torch.cat([torch.ones(8), 2 * torch.ones(8)]))
    assert torch.allclose(extractor(constant, weights)[0, 0, 0], expected, atol=1e-6)
    assert torch.allclose(out[0, 0, 1], extractor.spatial_projection(weights[0, 0]))
    assert r2_pool(torch.randn(1, depth, 6, 6, 5), slices).shape == (1, depth + 36, 5)
