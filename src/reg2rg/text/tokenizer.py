"""Tokenizer set-up: the marker and placeholder tokens, padding, and a tiny trainable tokenizer.

Added tokens (special, so they never split): ``<image> </image> <region> </region>`` (trainable
embeddings in the model) and one placeholder ``<|visual|>`` per visual embedding. A tokenizer
without a pad token pads with its unk token (as the official code: id 0 for LLaMA), else its EOS.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from .prompt import MARKERS, PLACEHOLDER

BOS, EOS, UNK = "<s>", "</s>", "<unk>"


@dataclass(frozen=True)
class SpecialIds:
    """Token ids the model needs: where visual embeddings go and which tokens are markers."""

    placeholder: int
    markers: tuple[int, ...]
    pad: int
    eos: int


def setup_tokenizer(tokenizer: PreTrainedTokenizerBase) -> SpecialIds:
    """Add the marker and placeholder tokens (idempotent) and make sure padding and EOS exist."""
    if tokenizer.eos_token is None:
        raise ValueError(f"{type(tokenizer).__name__} has no EOS token; the report target needs one")
    tokenizer.add_tokens([*MARKERS, PLACEHOLDER], special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return SpecialIds(
        placeholder=tokenizer.convert_tokens_to_ids(PLACEHOLDER),
        markers=tuple(tokenizer.convert_tokens_to_ids(list(MARKERS))),
        pad=tokenizer.pad_token_id,
        eos=tokenizer.eos_token_id,
    )


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """A tokenizer from a local folder or hub id (offline runs need it cached); its own Python code runs only
    with ``trust_remote_code`` (always passed, so transformers never asks at the terminal)."""
    return AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``texts`` (for tiny models and the demo).

    Every byte is in the vocabulary, so nothing is unknown and decoding returns the text exactly;
    ``vocab_size`` must leave room for the 256 bytes and the 3 special tokens. BOS is prepended.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    specials = [UNK, BOS, EOS]
    smallest = len(alphabet) + len(specials)
    if vocab_size < smallest:
        raise ValueError(f"vocab_size must be at least {smallest} (bytes + specials), got {vocab_size}")
    core = Tokenizer(models.BPE(unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=alphabet, show_progress=False
    )
    core.train_from_iterator(texts, trainer)
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", special_tokens=[(BOS, core.token_to_id(BOS))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token=BOS, eos_token=EOS, unk_token=UNK)
