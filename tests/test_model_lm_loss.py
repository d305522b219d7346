"""The chunked LM-head cross-entropy: the plain loss and gradients, without ever holding a batch's logits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_model_helpers import random_sample, tiny_llm, tiny_model
from torch import nn

from reg2rg.models.lm_loss import IGNORE_INDEX, chunked_lm_loss

BATCH, LENGTH, WIDTH, VOCABULARY = 3, 20, 8, 1000
TINY_GPT2 = dict(model_type="gpt2", n_embd=32, n_layer=1, n_head=2, n_positions=1024)  # dropout 0.1 in training


def training_batch(seed: int = 0) -> tuple[torch.Tensor, nn.Linear, torch.Tensor]:
    """Hidden states (B, L, D), an LM head with a bias, and labels: a prompt and right padding set to -100."""
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(BATCH, LENGTH, WIDTH, generator=generator, requires_grad=True)
    head = nn.Linear(WIDTH, VOCABULARY)
    with torch.no_grad():
        head.weight.copy_(torch.randn(VOCABULARY, WIDTH, generator=generator))
        head.bias.copy_(torch.randn(VOCABULARY, generator=generator))
    labels = torch.randint(VOCABULARY, (BATCH, LENGTH), generator=generator)
    for row, (prompt, padding) in enumerate([(5, 0), (7, 4), (3, 9)]):
        labels[row, :prompt] = IGNORE_INDEX
        labels[row, LENGTH - padding :] = IGNORE_INDEX
    return hidden, head, labels


def plain_loss(hidden: torch.Tensor, head: nn.Module, labels: torch.Tensor) -> torch.Tensor:
    """The loss over every position's logits: position t predicts label t + 1."""
    logits = head(hidden)[:, :-1]  # (B, L - 1, vocabulary)
    return F.cross_entropy(logits.reshape(-1, VOCABULARY), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)


def loss_and_gradients(loss_of, hidden, head, labels) -> tuple[torch.Tensor, list[torch.Tensor]]:
    hidden.grad = None
    head.zero_grad(set_to_none=True)
    loss = loss_of(hidden, head, labels)
    loss.backward()
    return loss.detach(), [hidden.grad.clone(), head.weight.grad.clone(), head.bias.grad.clone()]


@pytest.mark.parametrize("chunk", [1, 4, 7, 1000])
def test_chunked_loss_and_gradients_equal_the_plain_ones(chunk):
    hidden, head, labels = training_batch()
    plain, plain_grads = loss_and_gradients(plain_loss, hidden, head, labels)
    chunked, chunked_grads = loss_and_gradients(lambda h, m, y: chunked_lm_loss(h, m, y, chunk), hidden, head, labels)
    assert torch.allclose(chunked, plain, atol=1e-6, rtol=0)
    for ours, theirs in zip(chunked_grads, plain_grads):
        assert torch.allclose(ours, theirs, atol=1e-6, rtol=0)
    assert plain_grads[0].abs().sum() > 0


def test_num_items_in_batch_divides_the_summed_loss():
    hidden, head, labels = training_batch()
    labelled = int((labels[:, 1:] != IGNORE_INDEX).sum())
    per_position = chunked_lm_loss(hidden, head, labels, 4)
    assert torch.allclose(
        chunked_lm_loss(hidden, head, labels, 4, num_items_in_batch=100), per_position * labelled / 100
    )


class RecordingHead(nn.Module):
    """An LM head that records how many positions each call (forward or backward's recomputation) takes."""

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head
        self.positions: list[int] = []

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        self.positions.append(states[..., 0].numel())
        return self.head(states)


def largest_saved_tensor(loss_of, hidden, head, labels) -> int:
    """Elements of the largest tensor that autograd keeps for the backward pass."""
    sizes = []

    def keep(tensor):
        sizes.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        loss = loss_of(hidden, head, labels)
    loss.backward()
    return max(sizes)


def test_the_head_never_sees_more_than_a_chunk_and_no_full_logits_are_kept():
    hidden, head, labels = training_batch()
    labelled = int((labels[:, 1:] != IGNORE_INDEX).sum())
    chunk = 8
    recording = RecordingHead(head)
    chunked_lm_loss(hidden, recording, labels, chunk).backward()
    calls = -(-labelled // chunk)
    assert len(recording.positions) == 2 * calls  # each chunk once forward, once recomputed in the backward pass
    assert max(recording.positions) == chunk and sum(recording.positions) == 2 * labelled

    def chunked(h, m, y):
        return chunked_lm_loss(h, m, y, chunk)

    assert largest_saved_tensor(chunked, hidden, head, labels) < chunk * VOCABULARY
    # the check sees the logits that the plain computation keeps
    assert largest_saved_tensor(plain_loss, hidden, head, labels) >= BATCH * (LENGTH - 1) * VOCABULARY


def test_a_batch_without_a_label_is_refused():
    hidden, head, labels = training_batch()
    with pytest.raises(ValueError, match="no labelled position"):
        chunked_lm_loss(hidden, head, torch.full_like(labels, IGNORE_INDEX), 4)
    with pytest.raises(ValueError, match="chunk must be >= 1"):
        chunked_lm_loss(hidden, head, labels, 0)


@pytest.mark.parametrize(
    "llm",
    [tiny_llm(), tiny_llm(tuning="full"), tiny_llm(activation_checkpointing=True), tiny_llm(architecture=TINY_GPT2)],
    ids=["lora", "full", "activation-checkpointing", "gpt2-with-dropout"],
)
def test_reg2rg_trains_on_the_chunked_loss_with_the_llms_loss_and_gradients(llm):
    samples = [random_sample(2, seed=0), random_sample(3, seed=1)]
    results = []
    for chunk in (None, 5):
        model = tiny_model(seed=3, llm=llm, loss_chunk_size=chunk).train()
        batch = model.collator()(samples)
        torch.manual_seed(0)  # the same encoder dropout in both
        output = model(**batch)
        output.loss.backward()
        grads = {name: p.grad for name, p in model.named_parameters() if p.requires_grad}
        results.append((output, grads))
    (plain, plain_grads), (chunked, chunked_grads) = results
    assert plain.logits is not None and chunked.logits is None
    assert torch.allclose(chunked.loss, plain.loss, atol=1e-6, rtol=0)
    assert plain_grads.keys() == chunked_grads.keys()
    assert all(plain_grads[name] is not None for name in plain_grads)
    for name, grad in plain_grads.items():
        assert torch.allclose(chunked_grads[name], grad, atol=1e-6, rtol=1e-5), name
    assert model.eval()(**batch).logits is not None  # evaluation keeps the logits
