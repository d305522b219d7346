"""Files from elsewhere never run code: checkpoints, their training state, DeepSpeed's files, model folders,
the RadBERT classifier and cache files. Each payload would write a marker file; none may appear.

Each test also shows its payload is live (the marker appears when the file is opened the unsafe way), so
a test cannot pass because its payload is broken.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from test_model_helpers import tiny_model
from test_training_helpers import CONFIGS, REPO, compose_train, tiny_overrides

from reg2rg.models import from_pretrained, save_checkpoint
from reg2rg.models.checkpoint import CONFIG, write_digests

REMOTE_MODEL_TYPE = "reg2rg_remote_payload"


class Payload:
    """Unpickling this creates ``target``: the shape of a malicious pickle."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def remote_code_folder(folder: Path, marker: Path) -> Path:
    """A model folder whose config points transformers at its own Python file, which writes ``marker`` on import."""
    folder.mkdir(parents=True)
    auto_map = {
        "AutoConfig": "payload.PayloadConfig",
        "AutoModelForCausalLM": "payload.PayloadModel",
        "AutoModel": "payload.PayloadModel",
    }
    (folder / "config.json").write_text(json.dumps({"model_type": REMOTE_MODEL_TYPE, "auto_map": auto_map}))
    (folder / "payload.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from transformers import PretrainedConfig\n\n\n"
        f"class PayloadConfig(PretrainedConfig):\n    model_type = {REMOTE_MODEL_TYPE!r}\n"
    )
    return folder


@pytest.fixture
def modules_cache(tmp_path, monkeypatch):
    """Where transformers copies remote code it is allowed to run (kept inside the test's folder)."""
    import transformers.dynamic_module_utils as dynamic

    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    monkeypatch.setattr(sys, "path", list(sys.path))


def prove_live(folder: Path, marker: Path) -> None:
    """The control: transformers told to trust the folder runs its code."""
    from transformers import AutoConfig

    assert not marker.exists()
    AutoConfig.from_pretrained(folder, trust_remote_code=True)
    assert marker.exists()


@pytest.fixture
def remote_checkpoint(tmp_path):
    """A checkpoint whose config asks for remote code and points the LLM at a folder of Python code."""
    marker = tmp_path / "remote-code-ran"
    remote = remote_code_folder(tmp_path / "remote", marker)
    checkpoint = save_checkpoint(tiny_model(), tmp_path / "checkpoint")
    config = json.loads((checkpoint / CONFIG).read_text())
    config["model"]["llm"].update(name_or_path=str(remote), architecture=None, extra={"trust_remote_code": True})
    (checkpoint / CONFIG).write_text(json.dumps(config))
    write_digests(checkpoint)  # digests are no defence against a crafted checkpoint: they may match
    return checkpoint, remote, marker


def test_a_checkpoint_cannot_switch_on_remote_code(remote_checkpoint, caplog, modules_cache):
    checkpoint, remote, marker = remote_checkpoint
    with caplog.at_level(logging.WARNING), pytest.raises(ValueError, match="trust_remote_code=True"):
        from_pretrained(checkpoint)  # transformers refuses the folder's code
    assert not marker.exists()
    assert f"{checkpoint / CONFIG} asks for llm.extra.trust_remote_code=True: ignored" in caplog.text
    prove_live(remote, marker)


def test_a_checkpoint_tokenizer_with_code_runs_none(tmp_path, modules_cache):
    from transformers import AutoTokenizer

    marker = tmp_path / "tokenizer-code-ran"
    checkpoint = save_checkpoint(tiny_model(), tmp_path / "checkpoint")
    settings = json.loads((checkpoint / "tokenizer_config.json").read_text())
    settings["auto_map"] = {"AutoTokenizer": [None, "payload.PayloadTokenizer"]}
    (checkpoint / "tokenizer_config.json").write_text(json.dumps(settings))
    (checkpoint / "payload.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from transformers import PreTrainedTokenizerFast\n\n\n"
        "class PayloadTokenizer(PreTrainedTokenizerFast):\n    pass\n"
    )
    write_digests(checkpoint)
    model = from_pretrained(checkpoint)  # its own tokenizer files, without the code
    assert not marker.exists()
    assert type(model.tokenizer).__name__ != "PayloadTokenizer"
    AutoTokenizer.from_pretrained(checkpoint, trust_remote_code=True)  # the control
    assert marker.exists()


