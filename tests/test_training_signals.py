"""Launchers: deepspeed's ``--local_rank`` argument, Hydra multirun sweeps, and stop signals on real processes
(one process, and two DDP processes under torchrun)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
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
from reg2rg.training.ranks import strip_local_rank

SCRIPT = str(REPO / "scripts" / "train.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


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
    """A long run on ``processes`` processes (2: under torchrun), once step 2 is logged; every process it
    started is killed at the end."""
    run = tmp_path / "run"
    command = [
        *(TORCHRUN if processes == 2 else [sys.executable]),
        SCRIPT,
        *tiny_overrides(tiny_data, None),
        "trainer.epochs=1000",
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
        (1, signal.SIGTERM, "the process"),
        (1, signal.SIGINT, "the process group"),  # as Ctrl-C in a terminal
        (2, signal.SIGTERM, "every process"),  # as SLURM: torchrun and both workers; torchrun passes it on again
    ],
)
def test_a_stop_signal_writes_a_checkpoint_before_the_process_exits(tiny_data, tmp_path, processes, signum, whom):
    with training_at_step_2(tiny_data, tmp_path, processes) as (process, run):
        if whom == "the process":
            process.send_signal(signum)
        elif whom == "every process":
            for member in [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]:
                member.send_signal(signum)
        else:
            os.killpg(process.pid, signum)
        output, _ = process.communicate(timeout=120)
    if processes == 1:
        assert process.returncode == 128 + signum, output[-3000:]
    else:  # torchrun reports its own failure status when its workers stop on a signal
        assert process.returncode != 0, output[-3000:]
    assert last_checkpoint_step(run, output) == max(logged(run)) >= 2


@pytest.mark.slow
def test_torchrun_on_two_cpu_processes_resumes_on_the_same_curve(tiny_data, tmp_path):
    """DDP over gloo: each process writes its RNG state into the shared checkpoint; a resume restores all.

    Both runs start under torchrun; the resumed one continues the first one's losses.
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

    full = train(tmp_path / "full", TORCHRUN)
    checkpoint = tmp_path / "full" / "checkpoints" / "checkpoint-4"
    assert {"rng_state_0.pt", "rng_state_1.pt", "optimizer.pt"} <= {p.name for p in checkpoint.iterdir()}
    resumed = train(tmp_path / "resumed", TORCHRUN, f"resume={checkpoint}")
    assert (
        json.loads((tmp_path / "resumed" / "checkpoints" / "checkpoint-6" / STATE_FILE).read_text())["world_size"] == 2
    )
    assert sorted(full) == [1, 2, 3, 4, 5, 6] and sorted(resumed) == [5, 6]
    for step in (5, 6):
        assert resumed[step]["loss"] == pytest.approx(full[step]["loss"], rel=1e-6)
        assert resumed[step]["grad_norm"] == pytest.approx(full[step]["grad_norm"], rel=1e-6)
