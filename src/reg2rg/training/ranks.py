"""What the launchers hand a training process: ``--local_rank`` on the command line, ranks in the environment.

``python scripts/train.py`` (one process), ``torchrun`` (ranks in RANK / WORLD_SIZE / LOCAL_RANK) and
``deepspeed`` (the same, plus a ``--local_rank=N`` argument, which Hydra would reject as an override)
all end up with the environment that ``torch.distributed`` reads. This module imports nothing heavy:
the training script calls it before Hydra parses ``sys.argv``.
"""

from __future__ import annotations

import os
import re
import socket

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
