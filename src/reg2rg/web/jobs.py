"""Region report generation in the background: one job at a time, its progress polled, cancellable.

Progress counts the tokens generated: a hook before the LLM's output layer sees every decoding step (the
first one reads the prompt) and stops the generation by raising ``Cancelled`` once the job is cancelled.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reg2rg.visualize.grounding import ground_reports
from reg2rg.visualize.palette import region_colour
from reg2rg.web.studies import MEDREGION, REG2RG

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """Raised inside the generation when its job is cancelled."""


class Busy(RuntimeError):
    """A generation is already running."""


@dataclass
class GenerationJob:
    id: str
    study_key: str
    max_new_tokens: int
    state: str = "loading"  # loading (the model) | running | done | cancelled | failed
    tokens: int = 0
    error: str | None = None
    reports: list[dict[str, Any]] = field(default_factory=list)
    seconds: float | None = None
    cancel_requested: threading.Event = field(default_factory=threading.Event)

    def status(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "study": self.study_key,
            "state": self.state,
            "tokens": self.tokens,
            "max_new_tokens": self.max_new_tokens,
            "error": self.error,
            "reports": self.reports,
            "seconds": self.seconds,
        }


class ReportGenerator:
    """Generates a study's region reports with the checkpoint's model (loaded on first use), greedy: a Reg2RG model,
    or a MedRegion-CT model (``encoder``: its slice encoder, which makes its studies' samples)."""

    def __init__(self, checkpoint: Path, device: str = "cpu", max_new_tokens: int = 512):
        from reg2rg.medregion.inference import encoder_settings

        self.checkpoint = checkpoint
        self.encoder = encoder_settings(checkpoint)
        self.family = REG2RG if self.encoder is None else MEDREGION
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.jobs: dict[str, GenerationJob] = {}
        self._model = None
        self._lock = threading.Lock()
        self._running: GenerationJob | None = None

    def start(self, study_key: str, sample: dict) -> GenerationJob:
        """A new job generating ``sample``'s reports in a background thread; ``Busy`` while another runs."""
        with self._lock:
            if self._running is not None:
                raise Busy(f"a generation is running (job {self._running.id}): wait for it or cancel it")
            job = GenerationJob(uuid.uuid4().hex[:12], study_key, self.max_new_tokens)
            self.jobs[job.id] = job
            self._running = job
        threading.Thread(target=self._run, args=(job, sample), daemon=True, name=f"generate-{job.id}").start()
        return job

    def cancel(self, job_id: str) -> GenerationJob:
        job = self.jobs[job_id]
        job.cancel_requested.set()
        return job

    def model(self):
        if self._model is None:
            if self.encoder is not None:
                from reg2rg.medregion.inference import load_medregion_model

                self._model = load_medregion_model(self.checkpoint, self.device)
            else:
                from reg2rg.models import from_pretrained

                self._model = from_pretrained(self.checkpoint, device=self.device)
        return self._model

    def reports(self, model, sample: dict, max_new_tokens: int) -> list[dict[str, Any]]:
        """The page's report entries of one study: index, region, header, body, flagged, colour."""
        if self.encoder is not None:
            from reg2rg.medregion.inference import generate_reports
            from reg2rg.medregion.regions import REGIONS, REPORT_HEADINGS

            [generation] = generate_reports(model, [sample], max_new_tokens)
            masked = {region for region, present in zip(REGIONS, sample["present"].tolist()) if present}
            return [
                {
                    "index": index,
                    "region": region,
                    "header": REPORT_HEADINGS[region],
                    "body": body,
                    "flagged": region not in masked,  # a report on a region the study has no mask for
                    "colour": region_colour(region),
                }
                for index, (region, body) in enumerate(generation["regions"].items())
            ]
        [generation] = model.generate_reports([sample], max_new_tokens=max_new_tokens)
        grounded = ground_reports(generation, sample["regions"], model.template.first_region_index)
        return [
            {
                "index": entry.index,
                "region": entry.region,
                "header": entry.header(),
                "body": entry.body(),
                "flagged": entry.mismatch,
                "colour": entry.colour,
            }
            for entry in grounded
        ]

    def _run(self, job: GenerationJob, sample: dict) -> None:
        start = time.perf_counter()
        final = "failed"
        try:
            model = self.model()
            if job.cancel_requested.is_set():
                raise Cancelled
            job.state = "running"

            def count_step(module, inputs) -> None:
                if job.cancel_requested.is_set():
                    raise Cancelled
                job.tokens += 1

            hook = model.llm.get_output_embeddings().register_forward_pre_hook(count_step)
            try:
                job.reports = self.reports(model, sample, job.max_new_tokens)
            finally:
                hook.remove()
            final = "done"
        except Cancelled:
            final = "cancelled"
        except Exception as error:  # shown on the page; the server goes on
            log.exception("generation job %s failed", job.id)
            job.error = f"{type(error).__name__}: {error}"
        finally:
            with self._lock:  # a finished state means the generator is free
                job.seconds = round(time.perf_counter() - start, 2)
                job.state = final
                self._running = None
