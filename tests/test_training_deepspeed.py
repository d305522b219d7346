"""A few training steps through DeepSpeed ZeRO-2 (bf16, the radgenome experiment at test size) in one gloo
process on the CPU, a resume from its checkpoint, and the run's checkpoint opened as a model. DeepSpeed is
asked for by name (deepspeed=zero2): the experiment's own choice leaves it out of a run of one process.

Runs in a subprocess: DeepSpeed keeps process-wide state. DeepSpeed's C++ ops are marked unavailable
there, so that nothing compiles (its CPU shared-memory allreduce alone takes ~80 s to build and a
single process does not need it); the optimizer is the trainer's torch AdamW.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_training_helpers import REPO

import reg2rg

pytest.importorskip("deepspeed", reason="DeepSpeed is the optional extra: pip install -e .[deepspeed]")

RUNNER = """
import json, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
import collections
import deepspeed.ops
deepspeed.ops.__compatible_ops__ = collections.defaultdict(bool)  # build no C++ op (any lookup: False)

from test_training_helpers import OFFLINE_PAPER, TINY_TRAINER, compose_train, data_overrides, logged
from reg2rg.training import train

data, out = Path(sys.argv[1]), Path(sys.argv[2])
common = [
    "experiment=radgenome", "gpu_memory=24gb", "data=synthetic", *data_overrides(data),
    "prepare_data=false", "logger=none",
    *OFFLINE_PAPER,
    *[o for o in TINY_TRAINER if not o.startswith("trainer.mixed_precision")],  # keep the experiment's bf16
    "trainer.max_steps=4", "trainer.save_every_n_steps=2",
]
alone = train(compose_train([*common, f"output_dir={{out / 'alone'}}"]))  # the experiment as it is: no DeepSpeed
first = train(compose_train([*common, "deepspeed=zero2", f"output_dir={{out / 'first'}}"]))
resumed = train(compose_train([*common, "deepspeed=zero2", f"output_dir={{out / 'resumed'}}",
                               f"resume={{first['run_dir'] / 'checkpoints' / 'checkpoint-2'}}"]))
print(json.dumps({{"first": logged(first["run_dir"]), "resumed": logged(resumed["run_dir"]),
                  "checkpoint": str(first["checkpoint"])}}))
"""


@pytest.mark.slow
def test_zero2_trains_checkpoints_and_resumes_in_one_cpu_process(tiny_data, tmp_path):
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER.format(tests=str(REPO / "tests")))
    done = subprocess.run(
        [sys.executable, str(runner), str(tiny_data), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])

    plain = tmp_path / "alone" / "checkpoints" / "checkpoint-4"
    assert not (tmp_path / "alone" / "deepspeed.json").exists() and not (plain / "deepspeed").exists()
    assert (plain / "optimizer.pt").is_file()  # plain Accelerate's optimizer state
    deepspeed = json.loads((tmp_path / "first" / "deepspeed.json").read_text())
    assert deepspeed["zero_optimization"]["stage"] == 2 and deepspeed["bf16"]["enabled"] is True
    assert (deepspeed["train_micro_batch_size_per_gpu"], deepspeed["gradient_accumulation_steps"]) == (2, 2)
    first, resumed = result["first"], result["resumed"]
    assert sorted(first) == ["1", "2", "3", "4"] and sorted(resumed) == ["3", "4"]
    for step in ("3", "4"):  # step 4 follows the update made with the restored optimizer state
        for key in ("loss", "grad_norm", "lr"):
            assert resumed[step][key] == pytest.approx(first[step][key], rel=1e-6), (step, key)

    checkpoint = tmp_path / "first" / "checkpoints" / "checkpoint-4"
    assert str(checkpoint) == result["checkpoint"]
    assert list((checkpoint / "deepspeed").glob("*zero_pp_rank_0_*optim_states.pt"))  # this process's partition
    model = reg2rg.from_pretrained(checkpoint)
    assert model.config["llm"]["tuning"] == "lora" and model.config["llm"]["activation_checkpointing"]
