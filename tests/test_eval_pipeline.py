"""evaluate_reports (notebook API) and scripts/evaluate.py: the metrics.json layout, output files, bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from reg2rg.benchmarks.evaluation import synthetic_pairs
from reg2rg.constants import CT_RATE_LABELS
from reg2rg.evaluation import evaluate_reports

ROOT = Path(__file__).resolve().parents[1]
REG2RG_KEYS = ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-1", "ROUGE-2", "ROUGE-L", "CIDEr"]
COCO_KEYS = ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"]


@pytest.fixture(scope="module")
def reports():
    return synthetic_pairs(12, seed=5)


def test_evaluate_reports_returns_the_metrics_layout(reports, monkeypatch):
    from reg2rg.evaluation import meteor_java

    monkeypatch.setattr(meteor_java.shutil, "which", lambda name: None)  # keep the test free of Java
    metrics = evaluate_reports(*reports)
    assert list(metrics) == ["reg2rg", "coco", "ce", "regions", "length", "input", "warnings"]
    assert list(metrics["reg2rg"]) == REG2RG_KEYS
    assert all(list(value) == ["mean", "std", "corpus"] for value in metrics["reg2rg"].values())
    assert list(metrics["coco"]) == COCO_KEYS and metrics["coco"]["METEOR"] is None
    assert any("METEOR not computed" in warning for warning in metrics["warnings"])
    assert metrics["ce"]["labeler"] == "rules" and list(metrics["ce"]["per_label"]) == list(CT_RATE_LABELS)
    assert set(metrics["regions"]) == {"recognition", "nlg", "ce"}
    assert metrics["regions"]["recognition"]["sample_accuracy"]["mean"] == 1.0
    assert metrics["length"]["kl_divergence"] is not None
    assert metrics["input"] == {"rows": 12, "evaluated": 12, "problems": {}}
    json.dumps(metrics, allow_nan=False)


def test_protocol_selection(reports):
    metrics = evaluate_reports(*reports, protocols=["reg2rg"], regions=False)
    assert metrics["coco"] is None and metrics["regions"] == {"recognition": None, "nlg": None, "ce": None}
    with pytest.raises(ValueError, match="unknown protocols"):
        evaluate_reports(*reports, protocols=["bleurt"])


def test_both_labeler_configs_compose():
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        rules = compose("evaluate", overrides=["predictions=x.csv"])
        radbert = compose(
            "evaluate",
            overrides=[
                "predictions=x.csv",
                "ce=radbert",
                "ce.labeler.model_dir=/m",
                "ce.labeler.classifier_path=/m/c.pth",
            ],
        )
    assert rules.ce.labeler._target_ == "reg2rg.evaluation.rules.RuleLabeler"
    assert radbert.ce.labeler._target_ == "reg2rg.evaluation.radbert.RadBertLabeler"
    assert rules.gt_column == "GT_combined_report" and rules.id_column == "AccNum"


def _run_script(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), f"hydra.run.dir={tmp_path / 'hydra'}", *overrides],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def test_script_writes_every_output(reports, tmp_path):
    references, predictions = reports
    predictions = list(predictions)
    predictions[2] = ""  # an empty prediction: counted and scored 0
    path = tmp_path / "predictions.csv"
    pd.DataFrame({"AccNum": range(12), "GT_combined_report": references, "Pred_combined_report": predictions}).to_csv(
        path, index=False
    )
    out = tmp_path / "eval"
    result = _run_script(tmp_path, f"predictions={path}", f"output_dir={out}", "protocols=[reg2rg]")
    assert result.returncode == 0, result.stderr
    expected = {
        "metrics.json",
        "summary.md",
        "nlg_reg2rg.csv",
        "ce.csv",
        "labels.csv",
        "per_sample.csv",
        "region_recognition.csv",
        "region_nlg.csv",
        "region_ce.csv",
        "report_length.png",
        "ce_per_label.png",
    }
    assert expected <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["input"]["problems"] == {"empty_prediction": 1}
    labels = pd.read_csv(out / "labels.csv")
    assert list(labels.columns[:2]) == ["AccNum", f"GT_{CT_RATE_LABELS[0]}"] and len(labels) == 12
    assert pd.read_csv(out / "per_sample.csv").loc[2, "BLEU-4"] == 0.0
    summary = (out / "summary.md").read_text()
    assert "## NLG, protocol reg2rg" in summary and "![report length](report_length.png)" in summary
    # the terminal gets the tables without image links, and where the files are
    assert "| BLEU-1 |" in result.stdout and "![" not in result.stdout
    assert f"Plots (report_length.png, ce_per_label.png), tables, metrics.json and summary.md: {out}" in result.stdout
    # 12 studies: CIDEr is scored (the minimum is 10)
    assert metrics["reg2rg"]["CIDEr"]["mean"] > 0 and "CIDEr: n/a" not in summary
    assert not any("CIDEr" in warning for warning in metrics["warnings"])


def test_one_study_has_no_cider_and_says_why(reports, tmp_path, monkeypatch):
    """One study: every n-gram's IDF is 0, so CIDEr would be 0 beside a BLEU of 1; it is n/a, with the reason."""
    from reg2rg.evaluation import evaluate_predictions_csv, meteor_java
    from reg2rg.evaluation.report import terminal_summary

    monkeypatch.setattr(meteor_java.shutil, "which", lambda name: None)  # keep the test free of Java
    references, _ = reports
    path = tmp_path / "predictions.csv"
    pd.DataFrame({"AccNum": [0], "GT_combined_report": references[:1], "Pred_combined_report": references[:1]}).to_csv(
        path, index=False
    )
    evaluation = evaluate_predictions_csv(path, tmp_path / "eval")
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["reg2rg"]["BLEU-1"]["mean"] == pytest.approx(1.0)
    assert metrics["reg2rg"]["CIDEr"] == {"mean": None, "std": None, "corpus": None}
    assert metrics["coco"]["CIDEr"] is None and metrics["coco"]["BLEU-1"] == pytest.approx(1.0)
    assert all(row["CIDEr"] is None for row in metrics["regions"]["nlg"].values())  # one text per region
    assert any(w.startswith("CIDEr n/a: 1 study, needs >= 10") for w in metrics["warnings"])
    assert any(w.startswith("region-level CIDEr n/a") for w in metrics["warnings"])
    summary = (tmp_path / "eval" / "summary.md").read_text()
    assert summary.count("CIDEr: n/a (needs >= 10 studies: IDF from the corpus).") == 2  # under both NLG tables
    assert "| CIDEr | n/a | n/a | n/a |" in summary and "| CIDEr | n/a |" in summary
    assert "![" not in terminal_summary(evaluation, tmp_path / "eval")


