"""METEOR 1.5 (the Java jar pycocoevalcap ships) driven robustly: a deadline and clear errors.

The jar runs as pycocoevalcap runs it (``java -jar -Xmx2G meteor-1.5.jar - - -stdio -l en -norm``,
paraphrase table included). In ``-stdio`` mode a line "SCORE ||| reference ||| hypothesis" answers
with that segment's statistics, and "EVAL ||| stats ||| stats ..." with one score per segment and
then the corpus score. Every read has a deadline; a missing ``java``, a failing jar or the deadline
raises ``MeteorUnavailable`` with the reason (pycocoevalcap's wrapper would hang or crash instead).
"""

from __future__ import annotations

import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

JAVA_OPTIONS = ("-Dfile.encoding=UTF-8", "-jar", "-Xmx2G")
METEOR_OPTIONS = ("-", "-", "-stdio", "-l", "en", "-norm")


class MeteorUnavailable(RuntimeError):
    """The Java METEOR could not score; the message says why."""


def meteor_jar() -> Path:
    import pycocoevalcap.meteor.meteor as meteor_module

    return Path(meteor_module.__file__).with_name("meteor-1.5.jar")


class _MeteorProcess:
    """One jar process; ``ask`` writes a line and reads its answers (stdout is pumped on a thread)."""

    def __init__(self, jar: Path, deadline: float):
        self.deadline = deadline
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        try:
            self._process = subprocess.Popen(
                ["java", *JAVA_OPTIONS, jar.name, *METEOR_OPTIONS],
                cwd=jar.parent,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                text=True,
                encoding="utf-8",  # not the locale's, which a library may have left at ASCII
            )
        except OSError:
            self._stderr.close()
            raise
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self._process.stdout:
            self._lines.put(line.strip())
        self._lines.put(None)

    def _read(self) -> str:
        try:
            line = self._lines.get(timeout=max(self.deadline - time.monotonic(), 0.0))
        except queue.Empty:
            raise MeteorUnavailable("the METEOR jar did not answer before the deadline") from None
        if line is None:
            raise MeteorUnavailable(f"the METEOR jar exited: {self.stderr_tail() or 'no message'}")
        return line

    def ask(self, line: str, answers: int) -> list[str]:
        try:
            self._process.stdin.write(line + "\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            raise MeteorUnavailable(f"the METEOR jar exited: {self.stderr_tail() or 'no message'}") from None
        return [self._read() for _ in range(answers)]

    def statistics(self, pairs: Sequence[tuple[str, str]], ids: Sequence[str]) -> list[str]:
        answers = []
        for sample_id, (reference, hypothesis) in zip(ids, pairs):
            try:
                answers.append(self.ask(f"SCORE ||| {_clean(reference)} ||| {_clean(hypothesis)}", 1)[0])
            except MeteorUnavailable as error:
                words = f"{len(reference.split())} reference words, {len(hypothesis.split())} predicted"
                raise MeteorUnavailable(f"{error} (while scoring study {sample_id}: {words})") from None
        return answers

    def stderr_tail(self) -> str:
        self._stderr.seek(0)
        return " | ".join(self._stderr.read().strip().splitlines()[-3:])

    def close(self) -> None:
        self._process.kill()
        self._process.wait()
        self._stderr.close()


def _clean(text: str) -> str:
    return " ".join(text.replace("|||", " ").split())


def java_meteor(
    references: Sequence[str], hypotheses: Sequence[str], timeout_s: float, ids: Sequence[str] | None = None
) -> float:
    """Corpus METEOR 1.5 of tokenized texts, or ``MeteorUnavailable`` (naming the study it failed on)."""
    if shutil.which("java") is None:
        raise MeteorUnavailable("java is not on PATH (install a JRE, e.g. apt-get install default-jre-headless)")
    try:
        process = _MeteorProcess(meteor_jar(), deadline=time.monotonic() + timeout_s)
    except OSError as error:
        raise MeteorUnavailable(f"java could not run the METEOR jar: {error}") from error
    try:
        ids = ids if ids is not None else [str(row) for row in range(len(references))]
        statistics = process.statistics(list(zip(references, hypotheses)), ids)
        answer = process.ask("EVAL ||| " + " ||| ".join(statistics), len(statistics) + 1)[-1]
        try:
            return float(answer)
        except ValueError:
            raise MeteorUnavailable(f"the METEOR jar answered {answer[:80]!r} instead of a score") from None
    finally:
        process.close()
