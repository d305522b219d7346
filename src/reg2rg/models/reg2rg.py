"""Reg2RG: region tokens spliced into a (LoRA-tuned) LLM; the LM loss on the report, and generation.

The constructor's keyword arguments are the ``model`` config schema (``configs/model/reg2rg.yaml``);
``self.config`` keeps them, JSON-ready, for checkpoints. Nested sections are forwarded as keyword
arguments: ``vision_encoder`` to ``ViT3D`` (defaults: RadFM), ``perceiver`` to ``PerceiverResampler``
(defaults: RadFM), ``mask_encoder`` to ``ViT3D`` over ``MASK_ENCODER`` (defaults: the paper's),
``llm`` to ``LLMConfig`` and ``prompt`` to ``PromptTemplate``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from transformers import CompileConfig, GenerationConfig, PreTrainedTokenizerBase
from transformers.modeling_outputs import CausalLMOutputWithPast

from ..text.collate import Reg2RGCollator
from ..text.parse import RegionReport
from ..text.prompt import PromptTemplate, TokenLayout
from ..text.tokenizer import load_tokenizer, setup_tokenizer
from .llm import LLMConfig, build_llm
from .lm_loss import chunked_lm_loss
from .region_tokens import VisualTokenEncoder
from .splice import Splicer

MARKER_INITS = ("vocabulary", "randn")


@dataclass(frozen=True)
class Generation:
    """One generated report: the raw text, its region reports (empty with RRA off) and its token ids (to EOS)."""

    text: str
    regions: list[RegionReport]
    token_ids: tuple[int, ...] = ()


class Reg2RG(nn.Module):
    """The whole model: ``forward`` gives the LM loss of a training batch, ``generate`` the reports."""

    def __init__(
        self,
        llm: LLMConfig | Mapping[str, Any],
        tokenizer: PreTrainedTokenizerBase | None = None,
        vision_encoder: Mapping[str, Any] | None = None,
        vit_checkpoint: str | None = None,
        perceiver: Mapping[str, Any] | None = None,
        perceiver_checkpoint: str | None = None,
        mask_encoder: Mapping[str, Any] | None = None,
        use_global: bool = True,
        use_texture: bool = True,
        use_geometry: bool = True,
        rra: bool = True,
        text_format: str = "clean",
        marker_init: str = "vocabulary",
        freeze_vision_encoder: bool = True,
        frozen_encoder_dropout: bool = False,
        freeze_perceiver: bool = False,
        prompt: PromptTemplate | Mapping[str, Any] | None = None,
        loss_chunk_size: int | None = 1024,
        trust_remote_code: bool = False,
    ):
        """``trust_remote_code``: let the LLM's and tokenizer's own Python code run (not part of ``config``:
        a checkpoint never switches it on). ``text_format``: "clean" or "official" (``reg2rg.text.collate``).
        ``marker_init``: "vocabulary" (marker rows drawn from the vocabulary's per-dimension mean and std) or
        "randn" (N(0, 1), as the official code). ``loss_chunk_size``: the training loss takes the LM head and
        cross-entropy over this many labelled positions at a time (``reg2rg.models.lm_loss``); None: the
        LLM's own loss over the whole batch's logits."""
        super().__init__()
        if marker_init not in MARKER_INITS:
            raise ValueError(f"marker_init must be one of {MARKER_INITS}, got {marker_init!r}")
        if loss_chunk_size is not None and loss_chunk_size < 1:
            raise ValueError(f"loss_chunk_size must be >= 1 position (or null), got {loss_chunk_size}")
        self.loss_chunk_size = loss_chunk_size
        llm = llm if isinstance(llm, LLMConfig) else LLMConfig(**llm)
        self.template = prompt if isinstance(prompt, PromptTemplate) else PromptTemplate(**(prompt or {}))
        if tokenizer is None:
            if llm.tokenizer_source is None:
                raise ValueError("no tokenizer: pass one (e.g. reg2rg.text.train_tokenizer) or set llm.tokenizer")
            tokenizer = load_tokenizer(llm.tokenizer_source, trust_remote_code)
        self.tokenizer = tokenizer
        self.special_ids = setup_tokenizer(tokenizer)
        self.rra = rra
        self.text_format = text_format
        encoders = dict(
            vision_encoder=dict(vision_encoder or {}),
            vit_checkpoint=vit_checkpoint,
            perceiver=dict(perceiver or {}),
            perceiver_checkpoint=perceiver_checkpoint,
            mask_encoder=dict(mask_encoder or {}),
            use_global=use_global,
            use_texture=use_texture,
            use_geometry=use_geometry,
            freeze_vision_encoder=freeze_vision_encoder,
            frozen_encoder_dropout=frozen_encoder_dropout,
            freeze_perceiver=freeze_perceiver,
        )
        self.config: dict[str, Any] = dict(
            llm=asdict(llm),
            rra=rra,
            text_format=text_format,
            marker_init=marker_init,
            prompt=asdict(self.template),
            loss_chunk_size=loss_chunk_size,
            **encoders,
        )
        self.llm = build_llm(llm, tokenizer, trust_remote_code)
        vocabulary = self.llm.get_input_embeddings()
        self.visual = VisualTokenEncoder(llm_dim=vocabulary.embedding_dim, **encoders)
        self.splicer = Splicer(self.special_ids.markers, self.special_ids.placeholder, vocabulary.embedding_dim)
        if marker_init == "vocabulary":  # else the splicer's own N(0, 1) draw
            self.splicer.init_markers(vocabulary.weight)
        # Frozen weights a checkpoint need not hold: they re-load from the configured files.
        self.restorable_prefixes = tuple(
            prefix
            for prefix, source in (
                ("visual.vision_encoder.", vit_checkpoint),
                ("visual.perceiver.", perceiver_checkpoint),
                ("llm.", llm.name_or_path),
            )
            if source
        )

    @property
    def layout(self) -> TokenLayout:
        return self.visual.layout

    def collator(self, inference: bool = False, max_length: int | None = None) -> Reg2RGCollator:
        """The collate function for this model's tokenizer, layout, wording and RRA switch."""
        return Reg2RGCollator(
            self.tokenizer, self.layout, self.template, self.rra, inference, max_length, text_format=self.text_format
        )

    @property
    def max_positions(self) -> int | None:
        """The LLM's positions: the longest sequence it takes (None: no fixed limit)."""
        return getattr(self.llm.config, "max_position_embeddings", None)

    def persistent_parameters(self) -> dict[str, nn.Parameter]:
        """What a checkpoint holds: every trained parameter, plus frozen ones no configured file restores."""
        return {
            name: p
            for name, p in self.named_parameters()
            if p.requires_grad or not name.startswith(self.restorable_prefixes)
        }

    def embed(
        self,
        input_ids: torch.Tensor,
        region_counts: torch.Tensor | Sequence[int],
        image: torch.Tensor | None = None,
        texture: torch.Tensor | None = None,
        geometry: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Input embeddings (B, L, D) with the visual tokens at their placeholders."""
        visual = self.visual(region_counts, image, texture, geometry)  # (T, D)
        return self.splicer(input_ids, visual, self.llm.get_input_embeddings())

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        region_counts: torch.Tensor | Sequence[int],
        image: torch.Tensor | None = None,
        texture: torch.Tensor | None = None,
        geometry: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        study_ids: Sequence[str] | None = None,
        regions: Sequence[Sequence[str]] | None = None,
        targets: Sequence[str] | None = None,
        **llm_kwargs: Any,
    ) -> CausalLMOutputWithPast:
        """The LM loss on the report tokens (with ``labels``) and the logits (B, L, vocabulary).

        In training mode with ``labels`` and a ``loss_chunk_size``, the loss is computed in chunks of
        positions and no logits are returned (``logits`` is None). ``study_ids`` (the collate's metadata,
        as ``regions`` and ``targets``) only name the studies of an error; ``llm_kwargs`` (e.g. the HF
        Trainer's ``num_items_in_batch``) go to the LLM.
        """
        self._check_length(input_ids.shape[1], study_ids)
        embeds = self.embed(input_ids, region_counts, image, texture, geometry)
        if not (self.training and labels is not None and self.loss_chunk_size is not None):
            return self.llm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels, **llm_kwargs)
        num_items_in_batch = llm_kwargs.pop("num_items_in_batch", None)
        causal_lm = self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm  # under peft
        hidden = causal_lm.base_model(  # the decoder without its LM head: (B, L, D)
            inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False, **llm_kwargs
        ).last_hidden_state
        loss = chunked_lm_loss(
            hidden, causal_lm.get_output_embeddings(), labels, self.loss_chunk_size, num_items_in_batch
        )
        return CausalLMOutputWithPast(loss=loss)

    def generation_config(
        self,
        max_new_tokens: int = 512,
        min_new_tokens: int = 0,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        num_beams: int = 1,
        repetition_penalty: float = 1.0,
        compile_decode: bool = False,
    ) -> GenerationConfig:
        """The transformers settings for ``generate``'s options.

        Greedy by default; ``do_sample`` with ``temperature``, ``top_k`` (0: off) and ``top_p`` (1.0: off)
        samples instead; EOS is held back until ``min_new_tokens``. ``compile_decode``: a static KV cache
        and the one-token decoding step compiled by ``torch.compile`` (mode ``reduce-overhead``: CUDA
        graphs on a GPU); every new batch shape compiles again, so it pays off over long runs only.
        """
        sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p) if do_sample else {}
        compiled: dict[str, Any] = {}
        if compile_decode:
            compile_config = CompileConfig(mode="reduce-overhead")
            compile_config._compile_all_devices = True  # transformers' switch to compile on a CPU too
            compiled = dict(cache_implementation="static", compile_config=compile_config)
        return GenerationConfig(
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens,
            do_sample=do_sample,
            num_beams=num_beams,
            repetition_penalty=repetition_penalty,
            eos_token_id=self.special_ids.eos,
            pad_token_id=self.special_ids.pad,
            **sampling,
            **compiled,
        )

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        region_counts: torch.Tensor | Sequence[int],
        image: torch.Tensor | None = None,
        texture: torch.Tensor | None = None,
        geometry: torch.Tensor | None = None,
        study_ids: Sequence[str] | None = None,
        regions: Sequence[Sequence[str]] | None = None,
        targets: Sequence[str] | None = None,
        **options: Any,
    ) -> list[Generation]:
        """Reports for a left-padded inference batch (``model.collator(inference=True)``).

        ``options``: those of ``generation_config`` (greedy by default). Runs in eval mode and restores
        the mode it found; of the collate's metadata (``study_ids``, ``regions``, ``targets``) only
        ``study_ids`` is used, to name the studies of an error.
        """
        settings = self.generation_config(**options)
        self._check_length(input_ids.shape[1] + settings.max_new_tokens, study_ids)
        was_training = self.training
        self.eval()
        try:
            embeds = self.embed(input_ids, region_counts, image, texture, geometry)
            new_tokens = self.llm.generate(
                inputs_embeds=embeds, attention_mask=attention_mask, generation_config=settings
            )  # (B, new tokens): with inputs_embeds, generate returns only what it generated
        finally:
            self.train(was_training)
        return [self._generation(row.tolist()) for row in new_tokens]

    def _generation(self, new_tokens: list[int]) -> Generation:
        """One row of generated ids, cut after its EOS (the rest is padding), as text and region reports."""
        if self.special_ids.eos in new_tokens:
            new_tokens = new_tokens[: new_tokens.index(self.special_ids.eos) + 1]
        text = self.tokenizer.decode(new_tokens, skip_special_tokens=True)
        return Generation(text.strip(), self.template.parse(text), tuple(new_tokens))

    def generate_reports(self, samples: Sequence[Mapping[str, Any]], **options: Any) -> list[Generation]:
        """Collate ``samples`` (the data side's dicts) for inference and generate; ``options`` as ``generate``."""
        batch = self.collator(inference=True)(samples)
        device = self.splicer.markers.device
        return self.generate(**{k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}, **options)

    def _check_length(self, length: int, study_ids: Sequence[str] | None) -> None:
        """Refuse sequences longer than the LLM's positions (GPT-2 has 1024) instead of failing inside it."""
        limit = self.max_positions
        if limit is not None and length > limit:
            studies = f" (batch of studies {', '.join(study_ids)})" if study_ids else ""
            raise ValueError(f"{length} tokens exceed the LLM's {limit} positions{studies}")
