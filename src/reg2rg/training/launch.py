"""What the launchers hand a training process: ``--local_rank`` on the command line, ranks in the environment.

``python scripts/train.py`` (one process), ``torchrun`` (ranks in RANK / WORLD_SIZE / LOCAL_RANK) and
``deepspeed`` (the same, plus a ``--local_rank=N`` argument, which Hydra would reject as an override)
all end up with the environment that ``torch.distributed`` reads. On a machine without GPUs,
``cpu_processes: N`` makes ``python scripts/train.py`` start the same job under torchrun as N DDP
processes of one thread share each (small models train faster that way than on N threads of one
process). This module imports nothing heavy at import time: the training script calls it before
Hydra parses ``sys.argv``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys

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


def cpu_processes_command(processes: int, script: str, overrides: list[str], run_dir: str) -> list[str]:
    """The torchrun command that runs this job (``overrides``, in ``run_dir``) as ``processes`` CPU processes."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
            script, *overrides, f"hydra.run.dir={run_dir}"]


def run_as_cpu_processes(processes: int, script: str, overrides: list[str], run_dir: str) -> int | None:
    """Run the job as ``processes`` DDP processes on the CPU and return its exit status; None (run it here)
    when one process is asked for, a launcher started this one, or a GPU is present.

    SIGTERM (cluster preemption) and SIGINT (Ctrl-C) are passed on to torchrun, which runs in a session of
    its own so that a terminal's Ctrl-C reaches it once, through here; it passes them to the processes:
    they checkpoint and stop, and the status is then 128 + the signal as for a single process.
    """
    if processes <= 1 or "WORLD_SIZE" in os.environ:
        return None
    import torch

    if torch.cuda.is_available():
        return None
    threads = str(max(1, (os.cpu_count() or processes) // processes))
    environment = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", threads)}
    child = subprocess.Popen(cpu_processes_command(processes, script, overrides, run_dir), env=environment,
                             start_new_session=True)
    received: list[int] = []

    def forward(signum: int, _frame) -> None:
        received.append(signum)
        child.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        status = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 + received[0] if received and status else status