def compose_generate(overrides: list[str]):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIGS)):
        return compose("generate", overrides=overrides)


def test_generate_runs_no_checkpoint_code_and_passes_only_its_own_flag(
    remote_checkpoint, caplog, monkeypatch, modules_cache
):
    from reg2rg import models
    from reg2rg.inference import generate_from_config

    checkpoint, _, marker = remote_checkpoint
    with caplog.at_level(logging.WARNING), pytest.raises(ValueError, match="trust_remote_code=True"):
        generate_from_config(compose_generate([f"checkpoint={checkpoint}", "data=synthetic"]))
    assert not marker.exists()
    assert "asks for llm.extra.trust_remote_code=True: ignored" in caplog.text

    asked = []

    class Stop(Exception):
        pass

    def record(directory, device=None, trust_remote_code=False):
        asked.append(trust_remote_code)
        raise Stop

    monkeypatch.setattr(models, "from_pretrained", record)
    for flag in ("false", "true"):
        with pytest.raises(Stop):
            generate_from_config(
                compose_generate([f"checkpoint={checkpoint}", "data=synthetic", f"trust_remote_code={flag}"])
            )
    assert asked == [False, True]


def test_training_runs_an_llms_code_only_with_the_command_line_flag(tmp_path, caplog, modules_cache):
    from hydra.errors import InstantiationException  # what instantiate raises around the model's own error

    from reg2rg.training.config import build_model

    marker = tmp_path / "llm-code-ran"
    remote = remote_code_folder(tmp_path / "llm", marker)
    tokenizer = tiny_model().tokenizer
    base = [*tiny_overrides(tmp_path / "data", tmp_path / "run"), "llm.architecture=null", f"llm.name_or_path={remote}"]

    refused = "llm.extra.trust_remote_code is not accepted.*trust_remote_code=true flag of scripts/train.py"
    with pytest.raises(InstantiationException, match=refused):
        build_model(compose_train([*base, "+llm.extra.trust_remote_code=true"]), tokenizer)
    with pytest.raises(InstantiationException, match="trust_remote_code=True"):
        build_model(compose_train(base), tokenizer)
    assert not marker.exists()

    with caplog.at_level(logging.WARNING), pytest.raises(InstantiationException):  # the payload is no real model
        build_model(compose_train([*base, "trust_remote_code=true"]), tokenizer)
    assert marker.exists()  # the flag is honoured, and said so
    assert "trust_remote_code=true: the Python code that comes with the LLM" in caplog.text


@pytest.mark.parametrize("name", ["optimizer.pt", "scheduler.pt", "rng_state_0.pt"])
def test_resume_refuses_a_pickle_in_the_training_state(tiny_data, tmp_path, name):
    from reg2rg.training import train

    run = [*tiny_overrides(tiny_data, tmp_path / "run"), "trainer.max_steps=1"]
    checkpoint = train(compose_train(run))["checkpoint"]
    marker = tmp_path / "pickle-ran"
    torch.save({"state": Payload(marker)}, checkpoint / name)
    write_digests(checkpoint)
    with pytest.raises(ValueError, match=rf"{name}: refusing to unpickle it: it holds io.open"):
        train(
            compose_train(
                [*tiny_overrides(tiny_data, tmp_path / "resumed"), f"resume={checkpoint}", "trainer.max_steps=2"]
            )
        )
    assert not marker.exists()
    torch.load(checkpoint / name, weights_only=False)  # the control
    assert marker.exists()


