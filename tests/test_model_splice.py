"""Index splicing equals the reference one-hot product: same input embeddings, same loss, same gradients."""

from __future__ import annotations

import pytest
import torch
from test_model_helpers import random_sample, tiny_model
from torch.nn.utils.rnn import pad_sequence

from reg2rg.models.splice import one_hot_splice


def test_index_splice_equals_the_one_hot_oracle():
    model = tiny_model().eval()  # no LoRA dropout: both paths see the same network
    batch = model.collator()([random_sample(3, seed=0), random_sample(1, seed=1)])  # ragged regions
    counts = batch["region_counts"].tolist()
    visual = model.visual(counts, batch["image"], batch["texture"], batch["geometry"])  # (T, D)
    vocabulary = model.llm.get_input_embeddings()

    spliced = model.splicer(batch["input_ids"], visual, vocabulary)
    per_sample = pad_sequence(visual.split([model.layout.total(r) for r in counts]), batch_first=True)  # (B, T_max, D)
    oracle = one_hot_splice(batch["input_ids"], vocabulary.weight, model.splicer, per_sample)
    assert torch.equal(spliced, oracle)
    placeholders = batch["input_ids"] == model.splicer.placeholder_id
    assert torch.equal(spliced[placeholders], visual)

    def loss_and_marker_grad(embeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        model.zero_grad()
        loss = model.llm(inputs_embeds=embeds, attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
        loss.backward(retain_graph=True)
        return loss.detach(), model.splicer.markers.grad.clone()

    loss, grad = loss_and_marker_grad(spliced)
    oracle_loss, oracle_grad = loss_and_marker_grad(oracle)
    assert torch.equal(loss, oracle_loss)
    assert torch.allclose(grad, oracle_grad, atol=1e-7) and grad.abs().sum() > 0
    assert torch.equal(model(**batch).loss, loss)  # the model's forward is exactly this path


def test_splice_refuses_a_placeholder_count_mismatch():
    model = tiny_model()
    batch = model.collator()([random_sample(2)])
    expected = model.layout.total(2)
    visual = torch.zeros(expected - 1, 64)  # one visual token short
    with pytest.raises(ValueError, match=f"{expected} visual placeholders .* but {expected - 1} visual tokens"):
        model.splicer(batch["input_ids"], visual, model.llm.get_input_embeddings())
