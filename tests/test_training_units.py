"""The training pieces on their own: batching, data order, DeepSpeed "auto" values, checkpoint lookup,
config validation, metrics logging, signals, and studies that fail to load."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal

import pytest
from test_training_helpers import compose_train, logged, tiny_overrides

from reg2rg.training import preemption, tracking, train
from reg2rg.training.batching import Batching, resolve_batching
from reg2rg.training.checkpointing import STATE_FILE, TrainingState, find_checkpoint
from reg2rg.training.deepspeed_config import fill_auto
from reg2rg.training.loader import StepSampler
from reg2rg.training.preemption import preemption_flag
from reg2rg.training.tracking import LOSS_CURVE_FILE, MetricsLog, plot_loss_curve, read_metrics, wandb_mode
from reg2rg.training.trainer import TrainerConfig


def test_accumulation_keeps_the_effective_batch():
    assert resolve_batching(2, None, 16, 4) == Batching(per_device=2, accumulation=2, world_size=4)
    assert resolve_batching(1, 4, None, 2).effective == 8
    with pytest.raises(ValueError, match="not a multiple"):
        resolve_batching(3, None, 16, 1)
    with pytest.raises(ValueError, match="= 8, but trainer.effective_batch_size=16"):
        resolve_batching(1, 4, 16, 2)


def rank_batches(size: int, batching: Batching, epoch: int, start_step: int = 0) -> list[list[list[int]]]:
    """Per rank, its micro-batches of one epoch."""
    out = []
    for rank in range(batching.world_size):
        indices = list(StepSampler(size, batching, rank, seed=7, epoch=epoch, start_step=start_step))
        out.append([indices[i : i + batching.per_device] for i in range(0, len(indices), batching.per_device)])
    return out


def step_samples(size: int, batching: Batching, epoch: int) -> list[set[int]]:
    """The samples of each optimizer step, over all ranks and micro-batches."""
    per_rank = rank_batches(size, batching, epoch)
    a = batching.accumulation
    return [
        {i for rank in per_rank for batch in rank[s * a : (s + 1) * a] for i in batch}
        for s in range(len(per_rank[0]) // a)
    ]


def test_each_step_sees_the_same_samples_on_any_number_of_processes():
    one_gpu, eight_gpus = Batching(2, 8, 1), Batching(1, 2, 8)
    assert step_samples(70, one_gpu, epoch=3) == step_samples(70, eight_gpus, epoch=3)
    steps = step_samples(70, one_gpu, epoch=3)
    assert len(steps) == 4 and all(len(s) == 16 for s in steps)  # 70 // 16 whole steps; 6 samples wait
    assert len(set().union(*steps)) == 64
    assert steps != step_samples(70, one_gpu, epoch=4)  # a new order every epoch


def test_resuming_mid_epoch_skips_exactly_the_steps_done():
    batching = Batching(2, 2, 2)
    full, resumed = rank_batches(40, batching, epoch=1), rank_batches(40, batching, epoch=1, start_step=3)
    assert [rank[3 * 2 :] for rank in full] == resumed
    with pytest.raises(ValueError, match="less than one effective batch"):
        StepSampler(7, batching, 0, 0, 0)


def test_deepspeed_auto_values_are_filled_or_named():
    template = {"train_batch_size": "auto", "bf16": {"enabled": "auto"}, "zero_optimization": {"stage": 2}}
    filled = fill_auto(template, Batching(2, 4, 2), 0.5, "bf16")
    assert filled == {"train_batch_size": 16, "bf16": {"enabled": True}, "zero_optimization": {"stage": 2}}
    assert template["train_batch_size"] == "auto"  # the template is not changed
    with pytest.raises(ValueError, match=r"zero_optimization\.reduce_bucket_size"):
        fill_auto({"zero_optimization": {"reduce_bucket_size": "auto"}}, Batching(1, 1, 1), 1.0, "no")


def test_resume_finds_checkpoints_by_name_folder_or_run(tmp_path):
    run = tmp_path / "run"
    for step in (2, 10, 9):
        (run / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True)
        state = TrainingState(step=step, steps_per_epoch=3, effective_batch_size=4, seed=0, world_size=1)
        state.write(run / "checkpoints" / f"checkpoint-{step}" / STATE_FILE)
    (run / "checkpoints" / "checkpoint-11").mkdir()  # incomplete: no state file
    newest = run / "checkpoints" / "checkpoint-10"
    assert find_checkpoint("latest", run / "checkpoints") == newest
    assert find_checkpoint(str(run), tmp_path) == find_checkpoint(str(run / "checkpoints"), tmp_path) == newest
    assert find_checkpoint(str(run / "checkpoints" / "checkpoint-2"), tmp_path).name == "checkpoint-2"
    with pytest.raises(ValueError, match=r"later checkpoints \(checkpoint-9, checkpoint-10\)"):  # a rollback in place
        find_checkpoint(str(run / "checkpoints" / "checkpoint-2"), run / "checkpoints")
    elsewhere = tmp_path / "elsewhere" / "checkpoint-2"
    shutil.copytree(run / "checkpoints" / "checkpoint-2", elsewhere)
    with pytest.raises(ValueError, match="later checkpoints"):  # another run's earlier checkpoint, into this folder
        find_checkpoint(str(elsewhere), run / "checkpoints")
    (tmp_path / "best").symlink_to(newest)
    assert find_checkpoint(str(newest), run / "checkpoints") == newest
    assert find_checkpoint(str(tmp_path / "best"), run / "checkpoints") == tmp_path / "best"  # its step is read
    assert find_checkpoint("latest", tmp_path / "empty") is None and find_checkpoint(None, run) is None
    with pytest.raises(FileNotFoundError, match="neither a training checkpoint"):
        find_checkpoint(str(tmp_path / "nowhere"), run)


def test_trainer_config_names_bad_values():
    with pytest.raises(ValueError, match="mixed_precision"):
        TrainerConfig(optimizer=None, mixed_precision="fp8")
    with pytest.raises(ValueError, match="trainer.keep_last must be >= 1"):
        TrainerConfig(optimizer=None, keep_last=0)


def test_metrics_go_to_the_jsonl_file_and_wandb(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    assert wandb_mode(None) == "offline" and wandb_mode("disabled") == "disabled"
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "x" * 40 + "\n")
    (tmp_path / ".netrc").chmod(0o600)  # as `wandb login` leaves it (netrc refuses a readable one)
    assert wandb_mode(None) == "online"  # as after `wandb login`
    (tmp_path / ".netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode(None) == "online"

    run_ids = []
    for session in range(2):  # a run, then the same run resumed: one wandb run
        metrics = MetricsLog(tmp_path, {"project": "reg2rg-test", "mode": "offline"}, "unit", {"seed": 0})
        metrics.log({"loss": 1.5}, step=3 + session)
        run_ids.append(metrics.wandb_run.id)
        metrics.close()
    assert run_ids[0] == run_ids[1] == (tmp_path / "wandb_run_id").read_text()
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n")
    (tmp_path / ".netrc").chmod(0o600)
    monkeypatch.delenv("WANDB_API_KEY")
    assert wandb_mode(None) == "offline"  # an entry without a key does not make wandb online

    class Ended:  # a wandb run whose service process a job-wide SIGTERM ended
        def log(self, *args, **kwargs):
            raise ConnectionResetError("wandb-core is gone")

    metrics.wandb_run = Ended()
    metrics.log({"loss": 1.0}, step=5)  # training goes on: metrics.jsonl only
    assert metrics.wandb_run is None
    assert [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [
        {"step": 3, "loss": 1.5},
        {"step": 4, "loss": 1.5},
        {"step": 5, "loss": 1.0},
    ]


def test_the_first_signal_raises_the_flag_and_a_launchers_repeats_are_ignored():
    with preemption_flag() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop and stop.signum == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGTERM)  # torchrun passing on what SLURM sent every process
        os.kill(os.getpid(), signal.SIGINT)  # a terminal's Ctrl-C passed on by a launcher, at once
        assert stop.signum == signal.SIGTERM  # still here, still checkpointing
    with preemption_flag() as stop:
        assert not stop and stop.signum is None


def test_ctrl_c_pressed_again_aborts_at_once_in_a_run_of_one_process(monkeypatch):
    monkeypatch.setattr(preemption, "ABORT_AFTER_S", 0.0)
    monkeypatch.setenv("WORLD_SIZE", "2")  # under a launcher of several processes, the launcher ends them
    with preemption_flag() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.signum == signal.SIGINT
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(KeyboardInterrupt), preemption_flag() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.signum == signal.SIGINT
        os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_study_that_fails_to_load_is_replaced_counted_and_logged(tiny_data, tmp_path, caplog):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    entry = json.loads((data / "cache" / "train.jsonl").read_text().splitlines()[0])
    (data / "cache" / entry["file"]).write_bytes(b"not a cache file")
    result = train(compose_train([*tiny_overrides(data, tmp_path / "run"), "trainer.epochs=1"]))
    assert result["step"] == 3 and logged(result["run_dir"])[3]["unreadable_studies"] == 1
    assert entry["study_id"] in caplog.text
    state = json.loads((result["checkpoint"] / STATE_FILE).read_text())
    assert state["unreadable"] == [entry["study_id"]]


def test_the_loss_curve_reads_each_step_once_and_is_a_png(tmp_path, caplog):
    from PIL import Image

    path = tmp_path / "metrics.jsonl"
    records = [
        {"step": 1, "loss": 5.0, "lr": 1e-4},
        {"step": 3, "loss": 9.0, "lr": 3e-4},
        {"step": 2, "loss": 4.0, "lr": 2e-4},
        {"step": 3, "loss": 3.0, "lr": 3e-4},
    ]  # step 3 again: resumed
    path.write_text("".join(json.dumps(record) + "\n" for record in records) + '{"step": 4, "lo', encoding="utf-8")
    read = read_metrics(path)
    assert [(record["step"], record["loss"]) for record in read] == [(1, 5.0), (2, 4.0), (3, 3.0)]
    assert f"{path}, line 5: not JSON" in caplog.text
    png = plot_loss_curve(read, tmp_path / LOSS_CURVE_FILE)
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (770, 440)  # 7 x 4 inches at 110 dpi
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOSS_CURVE_FILE, "metrics.jsonl"]  # no temporary left


def test_training_draws_the_loss_curve_at_each_checkpoint(tiny_data, tmp_path, monkeypatch):
    from PIL import Image

    drawn = []

    def spy(records, path):
        drawn.append([record["step"] for record in records])
        return plot_loss_curve(records, path)

    monkeypatch.setattr(tracking, "plot_loss_curve", spy)
    result = train(
        compose_train(
            [*tiny_overrides(tiny_data, tmp_path / "run"), "trainer.epochs=1", "trainer.save_every_n_steps=2"]
        )
    )
    assert drawn == [[1, 2], [1, 2, 3]]  # checkpoints 2 and 3 (the last), from every step logged so far
    with Image.open(result["run_dir"] / LOSS_CURVE_FILE) as image:
        assert image.format == "PNG" and image.width > 0


def test_a_loss_curve_that_cannot_be_drawn_costs_no_checkpoint(tiny_data, tmp_path, monkeypatch, caplog):
    def broken(records, path):
        raise RuntimeError("no canvas")

    monkeypatch.setattr(tracking, "plot_loss_curve", broken)
    with caplog.at_level(logging.WARNING):
        result = train(compose_train([*tiny_overrides(tiny_data, tmp_path / "run"), "trainer.epochs=1"]))
    assert result["exit_code"] == 0 and (result["run_dir"] / "checkpoints" / "checkpoint-3").is_dir()
    assert "loss_curve.png not drawn: no canvas" in caplog.text