DEEPSPEED_RUNNER = """
import json, os, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
import collections
import deepspeed.ops
deepspeed.ops.__compatible_ops__ = collections.defaultdict(bool)  # build no C++ op (any lookup: False)
import torch
from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine

from test_training_helpers import OFFLINE_PAPER, TINY_TRAINER, compose_train, data_overrides
from test_untrusted_files import Payload
from reg2rg.models.checkpoint import write_digests
from reg2rg.training import train
from reg2rg.training.checkpointing import deepspeed_state_classes, read_torch_file

data, out = Path(sys.argv[1]), Path(sys.argv[2])
common = ["experiment=radgenome", "data=synthetic", *data_overrides(data), "prepare_data=false", "logger=none",
          *OFFLINE_PAPER, *TINY_TRAINER, "trainer.max_steps=1", "deepspeed=zero2"]  # asked for: one process too
checkpoint = train(compose_train([*common, f"output_dir={{out / 'first'}}"]))["checkpoint"]
outcome = {{}}
for file in sorted((checkpoint / "deepspeed").glob("*.pt")):
    marker = out / f"ran-{{file.stem}}"
    original = file.read_bytes()
    state = read_torch_file(file, "cpu", deepspeed_state_classes())  # DeepSpeed's file as written, read safely
    state["payload"] = Payload(marker)
    torch.save(state, file)
    write_digests(checkpoint)
    try:
        train(compose_train([*common, f"output_dir={{out / ('resumed-' + file.stem)}}", f"resume={{checkpoint}}",
                             "trainer.max_steps=2"]))
        error = None
    except ValueError as refused:
        error = str(refused)
    refused_safely = not marker.exists()
    TorchCheckpointEngine().load(str(file), map_location="cpu")  # the control: DeepSpeed's own engine
    outcome[file.name] = {{"error": error, "refused_safely": refused_safely, "live": marker.exists()}}
    file.write_bytes(original)
print(json.dumps(outcome))
"""


@pytest.mark.slow
def test_deepspeed_resume_refuses_a_pickle_in_its_files(tiny_data, tmp_path):
    pytest.importorskip("deepspeed", reason="DeepSpeed is the optional extra: pip install -e .[deepspeed]")
    runner = tmp_path / "runner.py"
    runner.write_text(DEEPSPEED_RUNNER.format(tests=str(REPO / "tests")))
    done = subprocess.run(
        [sys.executable, str(runner), str(tiny_data), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt"} <= set(outcome)
    for name, result in outcome.items():
        assert result["error"] and f"{name}: refusing to unpickle it" in result["error"], (name, result)
        assert result["refused_safely"] and result["live"], (name, result)


def test_radbert_files_run_no_code(tmp_path, modules_cache):
    from reg2rg.evaluation.radbert import RadBertClassifier, load_classifier_state

    marker = tmp_path / "radbert-code-ran"
    folder = remote_code_folder(tmp_path / "radbert", marker)
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        RadBertClassifier(folder, 18)
    assert not marker.exists()
    prove_live(folder, marker)

    pickled = tmp_path / "pickle-ran"
    torch.save({"classifier.weight": Payload(pickled)}, tmp_path / "RadBertClassifier.pth")
    with pytest.raises(ValueError, match="RadBertClassifier.pth: refusing to unpickle"):
        load_classifier_state(torch.nn.Linear(2, 2), tmp_path / "RadBertClassifier.pth")
    assert not pickled.exists()


def test_a_cache_file_holding_a_pickle_is_refused(tmp_path):
    from reg2rg.data.cache import CachedStudy

    marker = tmp_path / "cache-pickle-ran"
    path = tmp_path / "study.npz"
    payload = np.empty(1, dtype=object)
    payload[0] = Payload(marker)
    np.savez(path, meta=payload)
    with pytest.raises(ValueError, match="allow_pickle=False"):
        CachedStudy(path)
    assert not marker.exists()
    with np.load(path, allow_pickle=True) as npz:
        npz["meta"]  # noqa: B018 - the control: numpy told to unpickle runs the payload
    assert marker.exists()
