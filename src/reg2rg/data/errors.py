"""Bad input: one error type that names the file and the problem, and a study-level skip policy.

Policy (documented in data/README.md):
- ``skip`` (default): a bad study is logged once with its file and problem, counted by
  problem kind, and left out; the dataset build goes on.
- ``strict``: the first bad study raises its ``StudyError``.
Problems that concern the whole dataset (a CSV without its columns, a missing root folder)
always raise: there is nothing left to build without them.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

POLICIES = ("skip", "strict")
MAX_VOXELS = 1024 * 1024 * 2048  # default data.max_voxels: a NIfTI header claiming more voxels is not believed


class StudyError(ValueError):
    """A problem with one input file; ``kind`` is a short stable tag used for counting."""

    def __init__(self, path: str | Path, problem: str, kind: str = "invalid"):
        self.path = str(path)
        self.problem = problem
        self.kind = kind
        super().__init__(f"{self.path}: {problem}")


@dataclass
class SkipLog:
    """Counts and remembers skipped studies under a policy ('skip' or 'strict')."""

    policy: str = "skip"
    skipped: list[dict] = field(default_factory=list)

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise ValueError(f"unknown bad-input policy {self.policy!r}; expected one of {POLICIES}")

    def record(self, study_id: str, error: StudyError) -> None:
        """Skip ``study_id`` because of ``error`` (or raise it under the strict policy)."""
        if self.policy == "strict":
            raise error
        log.warning("skipping study %s: %s", study_id, error)
        self.skipped.append({"study_id": study_id, "kind": error.kind, "path": error.path, "problem": error.problem})

    def counts(self) -> dict[str, int]:
        return dict(Counter(entry["kind"] for entry in self.skipped))

    def merge(self, other: SkipLog) -> None:
        self.skipped.extend(other.skipped)

    def summary(self) -> str:
        if not self.skipped:
            return "no study skipped"
        parts = ", ".join(f"{kind}: {n}" for kind, n in sorted(self.counts().items()))
        return f"{len(self.skipped)} studies skipped ({parts})"
