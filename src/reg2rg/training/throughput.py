"""Training speed over a logging window: samples/s and tokens/s over all processes."""

from __future__ import annotations

import time


class Throughput:
    """Rates of what was consumed since the previous ``rates()`` call (or since construction)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def rates(self, samples: int, tokens: int) -> dict[str, float]:
        """``samples_per_s`` and ``tokens_per_s`` (non-padding tokens, visual ones included), then a new window."""
        now = time.perf_counter()
        seconds = max(now - self.start, 1e-9)
        self.start = now
        return {"samples_per_s": samples / seconds, "tokens_per_s": tokens / seconds}
