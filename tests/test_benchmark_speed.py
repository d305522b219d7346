"""The generation benchmark and the training-step sweep, at tiny geometry on the CPU (their figures need a GPU)."""

from __future__ import annotations

import json

import torch

from reg2rg.benchmarks import generate, step, step_sweep
from reg2rg.benchmarks.geometry import TINY, build_model, reference_embeds, reference_loss
from reg2rg.models import lm_loss
from reg2rg.models import reg2rg as reg2rg_module
from reg2rg.models.llm import activation_checkpointing, set_activation_checkpointing

OURS_TWICE_THEN_REFERENCE = [("ours", None), ("ours", 4), ("reference", None)]


def test_ours_generates_the_reference_tokens_and_both_are_timed(tmp_path):
    figures = generate.run(geometry="tiny", batch_sizes=(1, 3), new_tokens=6, json_path=str(tmp_path / "gen.json"))
    assert json.loads((tmp_path / "gen.json").read_text()) == figures
    assert figures["dtype"] == "float32" and figures["batches"].keys() == {"1", "3"}
    for size, batch in figures["batches"].items():
        assert batch["generated_tokens"] == int(size) * 6
        # float32: both paths follow the same greedy path
        assert batch["differing_tokens"] == 0 and batch["identical_sequences"] == int(size)
        assert all(batch[path]["seconds"] > 0 and batch[path]["tokens_per_s"] > 0 for path in ("reference", "ours"))


def test_the_reference_splices_each_sample_of_a_batch_with_its_own_visual_tokens():
    torch.manual_seed(0)
    model = build_model(TINY, dtype="float32").eval()  # no dropout: the two splices see the same visual tokens
    generator = torch.Generator().manual_seed(0)
    batch = step.stacked([step.training_sample(model, TINY, generator) for _ in range(2)])
    padded = step.padded(batch, TINY.reference_length, model.special_ids.pad)
    with torch.no_grad():
        ours = model.embed(
            batch["input_ids"], batch["region_counts"], batch["image"], batch["texture"], batch["geometry"]
        )
        reference = reference_embeds(model, padded)  # (2, reference_length, D)
        assert torch.allclose(reference[:, : TINY.sample_tokens], ours, atol=1e-5)
        assert torch.allclose(model(**batch).loss, reference_loss(model, padded), rtol=1e-4, atol=0)


def test_activation_checkpointing_switches_on_and_off():
    model = build_model(TINY, dtype="float32")
    assert activation_checkpointing(model.llm)
    set_activation_checkpointing(model.llm, False)
    assert not activation_checkpointing(model.llm)


def test_the_sweep_records_an_out_of_memory_configuration_and_goes_on(tmp_path, monkeypatch):
    design_loss, tried = step.design_loss, []

    def reference_runs_out_at_two(accelerator, prepared, design, batch):
        tried.append((design, len(batch["input_ids"])))
        if design == "reference" and len(batch["input_ids"]) == 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return design_loss(accelerator, prepared, design, batch)

    monkeypatch.setattr(step, "design_loss", reference_runs_out_at_two)
    figures = step_sweep.run(
        geometry="tiny", micro_batches=(1, 2, 3), steps=1, warmup=0, json_path=str(tmp_path / "sweep.json")
    )
    assert json.loads((tmp_path / "sweep.json").read_text()) == figures
    rows = {(r["design"], r["micro_batch"], r["activation_checkpointing"]): r for r in figures["configurations"]}
    assert len(rows) == 12  # 2 designs x 3 micro-batches x checkpointing on and off
    for checkpointing in (True, False):
        assert all(rows[("ours", size, checkpointing)]["outcome"] == "ok" for size in (1, 2, 3))
        assert rows[("reference", 1, checkpointing)]["outcome"] == "ok"
        assert rows[("reference", 2, checkpointing)] == {
            "design": "reference",
            "loss_chunk_size": None,
            "micro_batch": 2,
            "activation_checkpointing": checkpointing,
            "outcome": "OOM",
        }
        assert rows[("reference", 3, checkpointing)]["outcome"] == "not tried (OOM at micro-batch 2)"
    assert ("reference", 3) not in tried
    ran = [r for r in figures["configurations"] if r["outcome"] == "ok"]
    assert ran and all(r["seconds_per_step"] > 0 and r["samples_per_s"] > 0 for r in ran)
    assert [(r["micro_batch"], r["activation_checkpointing"]) for r in figures["ours_vs_reference"]] == [
        (1, True),
        (1, False),
    ]


def test_the_sweep_runs_ours_with_the_chunked_loss_off_and_on(monkeypatch):
    chunks = []

    def recording_loss(hidden, head, labels, chunk, num_items_in_batch=None):
        chunks.append(chunk)
        return lm_loss.chunked_lm_loss(hidden, head, labels, chunk, num_items_in_batch)

    monkeypatch.setattr(reg2rg_module, "chunked_lm_loss", recording_loss)
    figures = step_sweep.run(geometry="tiny", micro_batches=(2,), steps=1, warmup=0, loss_chunk_sizes=(None, 4))
    rows = [(r["design"], r["loss_chunk_size"], r["activation_checkpointing"]) for r in figures["configurations"]]
    assert rows == [(design, chunk, on) for on in (True, False) for design, chunk in OURS_TWICE_THEN_REFERENCE]
    assert all(r["outcome"] == "ok" for r in figures["configurations"])
    assert chunks == [4, 4]  # one step of ours with chunk 4, checkpointing on and off; none for the others
    assert [(r["loss_chunk_size"], r["activation_checkpointing"]) for r in figures["ours_vs_reference"]] == [
        (None, True),
        (4, True),
        (None, False),
        (4, False),
    ]
