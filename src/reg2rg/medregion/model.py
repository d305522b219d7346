"""MedRegion-CT: vision tokens through a linear connector, two segmentation tokens per region mask, the attribute
prompt, and any Hugging Face causal LM (LoRA as the paper: r 16, alpha 32, dropout 0.1).

The constructor's keyword arguments are the ``model`` config schema (``configs/model/medregion.yaml``); ``config``
keeps them for checkpoints. The frozen slice encoder runs on the data side (``reg2rg.medregion.features``), so
the model starts from its cached tokens. ``init_from``: a checkpoint of an earlier stage whose weights start this
one (stage 2 from stage 1): every tensor in it must match a parameter of this model by name and shape; parameters
it lacks (LoRA, the mask extractor) keep their initialisation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import GenerationConfig, PreTrainedTokenizerBase
from transformers.modeling_outputs import CausalLMOutputWithPast

from reg2rg.medregion.collate import MedRegionCollator, TokenPlan
from reg2rg.medregion.mask_extractor import MaskDrivenExtractor
from reg2rg.medregion.prompt import parse_target
from reg2rg.medregion.regions import REGIONS
from reg2rg.models.checkpoint import MODULES, verify_digests
from reg2rg.models.llm import LLMConfig, build_llm
from reg2rg.models.reg2rg import Reg2RG
from reg2rg.models.splice import Splicer
from reg2rg.text.tokenizer import load_tokenizer, setup_tokenizer

log = logging.getLogger(__name__)


class MedRegionCT(nn.Module):
    """``forward`` gives the LM loss of a training batch (``MedRegionCollator``), ``generate`` the reports."""

    def __init__(
        self,
        llm: LLMConfig | Mapping[str, Any],
        tokenizer: PreTrainedTokenizerBase | None = None,
        vision_dim: int = 768,
        feature_levels: int = 4,
        depth: int = 32,
        region_tokens: int = 54,
        slice_sampling: str = "region",
        use_mask: bool = True,
        use_attributes: bool = True,
        init_from: str | None = None,
        trust_remote_code: bool = False,
    ):
        """``vision_dim``: the slice encoder's width; ``feature_levels``: its layers the mask extractor pools;
        ``depth`` (D) and ``region_tokens`` (T / s per region) lay out the vision tokens."""
        super().__init__()
        llm = llm if isinstance(llm, LLMConfig) else LLMConfig(**llm)
        self.tokenizer = tokenizer or llm_tokenizer(llm, trust_remote_code)
        self.special_ids = setup_tokenizer(self.tokenizer)
        self.plan = TokenPlan(depth, len(REGIONS), region_tokens, slice_sampling, use_mask, use_attributes)
        self.config: dict[str, Any] = dict(
            llm=asdict(llm),
            vision_dim=vision_dim,
            feature_levels=feature_levels,
            depth=depth,
            region_tokens=region_tokens,
            slice_sampling=slice_sampling,
            use_mask=use_mask,
            use_attributes=use_attributes,
            init_from=init_from,
        )
        self.llm = build_llm(llm, self.tokenizer, trust_remote_code)
        vocabulary = self.llm.get_input_embeddings()
        width = vocabulary.embedding_dim
        self.connector = nn.Linear(vision_dim, width)  # the paper's multimodal connector: one linear layer
        self.extractor = (
            MaskDrivenExtractor(feature_levels, vision_dim, self.plan.positions, width) if use_mask else None
        )
        self.splicer = Splicer(self.special_ids.markers, self.special_ids.placeholder, width)
        self.splicer.init_markers(vocabulary.weight)
        self.restorable_prefixes = ("llm.",) if llm.name_or_path else ()
        if init_from:
            load_stage(self, init_from)

    def collator(self, inference: bool = False, max_length: int | None = None) -> MedRegionCollator:
        return MedRegionCollator(self.tokenizer, self.plan, inference, max_length)

    # The LLM's positions, and what a checkpoint holds (trained parameters, plus frozen ones no configured file
    # restores): as Reg2RG's, from ``llm`` and ``restorable_prefixes``.
    max_positions = Reg2RG.max_positions
    persistent_parameters = Reg2RG.persistent_parameters

    def visual_rows(
        self,
        vision: torch.Tensor,
        vision_keep: torch.Tensor,
        present: torch.Tensor,
        levels: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(T, width): each study's kept vision tokens, then 2 segmentation tokens per region with a mask."""
        image = self.connector(vision)  # (B, N, width)
        if self.extractor is None:
            return image[vision_keep]
        segmentation = self.extractor(levels, weights)  # (B, R, 2, width)
        rows = []
        for b in range(vision.shape[0]):
            rows += [image[b][vision_keep[b]], segmentation[b][present[b]].reshape(-1, image.shape[-1])]
        return torch.cat(rows)

    def embed(self, input_ids: torch.Tensor, **visual: torch.Tensor) -> torch.Tensor:
        rows = self.visual_rows(**visual)
        return self.splicer(input_ids, rows, self.llm.get_input_embeddings())

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        vision: torch.Tensor,
        vision_keep: torch.Tensor,
        present: torch.Tensor,
        levels: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        study_ids: Sequence[str] | None = None,
        targets: Sequence[str] | None = None,
        **llm_kwargs: Any,
    ) -> CausalLMOutputWithPast:
        """The LM loss on the target tokens (with ``labels``) and the logits."""
        embeds = self.embed(
            input_ids, vision=vision, vision_keep=vision_keep, present=present, levels=levels, weights=weights
        )
        return self.llm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels, **llm_kwargs)

    @torch.no_grad()
    def generate(self, batch: Mapping[str, Any], max_new_tokens: int = 256) -> list[dict[str, Any]]:
        """Greedy reports for a left-padded inference batch: [{"text", "regions": {region: report}}]."""
        was_training = self.training
        self.eval()
        try:
            visual = {k: batch[k] for k in ("vision", "vision_keep", "present", "levels", "weights") if k in batch}
            embeds = self.embed(batch["input_ids"], **visual)
            settings = GenerationConfig(
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=self.special_ids.eos,
                pad_token_id=self.special_ids.pad,
            )
            new_tokens = self.llm.generate(
                inputs_embeds=embeds, attention_mask=batch["attention_mask"], generation_config=settings
            )
        finally:
            self.train(was_training)
        texts = [self.tokenizer.decode(row, skip_special_tokens=True).strip() for row in new_tokens.tolist()]
        return [{"text": text, "regions": parse_target(text)} for text in texts]


