"""ISRG-CT model parts: the encoder's SAM-Med3D key layout, the ablation switches, the training step."""

import pytest
import torch

from reg2rg.isrg.attributes import NUM_CLASSES
from reg2rg.isrg.encoder import ImageEncoder3D, load_sam_med3d_encoder, window_partition, window_unpartition
from reg2rg.isrg.model import ISRGModel, build_model

TINY = dict(dim=32, encoder_dim=32, encoder_depth=2, encoder_heads=2, decoder_depth=1, decoder_heads=2)
SAM_LIKE = dict(img_size=32, patch_size=4, dim=32, depth=4, heads=2, out_chans=16, window_size=3)


def test_window_partition_round_trips_with_padding():
    x = torch.randn(2, 5, 7, 8, 3)
    windows, padded = window_partition(x, 3)
    assert windows.shape == (2 * 2 * 3 * 3, 3, 3, 3, 3) and padded == (6, 9, 9)
    assert torch.equal(window_unpartition(windows, 3, padded, x.shape), x)


def test_global_layers_see_the_whole_grid_and_window_layers_only_their_window():
    torch.manual_seed(0)
    encoder = ImageEncoder3D(**SAM_LIKE, global_attn_indexes=(3,), use_rel_pos=True)
    assert [b.window for b in encoder.blocks] == [3, 3, 3, 0]
    assert encoder.blocks[0].attn.rel_pos_d.shape == (5, 16) and encoder.blocks[3].attn.rel_pos_d.shape == (15, 16)
    block = encoder.blocks[0]
    x = torch.randn(1, 8, 8, 8, 32)
    changed = x.clone()
    changed[0, 7, 7, 7] = torch.randn(32) * 3  # a cell in the last window (not a constant: LayerNorm removes it)
    difference = (block(changed) - block(x)).abs().sum(-1)[0]
    assert difference[6:, 6:, 6:].flatten()[:-1].max() > 1e-3 and difference[:6].max() < 1e-5  # its window only
    assert (encoder.blocks[3](changed) - encoder.blocks[3](x)).abs().sum(-1)[0, 0, 0, 0] > 1e-4


def test_sam_med3d_encoder_weights_load_from_its_key_layout(tmp_path):
    source = ImageEncoder3D(**SAM_LIKE, global_attn_indexes=(1, 3), use_rel_pos=True)
    for p in source.parameters():
        torch.nn.init.normal_(p, std=0.05)
    state = {f"image_encoder.{k}": v for k, v in source.state_dict().items()}
    state["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"] = torch.randn(3, 8)  # other parts: ignored
    torch.save({"model_state_dict": state, "epoch": 3}, tmp_path / "sam_med3d.pth")
    target = ImageEncoder3D(**SAM_LIKE, global_attn_indexes=(1, 3), use_rel_pos=True)
    load_sam_med3d_encoder(target, tmp_path / "sam_med3d.pth")
    image = torch.randn(1, 1, 32, 32, 32)
    torch.testing.assert_close(target(image), source(image))
    model = build_model(
        crop_size=32,
        patch_size=4,
        dim=16,
        encoder_dim=32,
        encoder_depth=4,
        encoder_heads=2,
        window_size=3,
        global_attn_indexes=[1, 3],
        use_rel_pos=True,
        sam_med3d_checkpoint=str(tmp_path / "sam_med3d.pth"),
    )  # configs/model/isrg.yaml's target
    torch.testing.assert_close(model.encoder(image), source(image))
    mismatched = ImageEncoder3D(**SAM_LIKE, global_attn_indexes=(1, 3), use_rel_pos=False)
    with pytest.raises(ValueError, match=r"sam_med3d\.pth.*rel_pos"):
        load_sam_med3d_encoder(mismatched, tmp_path / "sam_med3d.pth")


@pytest.mark.parametrize("refinement,synergy", [(False, False), (True, False), (False, True), (True, True)])
def test_ablation_switches_and_a_training_step(refinement, synergy):
    torch.manual_seed(0)
    model = ISRGModel(**TINY, point_refinement=refinement, feature_synergy=synergy, train_clicks=2)
    assert (model.synergy is not None) == synergy
    image = torch.randn(2, 1, 32, 32, 32)
    mask = torch.zeros(2, 32, 32, 32, dtype=torch.bool)
    mask[:, 10:20, 12:22, 8:18] = True
    attributes = torch.tensor([[0, 1, 2, 0, 1], [3, 0, 1, 1, 0]])
    output = model(image, mask, attributes)
    assert output.mask_logits.shape == (2, 32, 32, 32)
    assert [x.shape for x in output.attribute_logits] == [(2, n) for n in NUM_CLASSES]
    output.loss.backward()
    assert model.encoder.patch_embed.proj.weight.grad.abs().sum() > 0
    assert model.attribute_head.classifiers[0].weight.grad.abs().sum() > 0
