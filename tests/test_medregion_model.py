"""MedRegion-CT's prompt, batches and model: Figure 5's layout, the ablation switches, stage 2 from stage 1."""

from __future__ import annotations

import pytest
import torch
from test_training_helpers import compose_train

from reg2rg.medregion.collate import TokenPlan
from reg2rg.medregion.model import MedRegionCT
from reg2rg.medregion.prompt import attribute_block, parse_target, target_text
from reg2rg.models.checkpoint import save_checkpoint
from reg2rg.text import train_tokenizer
from reg2rg.text.prompt import PLACEHOLDER

LLM = {
    "architecture": {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 1024},
    "tuning": "full",
    "activation_checkpointing": False,
}  # fmt: skip
DEPTH, PER_REGION, DIM, LEVELS = 4, 2, 8, 2
ATTRIBUTES = {
    "organs": {"right_upper_lobe": {"volume_ml": 712.06}, "liver": {"volume_ml": 333.3}},
    "lesions": {"nodule": {"count": 2, "diameters_mm": [14.06, 10.0], "locations": ["left lower lobe"] * 2}},
}
REPORTS = {"lung": "Two nodules in the left lower lobe. No pleural effusion.", "heart": "Heart size is normal."}


def sample(study_id: str = "s0", present=(True, False, True, True, True, True)) -> dict:
    torch.manual_seed(len(study_id))
    positions = DEPTH + 6 * PER_REGION
    return {
        "study_id": study_id,
        "region_reports": REPORTS,
        "attributes": ATTRIBUTES,
        "present": torch.tensor(present),
        "vision_region": torch.randn(positions, DIM),
        "vision_uniform": torch.randn(positions, DIM),
        "levels": torch.randn(LEVELS, positions, DIM),
        "weights": torch.rand(6, positions),
    }


def tokenizer():
    texts = [target_text(REPORTS), attribute_block(ATTRIBUTES), "The global visual information is provided here"]
    return train_tokenizer(texts * 4, vocab_size=400)


def model(**switches) -> MedRegionCT:
    torch.manual_seed(0)
    return MedRegionCT(LLM, tokenizer(), vision_dim=DIM, feature_levels=LEVELS, depth=DEPTH, region_tokens=PER_REGION,
                       **switches)  # fmt: skip


def test_prompt_follows_figure_5_and_says_which_region_has_no_mask():
    plan = TokenPlan(depth=DEPTH, regions=6, per_region=PER_REGION)
    prompt = plan.prompt(sample())
    lines = prompt.splitlines()
    assert lines[0].startswith("The global visual information is provided here: <image>")
    # 4 global tokens + 5 regions with a mask x 2 region-slice tokens; 2 segmentation tokens per region with a mask
    assert lines[0].count(PLACEHOLDER) == DEPTH + 5 * PER_REGION
    assert lines[1].count(PLACEHOLDER) == 5 * 2 and "airway (no mask)" in lines[1]
    assert lines[1].startswith("The following regions of interest have been identified: lung<region>")
    assert "- Right Upper Lobe: 712.1 ml" in lines and "Liver: 333.3 ml" in lines
    assert "Heart:" not in lines  # no chamber masks: left out, not invented
    assert lines[-5:] == ["Nodule:", "- count: 2", "- diameter (mm): 14.1, 10.0",
                          "- location: left lower lobe, left lower lobe", "Describe this medical scan with findings."]  # fmt: skip
    lita = TokenPlan(DEPTH, 6, PER_REGION, slice_sampling="uniform", use_mask=False, use_attributes=False)
    bare = lita.prompt(sample()).splitlines()
    assert bare[0].count(PLACEHOLDER) == DEPTH + 6 * PER_REGION and len(bare) == 2
    target = target_text(REPORTS)
    assert target == "[Lung]: Two nodules in the left lower lobe. No pleural effusion.\n[Heart]: Heart size is normal."
    assert parse_target(target + "\n[Unknown]: x") == REPORTS


