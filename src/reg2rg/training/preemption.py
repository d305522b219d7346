"""SIGTERM / SIGINT (cluster preemption, Ctrl-C): finish the optimizer step, write a checkpoint, then stop.

The first signal only raises a flag that the training loop reads after each optimizer step. Launchers
deliver a signal more than once: SLURM signals every process of the job step and torchrun (or the
``deepspeed`` launcher) then passes the same signal on to its workers. So repeats are ignored while the
checkpoint is written (a launcher that loses patience sends SIGKILL), except, in a run of one process, a
SIGINT at least ``ABORT_AFTER_S`` after the first one: Ctrl-C pressed again aborts at once. Under a
launcher of several processes (WORLD_SIZE > 1) the launcher ends its workers itself (torchrun after its
shutdown timeout).
DataLoader workers ignore both signals (``shield_from_signals``): a scheduler signals the whole
process group, and the step in flight still needs their batches.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)
ABORT_AFTER_S = 1.0  # a SIGINT this long after the first is a user's second Ctrl-C, not a launcher's copy


class PreemptionFlag:
    """Set by the first SIGTERM or SIGINT; ``signum`` says which one, ``received_at`` when (monotonic s)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.received_at: float | None = None

    def __bool__(self) -> bool:
        return self.signum is not None


@contextmanager
def preemption_flag() -> Iterator[PreemptionFlag]:
    """Catch SIGTERM and SIGINT while the block runs (main thread only); previous handlers come back after."""
    flag = PreemptionFlag()
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    alone = os.environ.get("WORLD_SIZE", "1") == "1"  # no launcher to end this process on a second Ctrl-C

    def handle(signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if flag.received_at is None:
            flag.signum, flag.received_at = signum, now
            log.warning(
                "%s received: checkpointing after the current step (Ctrl-C again to stop at once)",
                signal.Signals(signum).name,
            )
        elif alone and pressed_again(signum, flag.received_at, now):
            signal.signal(signum, previous[signum])
            signal.raise_signal(signum)  # the previous handler acts: KeyboardInterrupt by default
        else:
            log.info("%s received again: still checkpointing", signal.Signals(signum).name)

    for signum in SIGNALS:
        signal.signal(signum, handle)
    try:
        yield flag
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def pressed_again(signum: int, first_at: float, at: float) -> bool:
    """Whether ``signum`` at ``at`` (monotonic s) is a user's second Ctrl-C after a first signal at ``first_at``:
    a SIGINT ``ABORT_AFTER_S`` or more later, not a launcher's copy."""
    return signum == signal.SIGINT and at - first_at >= ABORT_AFTER_S


def shield_from_signals(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: leave SIGTERM and SIGINT to the main process."""
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
