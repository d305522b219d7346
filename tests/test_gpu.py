"""On a CUDA GPU, at tiny geometry: a bf16 training step, a DeepSpeed ZeRO-2 step, and the fast generation path.

``python -m pytest -m gpu tests/test_gpu.py``; every test is skipped without a GPU (and the ZeRO-2 one
without DeepSpeed).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_generation_speed import adapted_model, samples, token_ids

from reg2rg.benchmarks import step
from reg2rg.models.lora_merge import merged_lora

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

ZERO2 = Path(__file__).resolve().parents[1] / "configs" / "deepspeed" / "zero2.yaml"


def test_a_bf16_training_step_trains_both_designs():
    figures = step.run(geometry="tiny", steps=2, warmup=1)
    assert figures["mixed_precision"] == ("bf16" if torch.cuda.is_bf16_supported() else "no")
    for design in ("ours", "reference"):
        assert figures[design]["gradient_norm"] > 0 and figures[design]["peak_memory_gib"] > 0


def test_a_zero2_training_step_trains_both_designs():
    pytest.importorskip("deepspeed")
    figures = step.run(geometry="tiny", steps=2, warmup=1, deepspeed_config=str(ZERO2))
    assert figures["zero_stage"] == 2
    for design in ("ours", "reference"):
        assert figures[design]["gradient_norm"] > 0


def test_merged_and_compiled_generation_writes_the_plain_tokens():
    """float32, so that merged and unmerged weights round alike; the decoding step runs as CUDA graphs."""
    model = adapted_model().cuda()
    plain = token_ids(model, samples())
    with merged_lora(model):
        assert token_ids(model, samples()) == plain
        assert token_ids(model, samples(), compile_decode=True) == plain