@pytest.mark.parametrize(
    "switches",
    [{}, {"use_mask": False}, {"use_attributes": False}, {"slice_sampling": "uniform", "use_mask": False}],
)
def test_every_ablation_trains_and_generates(switches):
    network = model(**switches)
    collate = network.collator()
    batch = collate([sample("s0"), sample("study1", present=(True,) * 6)])
    prompt_length = len(collate.token_ids(sample("s0"))[0])
    assert (batch["labels"][0, :prompt_length] == -100).all() and (batch["labels"][0, prompt_length:] != -100).any()
    loss = network(**batch).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert network.connector.weight.grad.abs().sum() > 0
    if network.extractor is not None:
        assert network.extractor.mask_projection[0].weight.grad.abs().sum() > 0
    reports = network.generate(network.collator(inference=True)([sample("s0")]), max_new_tokens=5)
    assert len(reports) == 1 and isinstance(reports[0]["text"], str)


def test_lita_reads_the_uniform_slices_and_r2_the_region_slices():
    batch_r2 = model(use_mask=False).collator()([sample()])
    batch_lita = model(slice_sampling="uniform", use_mask=False).collator()([sample()])
    assert torch.equal(batch_r2["vision"][0], sample()["vision_region"])
    assert torch.equal(batch_lita["vision"][0], sample()["vision_uniform"])
    assert batch_r2["vision_keep"][0].sum() == DEPTH + 5 * PER_REGION and batch_lita["vision_keep"][0].all()


def test_stage_two_starts_from_stage_one(tmp_path):
    stage1 = model(use_mask=False, use_attributes=False)
    save_checkpoint(stage1, tmp_path / "checkpoint-1")
    stage2 = MedRegionCT({**LLM, "tuning": "lora", "lora_r": 4}, tokenizer(), vision_dim=DIM, feature_levels=LEVELS,
                         depth=DEPTH, region_tokens=PER_REGION, init_from=str(tmp_path / "checkpoint-1"))  # fmt: skip
    assert torch.equal(stage2.connector.weight, stage1.connector.weight)
    assert torch.equal(stage2.splicer.markers, stage1.splicer.markers)
    base = stage2.llm.get_base_model().model.layers[0].self_attn.q_proj.base_layer.weight
    assert torch.equal(base, stage1.llm.model.layers[0].self_attn.q_proj.weight)
    wider = MedRegionCT(LLM, tokenizer(), vision_dim=DIM * 2, feature_levels=LEVELS, depth=DEPTH,
                        region_tokens=PER_REGION, use_mask=False)  # fmt: skip
    save_checkpoint(wider, tmp_path / "checkpoint-wide")
    with pytest.raises(ValueError, match="other shapes .*connector.weight"):
        model(init_from=str(tmp_path / "checkpoint-wide"))


def test_stage_experiments_carry_the_paper_settings():
    stage1 = compose_train(["experiment=medregion_stage1", "output_dir=unused"])
    stage2 = compose_train(["experiment=medregion_stage2", "output_dir=unused", "model.init_from=ckpt"])
    for cfg in (stage1, stage2):
        assert cfg.family == "medregion" and cfg.trainer.epochs == 3 and cfg.trainer.lr_scheduler == "cosine"
        assert cfg.trainer.max_length == 2048 and list(cfg.data.slice_encoder.volume_shape) == [256, 256, 32]
        assert cfg.model.depth + 6 * cfg.model.region_tokens == 356
    assert stage1.trainer.optimizer.lr == 1e-4 and stage1.trainer.effective_batch_size == 32
    assert stage1.llm.tuning == "frozen" and not stage1.model.use_mask and not stage1.model.use_attributes
    assert stage2.trainer.optimizer.lr == 2e-5 and stage2.trainer.effective_batch_size == 8
    assert (stage2.llm.tuning, stage2.llm.lora_r, stage2.llm.lora_alpha, stage2.llm.lora_dropout) == (
        "lora",
        16,
        32,
        0.1,
    )
    assert stage2.model.use_mask and stage2.model.use_attributes and stage2.model.init_from == "ckpt"
