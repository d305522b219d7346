"""Launching: deepspeed's ``--local_rank`` argument, Hydra multirun sweeps, and stop signals on real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import psutil
import pytest
import yaml
from test_training_helpers import REPO, logged, tiny_overrides

from reg2rg.training.checkpointing import STATE_FILE, list_checkpoints
from reg2rg.training.launch import cpu_processes_command, run_as_cpu_processes, strip_local_rank

SCRIPT = str(REPO / "scripts" / "train.py")


@pytest.mark.parametrize("argv, kept, local_rank", [
    (["train.py", "--local_rank=3", "experiment=demo"], ["train.py", "experiment=demo"], "3"),
    (["train.py", "--local-rank", "1", "a=b"], ["train.py", "a=b"], "1"),
    (["train.py", "a=b"], ["train.py", "a=b"], None),
])
def test_local_rank_argument_is_stripped_for_hydra(argv, kept, local_rank):
    with mock.patch.dict(os.environ, {"WORLD_SIZE": "4"}):  # under a launcher the argument's rank is kept
        os.environ.pop("LOCAL_RANK", None)
        assert strip_local_rank(argv) == kept
        assert os.environ.get("LOCAL_RANK") == local_rank


def test_without_a_launcher_the_local_rank_argument_is_dropped():
    with mock.patch.dict(os.environ):
        os.environ.pop("LOCAL_RANK", None)
        os.environ.pop("WORLD_SIZE", None)
        assert strip_local_rank(["train.py", "--local_rank=0"]) == ["train.py"] and "LOCAL_RANK" not in os.environ


def test_a_bad_local_rank_is_named():
    with pytest.raises(ValueError, match="--local_rank"):
        strip_local_rank(["train.py", "--local_rank"])


def test_multirun_sweeps_an_ablation_under_a_deepspeed_style_argv(tiny_data, tmp_path):
    """``deepspeed`` appends --local_rank=N; Hydra runs both jobs of the sweep in one process."""
    sweep = tmp_path / "sweep"
    command = [sys.executable, SCRIPT, "--local_rank=0", "-m", "model.use_geometry=true,false",
               *tiny_overrides(tiny_data, None), "trainer.max_steps=1", f"hydra.sweep.dir={sweep}"]
    subprocess.run(command, check=True, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    for job, use_geometry in (("0", True), ("1", False)):
        run = sweep / job
        assert yaml.safe_load((run / "config.yaml").read_text())["model"]["use_geometry"] is use_geometry
        assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["checkpoint-1"]
        config = json.loads((run / "checkpoints" / "checkpoint-1" / "config.json").read_text())
        assert config["use_geometry"] is use_geometry


@pytest.mark.parametrize(("processes", "signum", "whom"), [
    (1, signal.SIGTERM, "launcher"),
    (2, signal.SIGTERM, "launcher"),  # the launching process passes SIGTERM on to torchrun
    (2, signal.SIGTERM, "every process"),  # as SLURM: torchrun then passes a second copy to the workers
    (2, signal.SIGINT, "the launcher's group"),  # as Ctrl-C in a terminal (torchrun's workers have their own)
])
def test_a_stop_signal_writes_a_checkpoint_before_the_process_exits(tiny_data, tmp_path, processes, signum, whom):
    run = tmp_path / "run"
    command = [sys.executable, SCRIPT, *tiny_overrides(tiny_data, None), "trainer.epochs=1000",
               f"cpu_processes={processes}", f"hydra.run.dir={run}",
               "prepare_data=true"]  # the data are ready: the main process checks them while the other waits
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not ((run / "metrics.jsonl").is_file() and max(logged(run), default=0) >= 2):
            assert process.poll() is None and time.monotonic() < deadline, "training did not reach step 2"
            time.sleep(0.2)
        if whom == "launcher":
            process.send_signal(signum)
        elif whom == "every process":
            for pid in [process.pid, *(child.pid for child in psutil.Process(process.pid).children(recursive=True))]:
                os.kill(pid, signum)
        else:
            os.killpg(process.pid, signum)
        _, errors = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signum, errors[-2000:]
    checkpoints = list_checkpoints(run / "checkpoints")
    state = json.loads((checkpoints[-1] / STATE_FILE).read_text())
    assert state["step"] == max(logged(run)) >= 2 and state["step"] < 3000


def test_one_cpu_process_or_a_launcher_runs_the_job_in_place():
    assert run_as_cpu_processes(1, SCRIPT, [], "run") is None
    with mock.patch.dict(os.environ, {"WORLD_SIZE": "2"}):
        assert run_as_cpu_processes(2, SCRIPT, [], "run") is None
    command = cpu_processes_command(2, SCRIPT, ["a=b", "c={d: 1}"], "/runs/x")
    assert command[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", SCRIPT,
                           "a=b", "c={d: 1}", "hydra.run.dir=/runs/x"]


def test_torchrun_on_two_cpu_processes_resumes_on_the_same_curve(tiny_data, tmp_path):
    """DDP over gloo: each process writes its RNG state into the shared checkpoint; a resume restores all.

    The first run starts under torchrun, the resumed one as ``python scripts/train.py cpu_processes=2``.
    """
    def train(run: Path, launcher: list[str], *extra: str) -> dict[int, dict]:
        command = [*launcher, SCRIPT, *tiny_overrides(tiny_data, None), "trainer.epochs=2",
                   "trainer.save_every_n_steps=2", "trainer.keep_last=null", f"hydra.run.dir={run}", *extra]
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return logged(run)

    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    full = train(tmp_path / "full", torchrun)
    checkpoint = tmp_path / "full" / "checkpoints" / "checkpoint-4"
    assert {"rng_state_0.pt", "rng_state_1.pt", "optimizer.pt"} <= {p.name for p in checkpoint.iterdir()}
    resumed = train(tmp_path / "resumed", [sys.executable], "cpu_processes=2", f"resume={checkpoint}")
    assert json.loads((tmp_path / "resumed" / "checkpoints" / "checkpoint-6" / STATE_FILE).read_text())["world_size"] == 2
    assert sorted(full) == [1, 2, 3, 4, 5, 6] and sorted(resumed) == [5, 6]
    for step in (5, 6):
        assert resumed[step]["loss"] == pytest.approx(full[step]["loss"], rel=1e-6)
        assert resumed[step]["grad_norm"] == pytest.approx(full[step]["grad_norm"], rel=1e-6)
