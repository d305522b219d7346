"""What the launchers hand a training process: ``--local_rank`` on the command line, ranks in the environment.

``python scripts/train.py`` (one process), ``torchrun`` (ranks in RANK / WORLD_SIZE / LOCAL_RANK) and
``deepspeed`` (the same, plus a ``--local_rank=N`` argument, which Hydra would reject as an override)
all end up with the environment that ``torch.distributed`` reads. On a machine without GPUs,
``cpu_processes: N`` makes ``python scripts/train.py`` start the same job as N DDP processes with
cores / N threads each, their ranks set as torchrun sets them (small models train faster that way than
on N threads of one process). This module imports nothing heavy at import time: the training script
calls it before Hydra parses ``sys.argv``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .preemption import SIGNALS, pressed_again

LOCAL_RANK_FLAG = re.compile(r"^--local[-_]rank(?:=(?P<value>.*))?$")


def strip_local_rank(argv: list[str]) -> list[str]:
    """``argv`` without ``--local_rank=N`` / ``--local_rank N`` (also ``--local-rank``).

    The DeepSpeed launcher (and the old ``torch.distributed.launch``) append this argument. Under a
    launcher (WORLD_SIZE set) it becomes LOCAL_RANK unless that is set already; without one it is
    dropped, since a lone LOCAL_RANK would make the process wait for a process group.
    """
    kept: list[str] = []
    rest = iter(argv)
    for argument in rest:
        match = LOCAL_RANK_FLAG.match(argument)
        if match is None:
            kept.append(argument)
            continue
        value = match["value"] if match["value"] is not None else next(rest, None)
        if value is None or not value.isdigit():
            raise ValueError(f"{argument!r} needs a non-negative integer rank, got {value!r}")
        if "WORLD_SIZE" in os.environ:
            os.environ.setdefault("LOCAL_RANK", value)
    return kept


def single_process_environment() -> None:
    """Rank variables for a process that no launcher started (DeepSpeed needs a process group even alone).

    They stay for the life of the process, as the process group that DeepSpeed starts from them does.
    """
    if "WORLD_SIZE" in os.environ:
        return
    values = {
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }
    os.environ.update({key: value for key, value in values.items() if key not in os.environ})


def free_port() -> int:
    """A TCP port that is free on this machine right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


WORKER_SHUTDOWN_S = 30.0  # after one process fails, the others get SIGTERM and this long before SIGKILL
STOPPED_ON_SIGNAL = {128 + signum for signum in SIGNALS}  # a worker's status after its checkpoint on a signal
PASSED_ON = {
    signal.SIGTERM: signal.SIGTERM,
    signal.SIGINT: signal.SIGINT,
    signal.SIGHUP: signal.SIGTERM,
}  # SIGHUP: the terminal closed; the workers checkpoint and stop
LAUNCHER_PID = "REG2RG_LAUNCHER_PID"  # set for the processes that ``cpu_processes`` starts
PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent dies


def cpu_processes_command(script: str, overrides: list[str], run_dir: str) -> list[str]:
    """The command line of each CPU process that runs this job (``overrides``, in ``run_dir``)."""
    return [sys.executable, script, *overrides, f"hydra.run.dir={run_dir}"]


def cpu_processes_environments(processes: int, store_port: int) -> list[dict[str, str]]:
    """The environment of each of ``processes`` CPU processes: ranks as torchrun sets them, cores / N threads,
    and the rendezvous store that this process hosts on ``store_port`` (as torchrun's agent does)."""
    threads = str(max(1, (os.cpu_count() or processes) // processes))
    shared = {
        **os.environ,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", threads),
        "WORLD_SIZE": str(processes),
        "LOCAL_WORLD_SIZE": str(processes),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(store_port),
        "TORCHELASTIC_USE_AGENT_STORE": "True",
        LAUNCHER_PID: str(os.getpid()),
    }
    return [{**shared, "RANK": str(rank), "LOCAL_RANK": str(rank)} for rank in range(processes)]


def run_as_cpu_processes(processes: int, script: str, overrides: list[str], run_dir: str) -> int | None:
    """Run the job as ``processes`` DDP processes on the CPU and return its exit status; None (run it here)
    when one process is asked for, a launcher started this one, or a GPU is present."""
    if LAUNCHER_PID in os.environ:
        stop_with_launcher(int(os.environ[LAUNCHER_PID]))
    if processes <= 1 or "WORLD_SIZE" in os.environ:
        return None
    import torch

    if torch.cuda.is_available():
        return None
    command = cpu_processes_command(script, overrides, run_dir)
    # Hosted here on a port the system picks: no free port to find that another program could take first.
    store = torch.distributed.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    with recorded_signals() as received:  # from before the first worker starts
        workers = [
            subprocess.Popen(command, env=environment, start_new_session=True)
            for environment in cpu_processes_environments(processes, store.port)
        ]
        return supervise(workers, received)


def stop_with_launcher(launcher: int) -> None:
    """In a process that ``cpu_processes`` started: SIGTERM (checkpoint and stop) when the launcher dies,
    killed outright included, rather than train on alone (Linux; elsewhere nothing changes)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != launcher:  # it died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


@contextmanager
def recorded_signals() -> Iterator[list[tuple[int, float]]]:
    """While the block runs, SIGTERM, SIGINT and SIGHUP are only recorded: (signal, monotonic time)."""
    received: list[tuple[int, float]] = []

    def record(signum: int, _frame) -> None:
        received.append((signum, time.monotonic()))

    previous = {signum: signal.signal(signum, record) for signum in PASSED_ON}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def supervise(workers: list[subprocess.Popen], received: list[tuple[int, float]], poll_s: float = 0.1) -> int:
    """Wait for ``workers`` (each in a session of its own) and return the job's exit status.

    The first signal in ``received`` is passed on to every worker (SIGHUP as SIGTERM): they checkpoint
    and stop, each with status 128 + the signal, which becomes the job's. Repeats are not passed on (the
    workers would ignore them), but Ctrl-C pressed again (``pressed_again``) kills the workers at once.
    A worker that stopped on a signal leaves the others all the time they need for the checkpoint. When
    a worker fails the others are stopped (SIGTERM, then SIGKILL after ``WORKER_SHUTDOWN_S``) and its
    status is the job's. torchrun is not used here: a second signal reaching it while it waits for its
    workers makes it exit at once, before their checkpoint is written.
    """
    passed_on = False
    while True:
        if received and not passed_on:
            for worker in workers:
                worker.send_signal(PASSED_ON[received[0][0]])
            passed_on = True
        if any(pressed_again(signum, received[0][1], at) for signum, at in received[1:]):
            stop_workers(workers, grace_s=0.0)
            return 128 + signal.SIGINT
        statuses = [worker.poll() for worker in workers]
        failed = next((status for status in statuses if status and status not in STOPPED_ON_SIGNAL), None)
        if failed is not None:
            stop_workers(workers, WORKER_SHUTDOWN_S)
            return failed if failed > 0 else 128 - failed  # -N: ended by signal N
        if None not in statuses:
            return max(statuses)
        time.sleep(poll_s)


def stop_workers(workers: list[subprocess.Popen], grace_s: float) -> None:
    """SIGTERM to the workers still running, SIGKILL to those left after ``grace_s`` seconds."""
    if grace_s > 0:
        for worker in workers:
            worker.terminate()
    deadline = time.monotonic() + grace_s
    for worker in workers:
        try:
            worker.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