def llm_tokenizer(llm: LLMConfig, trust_remote_code: bool) -> PreTrainedTokenizerBase:
    """The tokenizer the LLM config names (``llm.tokenizer``, else ``llm.name_or_path``)."""
    if llm.tokenizer_source is None:
        raise ValueError("no tokenizer: pass one (e.g. reg2rg.text.train_tokenizer) or set llm.tokenizer")
    return load_tokenizer(llm.tokenizer_source, trust_remote_code)


def _base_name(name: str) -> str:
    """A parameter's name without PEFT's wrapping (``llm.base_model.model.`` and ``.base_layer``)."""
    return name.replace("llm.base_model.model.", "llm.").replace(".base_layer.", ".")


def load_stage(model: MedRegionCT, checkpoint: str | Path) -> None:
    """Start ``model`` from an earlier stage's checkpoint (module docstring)."""
    from safetensors.torch import load_file

    directory = Path(checkpoint)
    if not (directory / MODULES).is_file():
        raise FileNotFoundError(f"{directory}: no {MODULES}; init_from takes a checkpoint-<step> folder")
    verify_digests(directory, (MODULES,))
    state = load_file(directory / MODULES)
    parameters = {_base_name(name): p for name, p in model.named_parameters()}
    unknown = sorted(set(state) - set(parameters))
    wrong = sorted(n for n in set(state) & set(parameters) if state[n].shape != parameters[n].shape)
    if unknown or wrong:
        raise ValueError(f"{directory / MODULES} does not fit this model: unknown {unknown}, other shapes {wrong}")
    with torch.no_grad():
        for name, tensor in state.items():
            parameters[name].copy_(tensor)
    fresh = sorted(set(parameters) - set(state))
    log.info("started from %s: %d tensors; %d parameters start fresh", directory, len(state), len(fresh))
