"""RadFM-layout encoders: exact state_dict layout at full geometry, strict loading, safe loading."""

from __future__ import annotations

import pickle

import pytest
import torch

from reg2rg.models import MASK_ENCODER, PerceiverResampler, VisualTokenEncoder, ViT3D, load_pretrained, read_tensors
from reg2rg.models.vit3d import position_indices


def radfm_vit_layout(
    channels=3, patch=(32, 32, 4), dim=768, depth=12, inner=512, mlp=2048, tables=(16, 16, 128)
) -> dict[str, tuple[int, ...]]:
    """RadFM_vit3d.pth keys and shapes, written out from RadFM's layout (not from our module)."""
    patch_dim = channels * patch[0] * patch[1] * patch[2]
    layout = {
        "to_patch_embedding.1.weight": (patch_dim,),
        "to_patch_embedding.1.bias": (patch_dim,),
        "to_patch_embedding.2.weight": (dim, patch_dim),
        "to_patch_embedding.2.bias": (dim,),
        "to_patch_embedding.3.weight": (dim,),
        "to_patch_embedding.3.bias": (dim,),
        "pos_embedding.row_embed.weight": (tables[0], dim // 3),
        "pos_embedding.col_embed.weight": (tables[1], dim // 3),
        "pos_embedding.dep_embed.weight": (tables[2], dim // 3),
    }
    for i in range(depth):
        block = f"transformer.layers.{i}"
        layout |= {
            f"{block}.0.norm.weight": (dim,),
            f"{block}.0.norm.bias": (dim,),
            f"{block}.0.fn.to_qkv.weight": (3 * inner, dim),
            f"{block}.0.fn.to_out.0.weight": (dim, inner),
            f"{block}.0.fn.to_out.0.bias": (dim,),
            f"{block}.1.norm.weight": (dim,),
            f"{block}.1.norm.bias": (dim,),
            f"{block}.1.fn.net.0.weight": (mlp, dim),
            f"{block}.1.fn.net.0.bias": (mlp,),
            f"{block}.1.fn.net.3.weight": (dim, mlp),
            f"{block}.1.fn.net.3.bias": (dim,),
        }
    return layout


def radfm_perceiver_layout(dim=768, depth=6, inner=512, latents=32, ff_mult=4) -> dict[str, tuple[int, ...]]:
    """RadFM_perceiver_fc.pth["perceiver"] keys and shapes, written out from RadFM's layout."""
    layout = {"latents": (latents, dim), "norm.weight": (dim,), "norm.bias": (dim,)}
    for i in range(depth):
        layer = f"layers.{i}"
        layout |= {
            f"{layer}.0.norm_media.weight": (dim,),
            f"{layer}.0.norm_media.bias": (dim,),
            f"{layer}.0.norm_latents.weight": (dim,),
            f"{layer}.0.norm_latents.bias": (dim,),
            f"{layer}.0.to_q.weight": (inner, dim),
            f"{layer}.0.to_kv.weight": (2 * inner, dim),
            f"{layer}.0.to_out.weight": (dim, inner),
            f"{layer}.1.0.weight": (dim,),
            f"{layer}.1.0.bias": (dim,),
            f"{layer}.1.1.weight": (dim * ff_mult, dim),
            f"{layer}.1.3.weight": (dim, dim * ff_mult),
        }
    return layout


def shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(t.shape) for key, t in module.state_dict().items()}


def random_state(layout: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return {key: torch.randn(shape) for key, shape in layout.items()}


REDUCED_VIT = dict(image_size=32, frames=16, image_patch_size=8, frame_patch_size=4, dim=48, depth=2, mlp_dim=64)
REDUCED_VIT_LAYOUT = dict(patch=(8, 8, 4), dim=48, depth=2, mlp=64, tables=(4, 4, 4))
REDUCED_PERCEIVER = dict(dim=48, depth=2, num_latents=8)
REDUCED_PERCEIVER_LAYOUT = dict(dim=48, depth=2, latents=8)


def test_vit_has_radfm_layout_at_full_geometry():
    with torch.device("meta"):
        vit = ViT3D()
    assert shapes(vit) == radfm_vit_layout()
    assert len(vit.state_dict()) == 141
    assert sum(p.numel() for p in vit.parameters()) == 66_208_000


def test_perceiver_has_radfm_layout_at_full_geometry():
    with torch.device("meta"):
        perceiver = PerceiverResampler()
    assert shapes(perceiver) == radfm_perceiver_layout()
    assert len(perceiver.state_dict()) == 69
    assert sum(p.numel() for p in perceiver.parameters()) == 37_802_496


def test_small_latents_let_a_random_resampler_follow_its_input():
    media = torch.randn(2, 64, 96)  # two different inputs

    def relative_change(latent_init_std: float) -> float:
        torch.manual_seed(0)
        out = PerceiverResampler(
            dim=96, depth=2, heads=4, dim_head=24, num_latents=8, ff_mult=2, latent_init_std=latent_init_std
        )(media).detach()  # (2, 8, 96)
        return float((out[0] - out[1]).norm() / out[0].norm())

    torch.manual_seed(0)
    assert PerceiverResampler(dim=96, num_latents=8, latent_init_std=0.02).latents.std().item() == pytest.approx(
        0.02, rel=0.1
    )
    assert relative_change(0.02) > 3 * relative_change(1.0)  # RadFM's N(0, 1) latents drown the input


def test_paper_volume_gives_radfm_token_grids():
    with torch.device("meta"):
        vit, masks = ViT3D(), ViT3D(**MASK_ENCODER)
        volume = torch.zeros(2, 3, 256, 256, 64)
        tokens, mask_tokens = vit(volume), masks(volume[:, :1])
        latents = PerceiverResampler()(tokens)
    assert tokens.shape == (2, 1024, 768)  # 8 x 8 x 16 patches
    assert mask_tokens.shape == (2, 256, 255)  # 8 x 8 x 4 patches
    assert latents.shape == (2, 32, 768)


def test_position_index_rule():
    assert position_indices(8, 16).tolist() == [1, 3, 5, 7, 9, 11, 13, 15]
    assert position_indices(16, 128).tolist() == [7 + 8 * i for i in range(16)]
    assert position_indices(4, 4).tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="does not fit"):
        position_indices(32, 16)


def test_position_embedding_concatenates_row_col_depth_tables_in_patch_order():
    vit = ViT3D(**REDUCED_VIT)
    table = vit.pos_embedding
    pos = table(2, 4, 2)  # (16, 48): tables of 4 rows, so rows 1, 3 / cols 0..3 / depths 1, 3
    rows, cols, deps = pos.split(16, dim=1)
    index = 1 * 4 * 2 + 2 * 2 + 1  # patch (h=1, w=2, d=1) in (h w d) order
    assert torch.equal(rows[index], table.row_embed.weight[3])
    assert torch.equal(cols[index], table.col_embed.weight[2])
    assert torch.equal(deps[index], table.dep_embed.weight[3])


def test_vit_rejects_volumes_it_cannot_patch():
    vit = ViT3D(**REDUCED_VIT)
    with pytest.raises(ValueError, match="not divisible"):
        vit(torch.zeros(1, 3, 30, 32, 16))
    with pytest.raises(ValueError, match="expected volumes"):
        vit(torch.zeros(1, 1, 32, 32, 16))
    with pytest.raises(ValueError, match="divisible by 3"):
        ViT3D(dim=100)


def test_strict_load_of_radfm_layout_checkpoints(tmp_path):
    vit_state = random_state(radfm_vit_layout(**REDUCED_VIT_LAYOUT))
    perceiver_state = random_state(radfm_perceiver_layout(**REDUCED_PERCEIVER_LAYOUT))
    torch.save(vit_state, tmp_path / "RadFM_vit3d.pth")
    radfm_adapter = {"perceiver": perceiver_state, "fc": {"weight": torch.randn(8, 48)}}
    torch.save(radfm_adapter, tmp_path / "RadFM_perceiver_fc.pth")

    encoder = VisualTokenEncoder(
        llm_dim=16,
        vision_encoder=REDUCED_VIT,
        vit_checkpoint=str(tmp_path / "RadFM_vit3d.pth"),
        perceiver=REDUCED_PERCEIVER,
        perceiver_checkpoint=str(tmp_path / "RadFM_perceiver_fc.pth"),
        freeze_perceiver=True,
    )
    for module, state in ((encoder.vision_encoder, vit_state), (encoder.perceiver, perceiver_state)):
        loaded = module.state_dict()
        assert loaded.keys() == state.keys()
        assert all(torch.equal(loaded[key], state[key]) for key in state)
        assert not any(p.requires_grad for p in module.parameters())


def test_mismatched_checkpoint_names_every_problem(tmp_path):
    state = random_state(radfm_vit_layout(**REDUCED_VIT_LAYOUT))
    del state["transformer.layers.1.0.fn.to_qkv.weight"]
    state["module.extra"] = torch.zeros(1)
    state["pos_embedding.dep_embed.weight"] = torch.zeros(5, 16)
    torch.save(state, tmp_path / "vit.pth")
    with pytest.raises(ValueError) as error:
        load_pretrained(ViT3D(**REDUCED_VIT), tmp_path / "vit.pth")
    message = str(error.value)
    assert "missing (1): transformer.layers.1.0.fn.to_qkv.weight" in message
    assert "unexpected (1): module.extra" in message
    assert "pos_embedding.dep_embed.weight: file (5, 16) vs model (4, 16)" in message


class _Payload:
    """Unpickling this would create a file: the shape of a malicious checkpoint."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    with open(tmp_path / "RadFM_vit3d.pth", "wb") as handle:
        pickle.dump({"weight": _Payload(marker)}, handle)
    torch.save({"weight": _Payload(marker)}, tmp_path / "torch_format.pth")
    for name in ("RadFM_vit3d.pth", "torch_format.pth"):
        with pytest.raises(ValueError, match="refusing to unpickle"):
            read_tensors(tmp_path / name)
    with pytest.raises(ValueError, match="refusing to unpickle"):
        VisualTokenEncoder(llm_dim=16, vision_encoder=REDUCED_VIT, vit_checkpoint=str(tmp_path / "RadFM_vit3d.pth"))
    assert not marker.exists()
    with open(tmp_path / "RadFM_vit3d.pth", "rb") as handle:
        pickle.load(handle)  # the control: an ordinary unpickler does run the payload
    assert marker.exists()


def test_frozen_vision_encoder_runs_without_grad_in_eval_mode_unless_asked():
    small = dict(vision_encoder=REDUCED_VIT, perceiver=REDUCED_PERCEIVER, use_geometry=False)
    encoder = VisualTokenEncoder(llm_dim=16, **small).train()
    assert not encoder.vision_encoder.training and encoder.perceiver.training
    official = VisualTokenEncoder(llm_dim=16, frozen_encoder_dropout=True, **small).train()
    assert official.vision_encoder.training

    volumes = torch.rand(2, 1, 32, 16, 16)
    tokens = encoder([1], image=volumes[:1], texture=volumes[1:])
    assert tokens.shape == (16, 16)  # 8 global + 1 region x 8 texture latents
    tokens.sum().backward()
    assert all(p.grad is None for p in encoder.vision_encoder.parameters())
    assert all(p.grad is not None for p in encoder.perceiver.parameters())
    assert torch.equal(encoder([1], image=volumes[:1], texture=volumes[1:]), tokens)  # no dropout: deterministic
    first, second = (official([1], image=volumes[:1], texture=volumes[1:]) for _ in range(2))
    assert not torch.equal(first, second)  # the official setting keeps dropout 0.1 in the frozen ViT
