"""The next-token loss computed in chunks of positions, so that a batch's logits never exist all at once.

A causal LM's loss is ``cross_entropy(head(hidden)[:, :-1], labels[:, 1:])`` averaged over the labelled
positions. Computed that way, the logits of every position (tokens x vocabulary; 32,000 for LLaMA2)
exist in the compute dtype and again in fp32, and autograd keeps an fp32 copy for the backward pass.
Here only the positions with a label get logits at all, ``chunk`` of them at a time, and each chunk is
recomputed in the backward pass (``torch.utils.checkpoint``) instead of being kept: the largest logits
tensor is ``chunk x vocabulary``. The loss and its gradients are those of the plain computation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

IGNORE_INDEX = -100


def chunked_lm_loss(
    hidden: torch.Tensor,
    head: nn.Module,
    labels: torch.Tensor,
    chunk: int,
    num_items_in_batch: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of the next token over the labelled positions (``labels != -100``).

    ``hidden`` (B, L, D): the decoder's last hidden states; ``head``: the LM head (D -> vocabulary);
    ``labels`` (B, L), where position t + 1 is the label of position t's logits. The logits are
    upcast to fp32 per chunk, as transformers does for the whole batch. ``num_items_in_batch``
    (the Hugging Face Trainer's): divide the summed loss by it instead of by the labelled positions.
    """
    if chunk < 1:
        raise ValueError(f"the loss chunk must be >= 1 position, got {chunk}")
    targets = labels[:, 1:]  # (B, L - 1): the label of each position's prediction
    labelled = targets != IGNORE_INDEX
    states = hidden[:, :-1][labelled]  # (N, D): only positions with a label
    wanted = targets[labelled]  # (N,)
    if len(wanted) == 0:
        raise ValueError("no labelled position in the batch (every label is -100): there is no report to learn")
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, len(wanted), chunk):
        total = total + checkpoint(
            _summed_cross_entropy,
            head,
            states[start : start + chunk],
            wanted[start : start + chunk],
            use_reentrant=False,
        )
    count = len(wanted) if num_items_in_batch is None else num_items_in_batch
    return total / count


def _summed_cross_entropy(head: nn.Module, states: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy of one chunk: ``states`` (C, D) -> logits (C, vocabulary) in fp32."""
    return F.cross_entropy(head(states).float(), wanted, reduction="sum")
