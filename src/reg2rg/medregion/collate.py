"""Samples -> one batch for ``MedRegionCT``: the Figure 5 prompt and target as token ids, and the visual tensors.

The batch::

    input_ids, attention_mask: (B, L)   training: right-padded prompt + target + EOS; inference: left-padded prompts
    labels: (B, L)                       training only; IGNORE_INDEX on the prompt and padding
    vision: (B, N, C)                    the vision tokens (R² or LITA), N = D + T
    vision_keep: (B, N) bool             the rows that go into the prompt (a region without a mask: not its T/s)
    levels: (B, L, N, C), weights: (B, R, N)   the mask extractor's input (use_mask only)
    present: (B, R) bool                 which regions have a mask
    study_ids, targets                   metadata
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from reg2rg.constants import IGNORE_INDEX
from reg2rg.medregion.prompt import prompt_text, target_text
from reg2rg.medregion.r2_pooling import SLICE_SAMPLINGS
from reg2rg.text.tokenizer import SpecialIds, setup_tokenizer

SEGMENTATION_TOKENS = 2  # per region mask: a mask token and a spatial token


@dataclass(frozen=True)
class TokenPlan:
    """How the vision tokens are laid out: D global tokens, then ``regions`` blocks of ``per_region`` tokens."""

    depth: int
    regions: int
    per_region: int
    slice_sampling: str = "region"
    use_mask: bool = True
    use_attributes: bool = True

    def __post_init__(self):
        if self.slice_sampling not in SLICE_SAMPLINGS:
            raise ValueError(f"slice_sampling must be one of {SLICE_SAMPLINGS}, got {self.slice_sampling!r}")

    @property
    def positions(self) -> int:
        return self.depth + self.regions * self.per_region

    def keep(self, present: Sequence[bool]) -> torch.Tensor:
        """(N,) bool: the vision rows of a study in the prompt; R² leaves out the blocks of regions without a mask."""
        blocks = [True] * self.regions if self.slice_sampling == "uniform" else [bool(p) for p in present]
        return torch.tensor([True] * self.depth + [b for b in blocks for _ in range(self.per_region)])

    def prompt(self, sample: dict[str, Any]) -> str:
        present = [bool(p) for p in sample["present"]]
        return prompt_text(
            int(self.keep(present).sum()),
            present,
            SEGMENTATION_TOKENS if self.use_mask else None,
            sample.get("attributes") if self.use_attributes else None,
        )


class MedRegionCollator:
    """Tokenizes and pads a batch (module docstring). ``max_length``: cut training sequences to this many tokens."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        plan: TokenPlan,
        inference: bool = False,
        max_length: int | None = None,
    ):
        self.tokenizer = tokenizer
        self.ids: SpecialIds = setup_tokenizer(tokenizer)
        self.plan = plan
        self.inference = inference
        self.max_length = max_length

    def token_ids(self, sample: dict[str, Any]) -> tuple[list[int], list[int]]:
        """(prompt ids with the tokenizer's BOS, target ids then EOS)."""
        prompt = self.tokenizer(self.plan.prompt(sample)).input_ids
        target = self.tokenizer(target_text(sample["region_reports"]), add_special_tokens=False).input_ids
        return prompt, [*target, self.ids.eos]

    def training_lengths(self, samples: Sequence[dict[str, Any]]) -> list[int]:
        return [sum(map(len, self.token_ids(sample))) for sample in samples]

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        pairs = [self.token_ids(sample) for sample in samples]
        if self.inference:
            rows = [prompt for prompt, _ in pairs]
            labels = None
        else:
            rows = [(prompt + target)[: self.max_length] for prompt, target in pairs]
            labels = [([IGNORE_INDEX] * len(prompt) + target)[: self.max_length] for prompt, target in pairs]
        width = max(map(len, rows))
        input_ids = torch.full((len(rows), width), self.ids.pad, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        label_ids = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        for i, row in enumerate(rows):
            where = slice(width - len(row), width) if self.inference else slice(0, len(row))  # left or right pad
            input_ids[i, where] = torch.tensor(row)
            attention_mask[i, where] = 1
            if labels is not None:
                label_ids[i, where] = torch.tensor(labels[i])
        key = "vision_region" if self.plan.slice_sampling == "region" else "vision_uniform"
        for sample in samples:
            if sample[key].shape[0] != self.plan.positions:
                raise ValueError(
                    f"study {sample['study_id']}: {sample[key].shape[0]} vision tokens, but model.depth + 6 x "
                    f"model.region_tokens = {self.plan.positions}: set them from data.slice_encoder.volume_shape "
                    "(depth: its slices; region_tokens: (X // 14) x (Y // 14) / 6)"
                )
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "vision": torch.stack([sample[key] for sample in samples]),
            "vision_keep": torch.stack([self.plan.keep(sample["present"]) for sample in samples]),
            "present": torch.stack([torch.as_tensor(sample["present"], dtype=torch.bool) for sample in samples]),
            "study_ids": [sample["study_id"] for sample in samples],
            "targets": [target_text(sample["region_reports"]) for sample in samples],
        }
        if labels is not None:
            batch["labels"] = label_ids
        if self.plan.use_mask:
            batch["levels"] = torch.stack([sample["levels"] for sample in samples])
            batch["weights"] = torch.stack([sample["weights"] for sample in samples])
        return batch