def test_script_reports_a_missing_column_without_a_traceback(reports, tmp_path):
    path = tmp_path / "predictions.csv"
    pd.DataFrame({"AccNum": [1], "report": ["x"]}).to_csv(path, index=False)
    result = _run_script(tmp_path, f"predictions={path}", f"output_dir={tmp_path / 'eval'}")
    assert result.returncode != 0
    assert "evaluate.py:" in result.stderr and "no column" in result.stderr and "Traceback" not in result.stderr


def test_outputs_are_utf8_whatever_locale_a_library_left(reports, tmp_path):
    """SimpleITK's DICOM writer leaves the C locale (ASCII) behind (the DICOM tests' fixture uses it); the
    summary's "±" must still be written."""
    import locale

    from reg2rg.evaluation import evaluate_predictions_csv

    references, predictions = reports
    path = tmp_path / "predictions.csv"
    pd.DataFrame({"AccNum": range(12), "GT_combined_report": references, "Pred_combined_report": predictions}).to_csv(
        path, index=False
    )
    previous = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    try:
        evaluate_predictions_csv(path, tmp_path / "eval", protocols=["reg2rg"])
    finally:
        locale.setlocale(locale.LC_CTYPE, previous)
    assert "±" in (tmp_path / "eval" / "summary.md").read_text(encoding="utf-8")
