"""fidelity=official|clean: each difference from the authors' code is a config key the group sets, and each
key does what it says (CPU, tiny models)."""

from __future__ import annotations

import csv

import pytest
import torch
from test_model_helpers import VOLUME, random_sample, tiny_model
from test_training_helpers import compose_train
from transformers import GenerationConfig, PreTrainedTokenizerFast

from reg2rg.constants import IGNORE_INDEX
from reg2rg.data.build import build_cache
from reg2rg.data.dataset import CachedRegionDataset
from reg2rg.data.preprocessing import PreprocessConfig
from reg2rg.data.readers import RadGenomeReader
from reg2rg.data.synthetic import SyntheticConfig, write_dataset
from reg2rg.models.decoding import GREEDY, decoding_options
from reg2rg.text import PromptTemplate, Reg2RGCollator, TokenLayout

# The six keys of the group and their values in each mode (docs/reference.md).
MODES = {
    "clean": {
        "data.region_set": "reported",
        "model.text_format": "clean",
        "model.frozen_encoder_dropout": False,
        "model.marker_init": "vocabulary",
        "evaluation.decoding": "greedy",
        "evaluation.batch_size": 8,
        "evaluation.merge_lora": True,
        "seed": 0,
    },
    "official": {
        "data.region_set": "masked",
        "model.text_format": "official",
        "model.frozen_encoder_dropout": True,
        "model.marker_init": "randn",
        "evaluation.decoding": "official",
        "evaluation.batch_size": 1,
        "evaluation.merge_lora": False,
        "seed": 42,
    },
}


