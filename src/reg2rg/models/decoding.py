"""How reports are decoded: a preset (``evaluation.decoding``) with explicit options over it.

``greedy``: greedy search, up to 512 new tokens (the clean default).

``official``: the authors' call, ``generate(max_new_tokens=500, top_k=30)`` with ``do_sample`` unset, so
the LLM folder's ``generation_config.json`` decides whether to sample and how (Llama-2-7b-chat-hf's
says: sample, temperature 0.6, top_p 0.9). An LLM without that file (a randomly initialised one)
decodes with transformers' defaults: greedy. The official test also ran one study per batch; that is
``evaluation.batch_size`` (the fidelity group sets both).

Options given explicitly (not None) go over the preset; the result is what ``Reg2RG.generate`` takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transformers import GenerationConfig

DECODINGS = ("greedy", "official")
GREEDY: dict[str, Any] = dict(
    max_new_tokens=512, do_sample=False, temperature=1.0, top_k=0, top_p=1.0, num_beams=1, repetition_penalty=1.0
)
OFFICIAL_CALL: dict[str, Any] = dict(max_new_tokens=500, top_k=30)  # the official code's generate() arguments
# What generation_config.json decides, and transformers' values for a field it leaves unset.
FROM_LLM: dict[str, Any] = dict(do_sample=False, temperature=1.0, top_p=1.0, num_beams=1, repetition_penalty=1.0)
GENERATION_CONFIG = "generation_config.json"


def llm_generation_config(name_or_path: str | None) -> GenerationConfig | None:
    """The LLM's ``generation_config.json`` (a local folder, or a hub id in the local cache); None without one."""
    if not name_or_path:
        return None
    try:
        return GenerationConfig.from_pretrained(name_or_path)
    except OSError:  # no such file for this LLM
        return None


def decoding_options(
    decoding: str, options: Mapping[str, Any] | None = None, llm_source: str | None = None
) -> tuple[dict[str, Any], str]:
    """``Reg2RG.generate`` options of the preset ``decoding`` with the non-None ``options`` over it, and a line
    saying which settings are used and where each came from. ``llm_source``: the LLM folder or hub id
    (``llm.name_or_path``) whose ``generation_config.json`` the official preset reads."""
    if decoding not in DECODINGS:
        raise ValueError(f"decoding must be one of {DECODINGS}, got {decoding!r}")
    given = {key: value for key, value in (options or {}).items() if value is not None}
    if decoding == "greedy":
        preset = dict(GREEDY)
        parts = [f"greedy preset {_listed({k: v for k, v in preset.items() if k not in given})}"]
    else:
        found = llm_generation_config(llm_source)
        source = f"{llm_source}/{GENERATION_CONFIG}" if found else f"transformers' defaults (no {GENERATION_CONFIG})"
        found_values = {key: getattr(found, key, None) for key in FROM_LLM} if found else {}
        from_llm = {
            key: default if found_values.get(key) is None else found_values[key] for key, default in FROM_LLM.items()
        }
        preset = {**from_llm, **OFFICIAL_CALL}
        parts = [
            f"the official call {_listed({k: v for k, v in OFFICIAL_CALL.items() if k not in given})}",
            f"from {source} {_listed({k: v for k, v in from_llm.items() if k not in given})}",
        ]
    if given:
        parts.append(f"given {_listed(given)}")
    return {**preset, **given}, f"decoding {decoding}: " + "; ".join(parts)


def _listed(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in values.items()) or "(none)"
