"""Launching: deepspeed's ``--local_rank`` argument, Hydra multirun sweeps, and stop signals on real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from unittest import mock

import psutil
import pytest
import yaml
from test_training_helpers import REPO, logged, tiny_overrides

from reg2rg.training.checkpointing import STATE_FILE, list_checkpoints
from reg2rg.training.launch import (
    cpu_processes_command,
    cpu_processes_environments,
    recorded_signals,
    run_as_cpu_processes,
    strip_local_rank,
    supervise,
)

SCRIPT = str(REPO / "scripts" / "train.py")


@pytest.mark.parametrize(
    "argv, kept, local_rank",
    [
        (["train.py", "--local_rank=3", "experiment=demo"], ["train.py", "experiment=demo"], "3"),
        (["train.py", "--local-rank", "1", "a=b"], ["train.py", "a=b"], "1"),
        (["train.py", "a=b"], ["train.py", "a=b"], None),
    ],
)
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


@pytest.mark.slow
def test_multirun_sweeps_an_ablation_under_a_deepspeed_style_argv(tiny_data, tmp_path):
    """``deepspeed`` appends --local_rank=N; Hydra runs both jobs of the sweep in one process."""
    sweep = tmp_path / "sweep"
    command = [
        sys.executable,
        SCRIPT,
        "--local_rank=0",
        "-m",
        "model.use_geometry=true,false",
        *tiny_overrides(tiny_data, None),
        "trainer.max_steps=1",
        f"hydra.sweep.dir={sweep}",
    ]
    subprocess.run(command, check=True, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    for job, use_geometry in (("0", True), ("1", False)):
        run = sweep / job
        assert yaml.safe_load((run / "config.yaml").read_text())["model"]["use_geometry"] is use_geometry
        assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["checkpoint-1"]
        config = json.loads((run / "checkpoints" / "checkpoint-1" / "reg2rg_config.json").read_text())
        assert config["model"]["use_geometry"] is use_geometry


@contextmanager
def training_at_step_2(tiny_data: Path, tmp_path: Path, processes: int) -> Iterator[tuple[subprocess.Popen, Path]]:
    """``python scripts/train.py`` of a long run on ``processes`` processes, once step 2 is logged; every
    process it started is killed at the end (the workers have sessions of their own)."""
    run = tmp_path / "run"
    command = [
        sys.executable,
        SCRIPT,
        *tiny_overrides(tiny_data, None),
        "trainer.epochs=1000",
        f"cpu_processes={processes}",
        f"hydra.run.dir={run}",
        "prepare_data=true",
    ]  # the data are ready: the main process checks them while the other waits
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    family = [psutil.Process(process.pid)]
    try:
        deadline = time.monotonic() + 240
        while not ((run / "metrics.jsonl").is_file() and max(logged(run), default=0) >= 2):
            assert process.poll() is None and time.monotonic() < deadline, "training did not reach step 2"
            time.sleep(0.2)
        family += family[0].children(recursive=True)
        yield process, run
    finally:
        for member in family:
            with suppress(psutil.NoSuchProcess):
                member.kill()


def last_checkpoint_step(run: Path, output: str) -> int:
    checkpoints = list_checkpoints(run / "checkpoints")
    assert checkpoints, output[-3000:]
    return json.loads((checkpoints[-1] / STATE_FILE).read_text())["step"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("processes", "signum", "whom"),
    [
        (1, signal.SIGTERM, "launcher"),
        (2, signal.SIGTERM, "launcher"),  # the launching process passes SIGTERM on to its workers
        (2, signal.SIGTERM, "launcher, twice"),  # a scheduler's second copy 50 ms later: not passed on
        (2, signal.SIGTERM, "every process"),  # as SLURM: the launcher then passes a second copy to the workers
        (2, signal.SIGINT, "the launcher's group"),  # as Ctrl-C in a terminal (the workers have sessions of their own)
    ],
)
def test_a_stop_signal_writes_a_checkpoint_before_the_process_exits(tiny_data, tmp_path, processes, signum, whom):
    with training_at_step_2(tiny_data, tmp_path, processes) as (process, run):
        if whom.startswith("launcher"):
            process.send_signal(signum)
            if whom.endswith("twice"):
                time.sleep(0.05)
                process.send_signal(signum)
        elif whom == "every process":
            for member in [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]:
                member.send_signal(signum)
        else:
            os.killpg(process.pid, signum)
        output, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, output[-3000:]
    assert last_checkpoint_step(run, output) == max(logged(run)) >= 2


@pytest.mark.slow
def test_the_processes_checkpoint_and_stop_when_their_launcher_is_killed(tiny_data, tmp_path):
    """SIGKILL (or the OOM killer) gives the launcher no chance to pass anything on: the workers get SIGTERM
    from the kernel when it dies (PR_SET_PDEATHSIG) instead of training on alone."""
    with training_at_step_2(tiny_data, tmp_path, 2) as (process, run):
        workers = psutil.Process(process.pid).children()
        process.kill()
        output, _ = process.communicate(timeout=120)
        _, alive = psutil.wait_procs(workers, timeout=120)
    assert len(workers) == 2 and not alive
    assert last_checkpoint_step(run, output) == max(logged(run)) >= 2


def test_one_cpu_process_or_a_launcher_runs_the_job_in_place():
    assert run_as_cpu_processes(1, SCRIPT, [], "run") is None
    with mock.patch.dict(os.environ, {"WORLD_SIZE": "2"}):
        assert run_as_cpu_processes(2, SCRIPT, [], "run") is None
    assert cpu_processes_command(SCRIPT, ["a=b", "c={d: 1}"], "/runs/x")[1:] == [
        SCRIPT,
        "a=b",
        "c={d: 1}",
        "hydra.run.dir=/runs/x",
    ]
    environments = cpu_processes_environments(2, 29511)
    assert all(e["TORCHELASTIC_USE_AGENT_STORE"] == "True" for e in environments)  # the launcher hosts the store
    assert [(e["RANK"], e["LOCAL_RANK"], e["WORLD_SIZE"], e["MASTER_PORT"]) for e in environments] == [
        ("0", "0", "2", "29511"),
        ("1", "1", "2", "29511"),
    ]


def python_process(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


def test_a_failing_process_stops_the_others_and_gives_the_job_its_status():
    sleeper, failing = python_process("import time; time.sleep(60)"), python_process("raise SystemExit(3)")
    started = time.monotonic()
    assert supervise([sleeper, failing], []) == 3
    assert sleeper.returncode == -signal.SIGTERM and time.monotonic() - started < 30


def stopping_processes(*checkpoint_s: float) -> list[subprocess.Popen]:
    """Processes that print each SIGTERM / SIGINT they get and exit 143 ``checkpoint_s`` after a first SIGTERM."""
    code = (
        "import signal, sys, time\n"
        "def on_signal(signum, frame):\n"
        "    print(signum, flush=True)\n"
        "    if signum == signal.SIGTERM: time.sleep(float(sys.argv[1])); sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, on_signal); signal.signal(signal.SIGINT, on_signal)\n"
        "print('ready', flush=True); time.sleep(60)\n"
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(seconds)], stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        for seconds in checkpoint_s
    ]
    for worker in workers:
        assert worker.stdout.readline() == "ready\n"
    return workers


def supervise_under_signals(workers: list[subprocess.Popen], *signals: tuple[float, int]) -> tuple[int, float]:
    """``supervise`` while this process gets each (delay s, signal); its status and how long it took."""
    timers = [threading.Timer(delay, os.kill, (os.getpid(), signum)) for delay, signum in signals]
    started = time.monotonic()
    try:
        with recorded_signals() as received:
            for timer in timers:
                timer.start()
            status = supervise(workers, received, poll_s=0.02)
            elapsed = time.monotonic() - started
            for timer in timers:
                timer.join()
    finally:
        for timer in timers:
            timer.cancel()
    return status, elapsed


def test_the_first_signal_reaches_every_process_once_and_each_gets_the_time_it_needs(monkeypatch):
    monkeypatch.setattr("reg2rg.training.launch.WORKER_SHUTDOWN_S", 0.1)  # for a failed process, not a stopping one
    workers = stopping_processes(0.0, 1.0)
    status, _ = supervise_under_signals(workers, (0.3, signal.SIGTERM), (0.4, signal.SIGTERM), (0.5, signal.SIGHUP))
    assert status == 128 + signal.SIGTERM
    assert [(worker.returncode, worker.stdout.read().split()) for worker in workers] == [(143, ["15"])] * 2


def test_ctrl_c_pressed_again_a_while_later_kills_the_processes(monkeypatch):
    monkeypatch.setattr("reg2rg.training.preemption.ABORT_AFTER_S", 0.5)
    workers = stopping_processes(0.0, 0.0)
    # the first Ctrl-C, a launcher's copy (not passed on, not an abort), a user's second Ctrl-C
    status, elapsed = supervise_under_signals(
        workers, (0.3, signal.SIGINT), (0.35, signal.SIGINT), (1.0, signal.SIGINT)
    )
    assert status == 128 + signal.SIGINT and elapsed >= 0.95
    assert [(worker.returncode, worker.stdout.read().split()) for worker in workers] == [(-signal.SIGKILL, ["2"])] * 2


@pytest.mark.slow
def test_torchrun_on_two_cpu_processes_resumes_on_the_same_curve(tiny_data, tmp_path):
    """DDP over gloo: each process writes its RNG state into the shared checkpoint; a resume restores all.

    The first run starts under torchrun, the resumed one as ``python scripts/train.py cpu_processes=2``.
    """

    def train(run: Path, launcher: list[str], *extra: str) -> dict[int, dict]:
        command = [
            *launcher,
            SCRIPT,
            *tiny_overrides(tiny_data, None),
            "trainer.epochs=2",
            "trainer.save_every_n_steps=2",
            "trainer.keep_last=null",
            f"hydra.run.dir={run}",
            *extra,
        ]
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return logged(run)

    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    full = train(tmp_path / "full", torchrun)
    checkpoint = tmp_path / "full" / "checkpoints" / "checkpoint-4"
    assert {"rng_state_0.pt", "rng_state_1.pt", "optimizer.pt"} <= {p.name for p in checkpoint.iterdir()}
    resumed = train(tmp_path / "resumed", [sys.executable], "cpu_processes=2", f"resume={checkpoint}")
    assert (
        json.loads((tmp_path / "resumed" / "checkpoints" / "checkpoint-6" / STATE_FILE).read_text())["world_size"] == 2
    )
    assert sorted(full) == [1, 2, 3, 4, 5, 6] and sorted(resumed) == [5, 6]
    for step in (5, 6):
        assert resumed[step]["loss"] == pytest.approx(full[step]["loss"], rel=1e-6)
        assert resumed[step]["grad_norm"] == pytest.approx(full[step]["grad_norm"], rel=1e-6)
