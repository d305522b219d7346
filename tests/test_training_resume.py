"""Checkpoints: a run that dies right after a checkpoint and resumes follows the uninterrupted loss curve;
SIGINT / SIGTERM write a checkpoint before the run stops; retention keeps the last K."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_training_helpers import compose_train, logged, tiny_overrides

import reg2rg
from reg2rg.models import Reg2RG
from reg2rg.models.checkpoint import MODULES, write_digests
from reg2rg.training import train
from reg2rg.training.checkpointing import STATE_FILE, Checkpointer, TrainingState, list_checkpoints

# 3 steps per epoch; checkpoints every 2 steps and at epoch ends: 2, 3, 4, 6 (keep_last=2 leaves 4 and 6)
SCHEDULE = ["trainer.epochs=2", "trainer.save_every_n_steps=2", "trainer.keep_last=2"]
CRASH_AFTER = 4  # mid-epoch: the resumed run must skip the first step of epoch 1 and nothing else


class Crash(RuntimeError):
    pass


def run(tiny_data: Path, output_dir: Path, *extra: str) -> dict:
    return train(compose_train([*tiny_overrides(tiny_data, output_dir), *SCHEDULE, *extra]))


def crash_after_checkpoint(monkeypatch, step: int) -> None:
    """Die (as a killed process would, for everything not on disk) right after checkpoint ``step`` is written."""
    save = Checkpointer.save

    def save_then_crash(self: Checkpointer, state: TrainingState) -> Path:
        path = save(self, state)
        if state.step == step:
            raise Crash(f"killed after {path}")
        return path

    monkeypatch.setattr(Checkpointer, "save", save_then_crash)


@pytest.mark.parametrize("order", [[], ["trainer.group_by_length=true"]], ids=["permuted", "grouped-by-length"])
def test_a_run_killed_after_a_checkpoint_resumes_on_the_uninterrupted_loss_curve(
    tiny_data, tmp_path, monkeypatch, caplog, order
):
    with caplog.at_level(logging.INFO, logger="reg2rg.training.trainer"):
        full = run(tiny_data, tmp_path / "full", *order)
    assert ("steps grouped by length" in caplog.text) == bool(order)  # the padding it saves is logged
    with monkeypatch.context() as patch:
        crash_after_checkpoint(patch, CRASH_AFTER)
        with pytest.raises(Crash):
            run(tiny_data, tmp_path / "resumed", *order)
    resume_with_other_studies(tiny_data, tmp_path, order)
    if order:  # a grouped order resumed without grouping would not continue
        with pytest.raises(ValueError, match="group by length"):
            run(tiny_data, tmp_path / "ungrouped", f"resume={tmp_path / 'resumed' / 'checkpoints' / 'checkpoint-4'}")
    resumed = run(tiny_data, tmp_path / "resumed", *order, "resume=latest")

    uninterrupted, continued = logged(full["run_dir"]), logged(resumed["run_dir"])
    assert sorted(uninterrupted) == sorted(continued) == [1, 2, 3, 4, 5, 6]
    for step in range(1, 7):  # on one CPU the runs agree bitwise; the tolerance is for other kernels
        for key in ("loss", "grad_norm", "lr"):
            assert continued[step][key] == pytest.approx(uninterrupted[step][key], rel=1e-6), (step, key)
    assert uninterrupted[6]["loss"] < uninterrupted[1]["loss"]  # it trains

    final = [load_file(result["checkpoint"] / MODULES) for result in (full, resumed)]
    assert final[0].keys() == final[1].keys()
    assert all(torch.allclose(final[0][name], final[1][name], atol=1e-5) for name in final[0])
    assert [p.name for p in list_checkpoints(resumed["run_dir"] / "checkpoints")] == ["checkpoint-4", "checkpoint-6"]
    assert not list((resumed["run_dir"] / "checkpoints").glob(".*"))  # no staging folders left behind
    assert resumed["exit_code"] == 0 and resumed["stopped_by"] is None
    settings = [
        yaml.safe_load((resumed["run_dir"] / name).read_text())
        for name in ("config.before-resume-1.yaml", "config.yaml")
    ]
    assert [config["resume"] for config in settings] == [None, "latest"]  # the first session's settings are kept


def resume_with_other_studies(tiny_data: Path, tmp_path: Path, order: list[str]) -> None:
    """A checkpoint whose training split held other studies (same count) is refused: the order would not continue."""
    other = tmp_path / "other" / "checkpoint-4"
    shutil.copytree(tmp_path / "resumed" / "checkpoints" / "checkpoint-4", other)
    state = json.loads((other / STATE_FILE).read_text())
    assert len(state["training_studies"]) == 64  # a SHA-256, recorded with every checkpoint
    (other / STATE_FILE).write_text(json.dumps({**state, "training_studies": "0" * 64}))
    write_digests(other)  # a checkpoint written so, not one damaged since
    with pytest.raises(ValueError, match="other studies than this run's"):
        run(tiny_data, tmp_path / "other-run", *order, f"resume={other}")
    assert not (tmp_path / "other-run" / "config.yaml").exists()  # a refused resume records no settings


def test_a_signal_writes_a_checkpoint_then_stops(tiny_data, tmp_path, monkeypatch):
    from reg2rg.training import trainer

    after_step = trainer.Trainer._after_step

    def interrupt_at_step_2(self, stop):
        if self.state.step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C (SIGTERM goes through the same handler)
        return after_step(self, stop)

    monkeypatch.setattr(trainer.Trainer, "_after_step", interrupt_at_step_2)
    result = run(tiny_data, tmp_path / "run", "trainer.save_every_n_steps=null", "evaluation.enabled=true")

    assert result["stopped_by"] == "SIGINT" and result["exit_code"] == 128 + signal.SIGINT
    assert result["checkpoint"].name == "checkpoint-2" and (result["checkpoint"] / STATE_FILE).is_file()
    assert result["metrics"] is None  # no evaluation after a preemption
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is given back
    model = reg2rg.from_pretrained(result["checkpoint"])  # the checkpoint opens as a model
    assert not model.training


@pytest.mark.parametrize(("at_step", "checkpoints"), [(2, ["checkpoint-3"]), (6, ["checkpoint-6"])])
def test_a_signal_arriving_during_the_agreement_is_not_lost(tiny_data, tmp_path, monkeypatch, at_step, checkpoints):
    """The processes agree on the flag once per step; a signal landing just after that read stops the run
    at the next step, or, after the last step, still ends it with 128 + the signal and no evaluation."""
    from reg2rg.training import trainer

    signal_anywhere = trainer.Trainer._signal_anywhere

    def signal_after_reading_the_flag(self, stop):
        agreed = signal_anywhere(self, stop)
        if self.state.step == at_step:
            os.kill(os.getpid(), signal.SIGTERM)
        return agreed

    monkeypatch.setattr(trainer.Trainer, "_signal_anywhere", signal_after_reading_the_flag)
    result = run(
        tiny_data,
        tmp_path / "run",
        "trainer.save_every_n_steps=null",
        "evaluation.enabled=true",
        "evaluation.generation.max_new_tokens=8",
    )

    assert result["stopped_by"] == "SIGTERM" and result["exit_code"] == 128 + signal.SIGTERM
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == checkpoints
    assert result["metrics"] is None


@pytest.mark.slow
def test_a_finished_run_resumed_keeps_its_predictions_and_a_further_one_redoes_them(tiny_data, tmp_path, monkeypatch):
    """Re-running a finished run (a sweep restarted with resume=latest) trains nothing and generates nothing."""
    first = run(tiny_data, tmp_path / "run", "evaluation.enabled=true", "evaluation.generation.max_new_tokens=8")
    predictions = first["run_dir"] / "predictions.csv"
    written = predictions.read_text(encoding="utf-8")

    def no_generation(*args, **kwargs):
        raise AssertionError("the finished run's predictions were generated again")

    with monkeypatch.context() as patch:
        patch.setattr(Reg2RG, "generate_reports", no_generation)
        again = run(
            tiny_data,
            tmp_path / "run",
            "evaluation.enabled=true",
            "evaluation.generation.max_new_tokens=8",
            "resume=latest",
        )
    assert again["step"] == first["step"] and again["checkpoint"] == first["checkpoint"]
    assert predictions.read_text(encoding="utf-8") == written and again["metrics"]["ce"] == first["metrics"]["ce"]

    # Trained on (more epochs): the predictions of the earlier checkpoint are begun afresh.
    longer = run(
        tiny_data,
        tmp_path / "run",
        "evaluation.enabled=true",
        "evaluation.generation.max_new_tokens=8",
        "resume=latest",
        "trainer.epochs=3",
    )
    assert longer["step"] > first["step"]
    sidecar = predictions.parent / "predictions.csv.settings.json"
    assert str(longer["checkpoint"]) in sidecar.read_text(encoding="utf-8")
