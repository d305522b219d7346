"""Input embeddings with visual tokens spliced in by index, and the marker tokens' own embeddings.

Text tokens take the LLM's (frozen) vocabulary embedding; the four marker tokens take trainable
rows of their own; every placeholder position receives the next visual embedding, in row-major
order (sample by sample, left to right), by a masked scatter: no (L x V) product, no copy of the
vocabulary. ``one_hot_splice`` is the reference design (the official code's one-hot product over
vocabulary + markers + visual rows), kept as the test oracle and for the FLOP benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Splicer(nn.Module):
    """Embeds token ids: vocabulary rows for text, trainable rows for markers, visual rows at placeholders."""

    def __init__(self, marker_ids: Sequence[int], placeholder_id: int, dim: int):
        super().__init__()
        if placeholder_id in marker_ids:
            raise ValueError(f"the placeholder id {placeholder_id} is also a marker id {tuple(marker_ids)}")
        self.placeholder_id = placeholder_id
        self.register_buffer("marker_ids", torch.tensor(list(marker_ids), dtype=torch.long), persistent=False)
        self.markers = nn.Parameter(torch.randn(len(marker_ids), dim))

    @torch.no_grad()
    def init_markers(self, vocabulary: torch.Tensor) -> None:
        """Draw marker rows from the vocabulary's per-dimension mean and std (the scale the LLM expects)."""
        mean, std = vocabulary.float().mean(dim=0), vocabulary.float().std(dim=0)
        self.markers.copy_(mean + std * torch.randn_like(self.markers, dtype=torch.float32))

    def locate(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Placeholder positions (B, L), marker positions (B, L) and each position's marker index (B, L)."""
        marker_hits = input_ids[..., None] == self.marker_ids  # (B, L, M)
        return input_ids == self.placeholder_id, marker_hits.any(dim=-1), marker_hits.int().argmax(dim=-1)

    def forward(self, input_ids: torch.Tensor, visual: torch.Tensor, vocabulary: nn.Embedding) -> torch.Tensor:
        """``input_ids`` (B, L), ``visual`` (T, D) with T placeholders in ``input_ids`` -> (B, L, D)."""
        is_visual, is_marker, marker_index = self.locate(input_ids)
        if not input_ids.is_meta:  # meta tensors (FLOP counting) carry no values to check
            found = int(is_visual.sum())
            if found != visual.shape[0]:
                raise ValueError(f"{found} visual placeholders in the input ids but {visual.shape[0]} visual tokens")
        # added ids may lie past the LLM vocabulary: look up id 0 there, it is overwritten below
        embeds = vocabulary(input_ids.masked_fill(is_visual | is_marker, 0))  # (B, L, D)
        markers = self.markers.to(embeds.dtype)[marker_index]  # (B, L, D)
        embeds = torch.where(is_marker[..., None], markers, embeds)
        return embeds.masked_scatter(is_visual[..., None], visual.to(embeds.dtype))  # (B, L, D)


def one_hot_splice(
    input_ids: torch.Tensor, vocabulary: torch.Tensor, splicer: Splicer, visual: torch.Tensor
) -> torch.Tensor:
    """The reference design: ``one_hot(ids') @ cat(vocabulary, markers, visual_b)`` per sample.

    ``vocabulary`` (V, D); ``visual`` (B, T, D), the n-th placeholder of sample b taking
    ``visual[b, n]`` (rows past a sample's placeholders are unused padding, as in the official code).
    Ids are remapped as the official code numbers them: markers V + k, placeholders V + M + n.
    """
    size, markers = vocabulary.shape[0], splicer.markers.to(vocabulary.dtype)
    is_visual, is_marker, marker_index = splicer.locate(input_ids)
    ids = torch.where(is_marker, size + marker_index, input_ids)
    ids = torch.where(is_visual, size + len(markers) + is_visual.cumsum(dim=1) - 1, ids)  # (B, L)
    rows = torch.cat([vocabulary, markers]).expand(len(visual), -1, -1)  # (B, V + M, D)
    table = torch.cat([rows, visual], dim=1)  # (B, V + M + T, D)
    one_hot = (ids[..., None] == torch.arange(table.shape[1], device=ids.device)).to(table.dtype)  # (B, L, V + M + T)
    return one_hot @ table  # (B, L, D)
