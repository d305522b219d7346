"""reg2rg.evaluation.compare and scripts/compare_runs.py: runs side by side, labelled by their switches."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from reg2rg.benchmarks.evaluation import synthetic_pairs
from reg2rg.evaluation import evaluate_reports
from reg2rg.evaluation.compare import (
    compare_runs,
    find_runs,
    findings_of,
    gather_runs,
    summarize_variants,
    variant_name,
    variants_markdown,
    write_comparison,
)

ROOT = Path(__file__).resolve().parents[1]
MECHANISMS = {
    "full": "global+texture+geometry",
    "texture_only": "texture",
    "texture_geometry": "texture+geometry",
    "global_only": "global",
    "no_lfd": "global+texture+geometry, no LFD",
    "no_rra": "global+texture+geometry, no RRA",
}


def _config(overrides):
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        return compose("train", overrides=overrides)


@pytest.mark.parametrize("mechanism", sorted(MECHANISMS))
def test_every_mechanism_config_names_its_variant(mechanism):
    assert variant_name(_config([f"+mechanism={mechanism}"])) == MECHANISMS[mechanism]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A folder of two evaluated runs, as a multirun sweep leaves them: one with perfect reports."""
    references, predictions = synthetic_pairs(8, seed=3)
    root = tmp_path_factory.mktemp("sweep")
    for name, mechanism, preds in (("0", "full", references), ("1", "texture_only", predictions)):
        run = root / name
        (run / "evaluation").mkdir(parents=True)
        OmegaConf.save(_config([f"+mechanism={mechanism}", "seed=3"]), run / "config.yaml")
        metrics = evaluate_reports(references, preds, protocols=["reg2rg"])
        (run / "evaluation" / "metrics.json").write_text(json.dumps(metrics))
    (root / "multirun.yaml").write_text("{}\n")
    (root / "2").mkdir()  # a run still training: left out of a sweep's table
    OmegaConf.save(_config(["+mechanism=no_rra"]), root / "2" / "config.yaml")
    return root


def test_compare_runs_reads_each_run(sweep, caplog):
    table = compare_runs(find_runs([sweep]))
    assert "left out, not evaluated" in caplog.text
    assert list(table["run"]) == [f"{sweep.name}/0", f"{sweep.name}/1"]
    assert list(table["variant"]) == ["global+texture+geometry", "texture"]
    assert list(table["seed"]) == [3, 3]
    perfect = table.iloc[0]
    assert perfect["recognition"] == 1.0 and perfect["CE micro-F1"] == 1.0
    findings = findings_of(table)
    assert findings and all(perfect[finding] == 1.0 for finding in findings)  # only findings with support
    assert table.iloc[1]["CE micro-F1"] < 1.0


def test_write_comparison_and_script(sweep, tmp_path):
    out = write_comparison(compare_runs(find_runs([sweep / "0", sweep / "1"])), tmp_path / "a")
    assert {p.name for p in out.iterdir()} == {
        "comparison.csv",
        "comparison.md",
        "per_finding_f1.png",
        "variants.csv",
        "variants.md",
        "per_finding_f1_by_variant.png",
    }
    assert all(
        (out / name).read_bytes()[:4] == b"\x89PNG" for name in ("per_finding_f1.png", "per_finding_f1_by_variant.png")
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compare_runs.py"), str(sweep), "--out", str(tmp_path / "b")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert f"| {sweep.name}/1 | texture | 3 |" in done.stdout
    assert "| texture | 1 | 3 | " in done.stdout  # and the table over seeds
    assert (tmp_path / "b" / "comparison.md").read_text() == (out / "comparison.md").read_text()


def test_an_earlier_comparison_adds_its_runs(sweep, tmp_path):
    earlier = write_comparison(compare_runs([sweep / "0"]), tmp_path / "earlier") / "comparison.csv"
    table = gather_runs([earlier, sweep / "1"])
    assert list(table["run"]) == [f"{sweep.name}/0", f"{sweep.name}/1"]
    assert table.iloc[0]["CE micro-F1"] == 1.0 and table.iloc[1]["variant"] == "texture"
    with pytest.raises(ValueError, match=f"runs given twice .*: {sweep.name}/0"):
        gather_runs([earlier, sweep])
    (tmp_path / "other.csv").write_text("run,seed\na/0,0\n")
    with pytest.raises(ValueError, match="other.csv: not a comparison.csv .*no column variant"):
        gather_runs([tmp_path / "other.csv"])


def test_variants_are_summarized_over_their_seeds():
    table = pd.DataFrame(
        {
            "run": ["s/0", "s/1", "s/2"],
            "variant": ["full", "texture", "full"],
            "seed": [0, 0, 1],
            "recognition": [1.0, 1.0, 0.9],
            "CE micro-F1": [0.7, 0.4, 0.5],
            "BLEU-4": [0.9] * 3,
            "Cardiomegaly": [1.0, 0.0, 0.2],
        }
    )
    summary = summarize_variants(table)
    assert list(summary["variant"]) == ["full", "texture"] and list(summary["runs"]) == [2, 1]
    full = summary.iloc[0]
    assert full["seeds"] == "0, 1" and full["CE micro-F1 mean"] == pytest.approx(0.6)
    assert (full["Cardiomegaly min"], full["Cardiomegaly max"]) == (0.2, 1.0)
    lines = variants_markdown(summary).splitlines()
    assert lines[0] == "| variant | runs | seeds | CE micro-F1 | Cardiomegaly |"
    assert lines[2] == "| full | 2 | 0, 1 | 0.600 (0.500-0.700) | 0.600 (0.200-1.000) |"


def test_a_folder_that_is_not_a_run_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        find_runs([tmp_path])
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    with pytest.raises(FileNotFoundError, match="metrics.json"):
        compare_runs([tmp_path])


def test_a_run_without_rra_has_no_recognition(sweep, tmp_path):
    import math
    import shutil

    run = tmp_path / "no_rra"
    shutil.copytree(sweep / "0", run)
    OmegaConf.save(_config(["+mechanism=no_rra"]), run / "config.yaml")
    row = compare_runs([run]).iloc[0]
    assert row["variant"] == "global+texture+geometry, no RRA" and math.isnan(row["recognition"])