def _value(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg


@pytest.mark.parametrize(
    "overrides, mode, epochs",
    [
        ([], "clean", 25),  # the demo
        (["experiment=radgenome"], "official", 6),  # the paper's 6 epochs; the official script's 10: trainer.epochs=10
        (["experiment=ctrg"], "official", 10),
        (["experiment=radgenome", "fidelity=clean"], "clean", 6),
        (["fidelity=official"], "official", 25),
    ],
)
def test_the_group_sets_every_key(overrides, mode, epochs):
    cfg = compose_train([*overrides, "output_dir=unused"])
    assert cfg.fidelity == mode and cfg.trainer.epochs == epochs
    assert {key: _value(cfg, key) for key in MODES[mode]} == MODES[mode]


def test_each_key_switches_alone():
    cfg = compose_train(["experiment=radgenome", "model.marker_init=vocabulary", "seed=7", "output_dir=unused"])
    values = {key: _value(cfg, key) for key in MODES["official"]}
    assert values == {**MODES["official"], "model.marker_init": "vocabulary", "seed": 7}


def test_checkpoints_record_how_the_run_generated():
    from reg2rg.training.config import trained_with

    recorded = trained_with(compose_train(["experiment=radgenome", "output_dir=unused"]))["evaluation"]
    assert recorded["merge_lora"] is False and recorded["seed"] == 42 and recorded["decoding"] == "official"


def sentencepiece_like_tokenizer(corpus: list[str]) -> PreTrainedTokenizerFast:
    """A Unigram model behind a Metaspace pre-tokenizer (words carry their leading space as '▁', as LLaMA's)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    core = Tokenizer(models.Unigram())
    core.pre_tokenizer = pre_tokenizers.Metaspace()
    core.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], unk_token="<unk>", show_progress=False
    )
    core.train_from_iterator(corpus, trainer)
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", core.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def test_official_text_is_the_joint_tokenization_of_prompt_and_unstripped_target():
    template = PromptTemplate(instruction="Report on each region.")
    sample = {"study_id": "s", "regions": ["heart", "lung"], "region_reports": ["Heart is normal. ", " No nodule."]}
    tokenizer = sentencepiece_like_tokenizer(
        [
            template.global_context,
            template.instruction,
            template.target(["heart", "lung"], ["Heart is normal.", "No nodule."]),
        ]
        * 20
    )
    layout = TokenLayout(global_tokens=2, texture_tokens=2, geometry_tokens=1)
    official = Reg2RGCollator(tokenizer, layout, template, text_format="official")
    clean = Reg2RGCollator(tokenizer, layout, template)

    target = "The region 0 is heart: Heart is normal.  The region 1 is lung:  No nodule. "  # as the official code
    assert official.target(sample) == target
    ids, labels = official.encode(sample)
    joint = tokenizer(template.prompt(2, layout) + " " + target).input_ids
    assert ids == joint + [tokenizer.eos_token_id]
    prompt = official.prompt_ids(2)
    assert labels == [IGNORE_INDEX] * len(prompt) + ids[len(prompt) :] and labels[-1] == tokenizer.eos_token_id

    clean_ids, _ = clean.encode(sample)
    assert clean.target(sample) == "The region 0 is heart: Heart is normal. The region 1 is lung: No nodule."
    assert clean_ids != ids  # the unstripped reports and the final space are tokens of their own
    assert clean.training_lengths([sample]) == [len(clean_ids)] and official.training_lengths([sample]) == [len(ids)]
    model = tiny_model(text_format="official")
    assert model.collator().text_format == "official" and model.config["text_format"] == "official"


def _two_train_mode_passes(model) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen ViT's tokens of one volume, twice, with the whole model in train mode."""
    volume = random_sample(1)["image"][None]  # (1, 1, X, Y, Z)
    model.train()
    return model.visual._encode_volumes(volume), model.visual._encode_volumes(volume)


@pytest.mark.parametrize("mode", ["clean", "official"])
def test_frozen_vit_dropout_follows_the_mode(mode):
    model = tiny_model(frozen_encoder_dropout=MODES[mode]["model.frozen_encoder_dropout"])
    first, second = _two_train_mode_passes(model)
    assert model.visual.vision_encoder.training is (mode == "official")
    assert torch.equal(first, second) is (mode == "clean")  # dropout 0.1 of the frozen ViT only under official


def test_marker_init_std():
    vocabulary_std = tiny_model().llm.get_input_embeddings().weight.std().item()
    markers = {init: tiny_model(marker_init=init).splicer.markers.detach() for init in ("vocabulary", "randn")}
    assert 0.8 < markers["randn"].std().item() < 1.2  # torch.randn, as the official code
    assert 0.7 < markers["vocabulary"].std().item() / vocabulary_std < 1.4
    assert vocabulary_std < 0.2
    with pytest.raises(ValueError, match="marker_init must be one of"):
        tiny_model(marker_init="zeros")


def test_official_region_set_adds_mask_only_regions_with_empty_references(tmp_path):
    root = tmp_path / "synthetic"
    write_dataset(root, SyntheticConfig(n_train=1, n_valid=3, shape=(40, 40, 20), seed=1))
    report = root / "radgenome_files" / "validation_region_report.csv"
    with open(report, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    with open(report, "w", newline="", encoding="utf-8") as f:  # no sentence about the breast: its mask stays
        csv.writer(f).writerows([row for row in rows if row[1] != "breast"])
    cfg = PreprocessConfig(target_size=VOLUME)
    build_cache(RadGenomeReader(root).read("valid").records, root / "cache", "valid", cfg)

    reported = CachedRegionDataset(root / "cache", "valid", cfg, shuffle_regions=False)
    masked = CachedRegionDataset(root / "cache", "valid", cfg, shuffle_regions=False, region_set="masked")
    assert len(reported) == len(masked) == 3
    for index in range(3):
        clean, official = reported[index], masked[index]
        assert "breast" not in clean["regions"] and "breast" in official["regions"]
        assert [r for r in official["regions"] if r != "breast"] == clean["regions"]
        assert official["region_reports"][official["regions"].index("breast")] == ""
        position = official["regions"].index("breast")
        assert (
            f"The region {position} is breast:  The region"
            in tiny_model().collator()([{**official, "study_id": "s"}])["targets"][0]
        )
        assert torch.equal(
            official["texture"][[i for i, r in enumerate(official["regions"]) if r != "breast"]], clean["texture"]
        )


def test_official_decoding_reads_the_llm_generation_config(tmp_path):
    llm = tmp_path / "llm"
    GenerationConfig(do_sample=True, temperature=0.6, top_p=0.9).save_pretrained(llm)  # as Llama-2-7b-chat-hf's
    options, used = decoding_options("official", {}, str(llm))
    assert options == dict(
        max_new_tokens=500, top_k=30, do_sample=True, temperature=0.6, top_p=0.9, num_beams=1, repetition_penalty=1.0
    )
    assert f"from {llm}/generation_config.json" in used and "max_new_tokens=500, top_k=30" in used

    options, used = decoding_options("official", {"max_new_tokens": 20, "top_p": None}, str(tmp_path / "bare"))
    assert options == dict(
        max_new_tokens=20, top_k=30, do_sample=False, temperature=1.0, top_p=1.0, num_beams=1, repetition_penalty=1.0
    )
    assert "no generation_config.json" in used and "given max_new_tokens=20" in used
    assert decoding_options("greedy", {"max_new_tokens": None})[0] == GREEDY
    with pytest.raises(ValueError, match="decoding must be one of"):
        decoding_options("beam")


def test_official_decoding_samples_a_model_whose_llm_folder_says_so(tmp_path):
    """The options the official preset resolves drive Reg2RG.generate: sampling differs from greedy."""
    source = tiny_model(seed=1)
    GenerationConfig(do_sample=True, temperature=5.0).save_pretrained(tmp_path / "llm")
    options, _ = decoding_options("official", {"max_new_tokens": 12}, str(tmp_path / "llm"))
    assert options["do_sample"] and options["temperature"] == 5.0
    greedy = source.generate_reports([random_sample(1)], **decoding_options("greedy", {"max_new_tokens": 12})[0])
    torch.manual_seed(0)
    sampled = source.generate_reports([random_sample(1)], **options)
    assert sampled[0].token_ids != greedy[0].token_ids
