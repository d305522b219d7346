"""Report length: KDE of words per report and KL divergence; degenerate samples are reported, not crashed on."""

import numpy as np
import pytest

from reg2rg.evaluation.length import compare_lengths, report_lengths
from reg2rg.evaluation.plots import plot_lengths


def _reports(lengths):
    return ["word " * n for n in lengths]


def test_lengths_strip_prefixes():
    assert report_lengths(["The region 0 is lung: a b c", "d e"]).tolist() == [3, 2]


def test_kl_is_zero_for_identical_and_grows_with_shift():
    rng = np.random.default_rng(0)
    base = rng.integers(150, 230, 200)
    same = compare_lengths(_reports(base), _reports(base))
    near = compare_lengths(_reports(base), _reports(base + 5))
    far = compare_lengths(_reports(base), _reports(base + 60))
    assert same.kl_divergence == pytest.approx(0.0, abs=1e-12)
    assert 0 < near.kl_divergence < far.kl_divergence
    assert far.metrics()["generated"]["mean"] == pytest.approx(base.mean() + 60)


def test_degenerate_lengths_give_none_and_a_reason(tmp_path):
    lengths = compare_lengths(_reports([10, 10, 10]), _reports([5, 9, 12]))
    assert lengths.kl_divergence is None and "ground-truth" in lengths.problem
    assert plot_lengths(lengths, tmp_path / "l.png").stat().st_size > 0


def test_plot_is_a_png(tmp_path):
    lengths = compare_lengths(_reports([10, 12, 15, 20]), _reports([9, 14, 15, 30]))
    path = plot_lengths(lengths, tmp_path / "length.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
