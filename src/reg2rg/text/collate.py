"""Samples -> one batch: token ids with labels, padded to the longest sequence, and stacked volumes.

A sample (the data side's contract)::

    study_id: str
    image: (1, X, Y, Z) float32          global volume
    texture: (R, 1, X, Y, Z) float32     per-region texture (LFD crops, or masked volumes with LFD off)
    geometry: (R, 1, X, Y, Z) float32    per-region uncropped masks
    regions: list[str] (R)               area names in the sample's region order
    region_reports: list[str] (R)

or its compact form (``reg2rg.data.compact``): integer volumes with ``image_bins``, ``texture_bins`` and
``geometry_bins``, which the batch carries along, concatenated as the volumes are.

The batch::

    input_ids, attention_mask: (B, L)   training: right-padded; inference: left-padded prompts only
    labels: (B, L)                       training only; IGNORE_INDEX on prompt, visual and pad tokens
    image: (B, 1, X, Y, Z)               only when the layout has a global segment
    texture, geometry: (sum R, 1, X, Y, Z)  regions of all samples concatenated, only when used
    region_counts: (B,) long
    image_bins, texture_bins, geometry_bins: (B or sum R, 4) long   compact samples only
    study_ids, regions, targets          metadata (targets: the reference text in the target format, or
                                         None for an inference sample without region reports)

Regions vary per sample; the encoders run once on all regions of the batch. Prompt and target are
tokenized apart and concatenated (prompt with the tokenizer's BOS; target without special tokens,
then EOS), so generation starts from exactly the prompt ids training saw; the prompt ids depend on
the region count only and are cached.

``text_format="official"`` tokenizes as the official code: ``prompt + " " + target`` in one call (the
target unstripped, each region report followed by a space), then EOS; the labels skip as many tokens
as the prompt alone has, and also skip the pad id (when it is not EOS) and the added tokens. A
SentencePiece tokenizer (LLaMA) can then split the first target tokens otherwise than the clean format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from ..constants import IGNORE_INDEX
from ..data.compact import bins_key
from .prompt import TEXT_FORMATS, PromptTemplate, TokenLayout
from .tokenizer import SpecialIds, setup_tokenizer


class Reg2RGCollator:
    """Builds prompts and targets, tokenizes them and pads a batch (see the module docstring).

    ``inference``: prompts only, left-padded, for ``Reg2RG.generate``. ``max_length``: cut training
    sequences to this many tokens (the report's end and EOS are lost, as with the official 2048);
    None keeps every token. ``training_lengths`` measures sequences before any cut. ``text_format``:
    "clean" or "official" (see the module docstring).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        layout: TokenLayout,
        template: PromptTemplate | None = None,
        rra: bool = True,
        inference: bool = False,
        max_length: int | None = None,
        text_format: str = "clean",
    ):
        if text_format not in TEXT_FORMATS:
            raise ValueError(f"text_format must be one of {TEXT_FORMATS}, got {text_format!r}")
        self.tokenizer = tokenizer
        self.ids: SpecialIds = setup_tokenizer(tokenizer)
        self.layout = layout
        self.template = template or PromptTemplate()
        self.rra = rra
        self.inference = inference
        self.max_length = max_length
        self.text_format = text_format
        self._prompts: dict[int, list[int]] = {}

    def prompt_ids(self, num_regions: int) -> list[int]:
        """Token ids of the prompt for ``num_regions`` regions (the same for every such sample)."""
        if num_regions not in self._prompts:
            ids = self.tokenizer(self.template.prompt(num_regions, self.layout)).input_ids
            found, expected = ids.count(self.ids.placeholder), self.layout.total(num_regions)
            if found != expected:
                raise ValueError(f"the prompt tokenized to {found} visual placeholders, expected {expected}")
            if self.max_length is not None and len(ids) >= self.max_length:
                raise ValueError(f"a prompt of {len(ids)} tokens leaves no room under max_length={self.max_length}")
            self._prompts[num_regions] = ids
        return self._prompts[num_regions]

    def encode(self, sample: Mapping[str, Any]) -> tuple[list[int], list[int]]:
        """(input ids, labels) of a training sample: prompt, then target + EOS; labels only on the latter."""
        prompt = self.prompt_ids(len(sample["regions"]))
        if self.text_format == "official":
            ids = self.tokenizer(self.joint_text(sample)).input_ids + [self.ids.eos]
            unlearned = {self.ids.placeholder, *self.ids.markers} | ({self.ids.pad} - {self.ids.eos})
            labels = [IGNORE_INDEX] * len(prompt) + [IGNORE_INDEX if t in unlearned else t for t in ids[len(prompt) :]]
        else:
            target = self.tokenizer(self.target(sample), add_special_tokens=False).input_ids + [self.ids.eos]
            ids, labels = prompt + target, [IGNORE_INDEX] * len(prompt) + target
        if self.max_length is not None:
            ids, labels = ids[: self.max_length], labels[: self.max_length]
        return ids, labels

    def target(self, sample: Mapping[str, Any]) -> str:
        return self.template.target(
            sample["regions"], sample["region_reports"], rra=self.rra, text_format=self.text_format
        )

    def joint_text(self, sample: Mapping[str, Any]) -> str:
        """The official code's training text: the prompt, a space, the target."""
        return f"{self.template.prompt(len(sample['regions']), self.layout)} {self.target(sample)}"

    def training_lengths(self, samples: Sequence[Mapping[str, Any]]) -> list[int]:
        """Tokens of each sample's training sequence (prompt, target, EOS) before the cut to ``max_length``;
        a sample needs only ``regions`` and ``region_reports``."""
        if self.text_format == "official":
            return [len(ids) + 1 for ids in self.tokenizer([self.joint_text(s) for s in samples]).input_ids]
        targets = self.tokenizer([self.target(s) for s in samples], add_special_tokens=False).input_ids
        return [len(self.prompt_ids(len(s["regions"]))) + len(t) + 1 for s, t in zip(samples, targets)]

    def __call__(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if not samples:
            raise ValueError("cannot collate an empty list of samples")
        for sample in samples:
            self._check(sample)
        if self.inference:
            sequences = [(self.prompt_ids(len(s["regions"])), None) for s in samples]
        else:
            sequences = [self.encode(s) for s in samples]
        batch = self._pad(sequences)
        batch.update(self._volumes(samples))
        batch["study_ids"] = [s["study_id"] for s in samples]
        batch["regions"] = [list(s["regions"]) for s in samples]
        batch["targets"] = [self.target(s) if "region_reports" in s else None for s in samples]
        return batch

    def _pad(self, sequences: list[tuple[list[int], list[int] | None]]) -> dict[str, torch.Tensor]:
        """Pad to the longest sequence: on the right for training, on the left for generation."""
        length = max(len(ids) for ids, _ in sequences)
        batch = {
            "input_ids": torch.full((len(sequences), length), self.ids.pad, dtype=torch.long),
            "attention_mask": torch.zeros((len(sequences), length), dtype=torch.long),
        }
        if not self.inference:
            batch["labels"] = torch.full((len(sequences), length), IGNORE_INDEX, dtype=torch.long)
        for row, (ids, labels) in enumerate(sequences):
            span = slice(length - len(ids), length) if self.inference else slice(0, len(ids))
            batch["input_ids"][row, span] = torch.tensor(ids)
            batch["attention_mask"][row, span] = 1
            if labels is not None:
                batch["labels"][row, span] = torch.tensor(labels)
        return batch

    def _volumes(self, samples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        batch = {"region_counts": torch.tensor([len(s["regions"]) for s in samples], dtype=torch.long)}
        if self.layout.global_tokens:
            batch["image"] = torch.stack([torch.as_tensor(s["image"]) for s in samples])
        if self.layout.texture_tokens:
            batch["texture"] = torch.cat([torch.as_tensor(s["texture"]) for s in samples])
        if self.layout.geometry_tokens:
            batch["geometry"] = torch.cat([torch.as_tensor(s["geometry"]) for s in samples])
        for volume in [name for name in ("image", "texture", "geometry") if name in batch]:
            compact = [bins_key(volume) in s for s in samples]
            if all(compact):  # the bins of the integer sums, in the order of the volumes
                batch[bins_key(volume)] = torch.cat([s[bins_key(volume)] for s in samples])
            elif any(compact):
                studies = ", ".join(s["study_id"] for s, c in zip(samples, compact) if not c)
                raise ValueError(f"{volume}: studies {studies} are float samples in a batch of compact ones")
        return batch

    def _check(self, sample: Mapping[str, Any]) -> None:
        """Every per-region entry the batch needs has one row per region (reports optional for inference)."""
        study, regions = sample["study_id"], len(sample["regions"])
        if regions < 1:
            raise ValueError(f"study {study}: a sample needs at least one region")
        needed = {
            "image": bool(self.layout.global_tokens),
            "texture": bool(self.layout.texture_tokens),
            "geometry": bool(self.layout.geometry_tokens),
            "region_reports": not self.inference or "region_reports" in sample,
        }
        missing = [name for name, need in needed.items() if need and name not in sample]
        if missing:
            raise ValueError(f"study {study}: the sample has no {', '.join(missing)}")
        rows = {name: len(sample[name]) for name, need in needed.items() if need and name != "image"}
        wrong = {name: count for name, count in rows.items() if count != regions}
        if wrong:
            raise ValueError(f"study {study}: {regions} regions but lengths {wrong}")
