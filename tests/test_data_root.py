"""Only data=synthetic generates data: a wrong root of a real dataset is an error that names the path and what
belongs there, and nothing is written into it (the demo experiment's data.synthetic section included)."""

from __future__ import annotations

import logging

import pytest
from test_training_helpers import compose_train

from reg2rg.data.errors import StudyError
from reg2rg.data.prepare import prepare_dataset


def test_a_missing_radgenome_root_is_named_and_not_created(tmp_path, caplog):
    wrong = tmp_path / "not-the-dataset"
    cfg = compose_train(["data=radgenome", f"data.root={wrong}", "output_dir=unused"])  # experiment=demo
    assert cfg.data.synthetic.n_train == 400  # the demo's section is there, and must not generate
    with caplog.at_level(logging.WARNING), pytest.raises(StudyError, match=rf"{wrong}: .*radgenome_files/"):
        prepare_dataset(cfg.data, ["train"])
    assert not wrong.exists()
    assert "data.synthetic is ignored: data=radgenome reads its files from" in caplog.text


def test_an_empty_radgenome_root_stays_empty(tmp_path):
    wrong = tmp_path / "empty"
    wrong.mkdir()
    cfg = compose_train(["data=radgenome", f"data.root={wrong}", "output_dir=unused"])
    with pytest.raises(StudyError, match=rf"{wrong}/radgenome_files/train_region_report.csv: file not found"):
        prepare_dataset(cfg.data, ["train"])
    assert list(wrong.iterdir()) == []


def test_a_wrong_ctrg_root_is_named(tmp_path):
    wrong = tmp_path / "ctrg"
    cfg = compose_train(["data=ctrg", f"data.root={wrong}", "output_dir=unused"])
    with pytest.raises(StudyError, match=rf"{wrong}/reports.csv: file not found"):
        prepare_dataset(cfg.data, ["train"])
    assert not wrong.exists()


def test_synthetic_data_is_still_generated_where_asked(tmp_path):
    root = tmp_path / "synthetic"
    cfg = compose_train(
        [
            "data=synthetic",
            f"data.root={root}",
            "data.synthetic.n_train=2",
            "data.synthetic.n_valid=1",
            "data.synthetic.shape=[24,24,12]",
            "data.preprocessing.target_size=[16,16,8]",
            "output_dir=unused",
        ]
    )
    reports = prepare_dataset(cfg.data, ["train"])
    assert reports["train"]["usable"] == 2 and (root / "radgenome_files").is_dir()
