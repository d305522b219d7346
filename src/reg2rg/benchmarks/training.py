"""Demo training throughput on the CPU: one process on every core vs ``cpu_processes`` one-thread DDP processes.

The runs train the demo experiment (``python scripts/train.py``) for the same steps on the same data,
without evaluation or wandb, one after the other: one process with the whole effective batch per
step (the reference), one process accumulating the demo's micro-batches, and ``processes`` DDP
processes. Samples/s is the mean of the logged windows after the first (which holds start-up); the
ratios against the reference are what ``cpu_processes`` buys on this machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def run(script: str, steps: int = 300, processes: int = 2, json_path: str | None = None) -> dict:
    """Samples/s of the demo with one process and with ``processes``; writes ``json_path`` if given."""
    results = {"steps": steps, "cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory() as scratch:
        variants = {
            "one_process": [1, "trainer.per_device_batch_size=${trainer.effective_batch_size}"],
            "one_process_accumulating": [1],
            f"{processes}_processes": [processes],
        }
        for name, (count, *extra) in variants.items():
            run_dir = Path(scratch) / name
            command = [
                sys.executable,
                script,
                f"cpu_processes={count}",
                f"trainer.max_steps={steps}",
                f"trainer.log_every_n_steps={max(steps // 6, 1)}",
                "trainer.progress_bar=false",
                "evaluation.enabled=false",
                "logger=none",
                f"hydra.run.dir={run_dir}",
                *extra,
            ]
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            results[name] = _samples_per_second(run_dir / "metrics.jsonl")
    for name in list(variants)[1:]:
        results[f"{name}_vs_one_process"] = results[name] / results["one_process"]
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


def _samples_per_second(metrics: Path) -> float:
    """Mean samples/s of the logged windows after the first."""
    rates = [
        json.loads(line)["samples_per_s"] for line in metrics.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    later = rates[1:] or rates
    return sum(later) / len(later)
