"""The FLOP benchmark at paper geometry (meta device): our design at least 2x cheaper per sample."""

from __future__ import annotations

import json

from reg2rg.benchmarks import flops


def test_flop_benchmark_meets_the_target(tmp_path):
    figures = flops.run(json_path=str(tmp_path / "flops.json"))
    assert json.loads((tmp_path / "flops.json").read_text()) == figures
    assert figures["ratio"] >= 2
    assert figures["ours_tflop_per_sample"] < figures["reference_tflop_per_sample"]
    assert figures["tokens_per_sample"] == {"ours": 871, "reference": 2048, "visual": 362}
    # one-hot (2048 x 32366) @ (32366 x 4096), forward and the table's gradient
    assert abs(figures["one_hot_splice_tflop_per_sample"] - 2 * 2 * 2048 * 32366 * 4096 / 1e12) < 0.01
    parts = figures["trainable_by_part"]
    assert parts["lora"] == 4_194_304 and parts["visual.perceiver"] == 37_802_496
    assert parts["visual.fc"] == 768 * 4096 + 4096 and parts["splicer.markers"] == 4 * 4096
    assert figures["checkpoint_mb"] * 50 < figures["full_state_dict_mb"]
