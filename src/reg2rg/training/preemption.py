"""SIGTERM / SIGINT (cluster preemption, Ctrl-C): finish the optimizer step, write a checkpoint, then stop.

The first signal only raises a flag that the training loop reads after each optimizer step; the
handler then steps aside, so a second signal acts as usual (Ctrl-C twice aborts at once).
DataLoader workers ignore both signals (``shield_from_signals``): a scheduler signals the whole
process group, and the step in flight still needs their batches.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class PreemptionFlag:
    """Set by the first SIGTERM or SIGINT; ``signum`` says which one."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum is not None else None


@contextmanager
def preemption_flag() -> Iterator[PreemptionFlag]:
    """Catch SIGTERM and SIGINT while the block runs (main thread only); previous handlers come back after."""
    flag = PreemptionFlag()
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}

    def handle(signum: int, frame: FrameType | None) -> None:
        flag.signum = signum
        signal.signal(signum, previous[signum])
        log.warning("%s received: checkpointing after the current step (send it again to stop at once)",
                    signal.Signals(signum).name)

    for signum in SIGNALS:
        signal.signal(signum, handle)
    try:
        yield flag
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def shield_from_signals(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: leave SIGTERM and SIGINT to the main process."""
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
