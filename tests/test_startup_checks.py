"""Entry points stop before any training or generation when something they need is missing: one error that
lists every problem with its fix (reg2rg.evaluation.prerequisites, reg2rg.training.startup), a misspelled
override named with the key meant (reg2rg.overrides), and no run folder left by a failed start."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from test_eval_radbert import radbert_files  # noqa: F401 - the fixture: a tiny RadBERT's files
from test_training_helpers import CONFIGS, OFFLINE_PAPER, REPO, compose_train, tiny_overrides

from reg2rg.evaluation import nltk_data
from reg2rg.evaluation.prerequisites import PrerequisitesMissing, check_evaluation_prerequisites, evaluation_problems
from reg2rg.overrides import unknown_keys
from reg2rg.training.startup import check_training_start, remove_failed_start

SCRIPTS = REPO / "scripts"
START_S = 90  # a failed start's bound, on a busy 2-core machine; the demo's training alone takes minutes


def evaluate_config(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("evaluate", overrides=["predictions=x.csv", "output_dir=unused", *overrides])


def run_script(script: str, *arguments: str, path: str | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """``scripts/<script>`` in the repository, offline; ``path`` replaces PATH (the interpreter is absolute)."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", **({"PATH": path} if path is not None else {})}
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / script), *arguments],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done, time.monotonic() - start


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder no file can be created in: read-only for a user; for root (who writes anywhere else) /proc."""
    if os.geteuid() == 0:
        if not Path("/proc").is_dir():
            pytest.skip("running as root without /proc: no folder is unwritable")
        return Path("/proc")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


# Java, when the coco protocol is asked for


def test_missing_java_is_reported_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without java
    [problem] = evaluation_problems(["reg2rg", "coco"])
    assert "java is not on PATH" in problem and "default-jre" in problem
    assert problem.endswith("drop the coco protocol: protocols=[reg2rg]")
    assert evaluation_problems(["reg2rg"]) == []  # the paper's protocol needs no Java


def test_java_that_does_not_run_is_reported(tmp_path, monkeypatch):
    java = tmp_path / "java"
    java.write_text("#!/bin/sh\necho 'Error: could not create the Java Virtual Machine.' >&2\nexit 1\n")
    java.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    [problem] = evaluation_problems(["coco"], regions=False, protocols_setting="evaluation.protocols")
    assert "`java -version` exited with 1 (Error: could not create the Java Virtual Machine.)" in problem
    assert problem.endswith("evaluation.protocols=[]")


@pytest.mark.skipif(shutil.which("java") is None, reason="no java on this machine")
def test_working_java_passes():
    assert evaluation_problems(["coco"], regions=False) == []


# METEOR's NLTK data


def test_missing_nltk_data_is_listed_with_its_fix(monkeypatch):
    def missing():
        raise nltk_data.NLTKDataMissing("WordNet archive /x/wordnet.zip is missing; reinstall reg2rg")

    monkeypatch.setattr(nltk_data, "require_nltk_data", missing)
    assert evaluation_problems(["reg2rg"]) == [
        "METEOR's NLTK data: WordNet archive /x/wordnet.zip is missing; reinstall reg2rg"
    ]
    assert evaluation_problems([], regions=True) != []  # the region tables score METEOR too
    assert evaluation_problems([], regions=False) == []  # nothing uses METEOR


def test_unknown_protocol():
    [problem] = evaluation_problems(["reg2rg", "bleu"], regions=False)
    assert "unknown protocol(s) ['bleu']" in problem and "protocols=[reg2rg,coco]" in problem


# RadBERT files, with ce=radbert


def test_radbert_without_its_files_is_reported(tmp_path):
    unset = evaluation_problems([], evaluate_config("ce=radbert").ce, regions=False)
    assert len(unset) == 2
    assert "add ce.labeler.model_dir=" in unset[0] and "add ce.labeler.classifier_path=" in unset[1]
    ce = evaluate_config(
        "ce=radbert", f"ce.labeler.model_dir={tmp_path}", f"ce.labeler.classifier_path={tmp_path / 'c.pth'}"
    ).ce
    problems = evaluation_problems([], ce, regions=False)
    assert len(problems) == 3
    assert f"{tmp_path} has no config.json" in problems[0]
    assert "no tokenizer files (tokenizer.json or vocab.json + merges.txt)" in problems[1]
    assert f"classifier_path {tmp_path / 'c.pth'} is not a file" in problems[2]
    (tmp_path / "c.pth").touch()
    assert "is empty" in evaluation_problems([], ce, regions=False)[-1]


def test_radbert_files_the_loader_reads_pass_and_an_incomplete_copy_fails(radbert_files, tmp_path):  # noqa: F811
    from reg2rg.evaluation.radbert import RadBertLabeler

    folder, weights, _ = radbert_files
    ce = {
        "labeler": {
            "_target_": "reg2rg.evaluation.radbert.RadBertLabeler",
            "model_dir": str(folder),
            "classifier_path": str(weights),
        }
    }
    assert evaluation_problems([], ce, regions=False) == []
    RadBertLabeler(folder, weights)  # what passed the check loads
    incomplete = shutil.copytree(folder, tmp_path / "radbert", ignore=shutil.ignore_patterns("merges.txt"))
    ce["labeler"]["model_dir"] = str(incomplete)
    [problem] = evaluation_problems([], ce, regions=False)
    assert "no tokenizer files" in problem
    with pytest.raises(ValueError):  # the loader fails on it too (transformers: "`vocab` and `merges` must be ...")
        RadBertLabeler(incomplete, weights)


def test_rule_labeler_needs_no_files():
    assert evaluation_problems([], evaluate_config().ce, regions=False) == []


# The output folder


def test_unwritable_output_folder(tmp_path):
    folder = unwritable_folder(tmp_path)
    for output in (folder, folder / "not-yet-made"):
        [problem] = evaluation_problems([], output_dir=output, regions=False)
        assert f"output folder {output}" in problem and "not writable" in problem and "output_dir=..." in problem
    assert [p.name for p in folder.iterdir() if p.name.startswith(".reg2rg")] == []


def test_output_folder_under_a_file(tmp_path):
    (tmp_path / "a-file").touch()
    [problem] = evaluation_problems([], output_dir=tmp_path / "a-file" / "eval", regions=False, output_setting="output")
    assert f"{tmp_path / 'a-file'} is a file, not a folder" in problem and "output=..." in problem


def test_output_folder_to_be_made_is_checked_without_making_it(tmp_path):
    assert evaluation_problems([], output_dir=tmp_path / "a" / "b", regions=False) == []
    assert list(tmp_path.iterdir()) == []


def test_every_problem_in_one_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    (tmp_path / "a-file").touch()
    with pytest.raises(PrerequisitesMissing) as raised:
        check_evaluation_prerequisites(
            ["reg2rg", "coco", "bleu"], evaluate_config("ce=radbert").ce, tmp_path / "a-file" / "eval"
        )
    problems = raised.value.problems
    assert len(problems) == 5
    assert [
        word in problem for word, problem in zip(("bleu", "java", "model_dir", "classifier_path", "a-file"), problems)
    ] == [True] * 5
    assert str(raised.value).startswith("5 problem(s) to fix before starting:\n  - unknown protocol")
    assert all(f"  - {problem}" in str(raised.value) for problem in problems)


# Training: data and config first


def test_wrong_data_root_is_the_reported_problem_and_missing_deepspeed_comes_with_its_fix(tmp_path, monkeypatch):
    overrides = ["experiment=radgenome", "data.root=/nonexistent", *OFFLINE_PAPER, f"output_dir={tmp_path}"]
    cfg = compose_train(overrides)
    with pytest.raises(PrerequisitesMissing) as raised:
        check_training_start(cfg)
    assert raised.value.problems == [
        "data.root /nonexistent is not a folder: point data.root at the radgenome dataset (its layout: data/README.md)"
    ]
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *rest: None if name == "deepspeed" else find_spec(name, *rest)
    )
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(PrerequisitesMissing) as raised:  # one process: ZeRO-2 is not used, nor needed
        check_training_start(cfg)
    assert len(raised.value.problems) == 1
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun --nproc_per_node=2 sets it
    with pytest.raises(PrerequisitesMissing) as raised:
        check_training_start(cfg)
    data, deepspeed = raised.value.problems
    assert data.startswith("data.root /nonexistent") and 'pip install -e ".[deepspeed]"' in deepspeed
    explicit = compose_train([*overrides, "deepspeed=zero2"])
    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(PrerequisitesMissing) as raised:  # asked for on one process: needed there too
        check_training_start(explicit)
    assert len(raised.value.problems) == 2


def test_training_checks_the_data_config_weights_and_its_evaluation(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    cfg = compose_train(
        [
            "data=manifest",
            "model.vit_checkpoint=/nowhere/RadFM_vit3d.pth",
            "evaluation.protocols=[reg2rg,coco]",
            f"output_dir={tmp_path / 'run'}",
        ]
    )
    with pytest.raises(PrerequisitesMissing) as raised:
        check_training_start(cfg)
    cache, manifest, weights, java = raised.value.problems
    assert cache.startswith("data.cache_dir is not set") and manifest.startswith("data.reader.path is not set")
    assert weights.startswith("model.vit_checkpoint /nowhere/RadFM_vit3d.pth is not a file")
    assert java.endswith("evaluation.protocols=[reg2rg]")


def test_cache_is_required_without_data_preparation(tiny_data, tmp_path):
    check_training_start(compose_train(tiny_overrides(tiny_data, tmp_path / "run")))  # the cache is there
    cfg = compose_train([*tiny_overrides(tiny_data, tmp_path / "run"), f"data.cache_dir={tmp_path / 'no-cache'}"])
    with pytest.raises(PrerequisitesMissing, match="prepare_data=false, and the cache .* has no train.jsonl"):
        check_training_start(cfg)


# Misspelled overrides


@pytest.mark.parametrize("override", ["model.use_geometri=false", "+model.use_geometri=false"])
def test_misspelled_override_names_the_key_meant(override):
    [problem] = unknown_keys([override], CONFIGS, "train")
    assert problem.startswith(f"override '{override}'") and problem.endswith("did you mean model.use_geometry=false ?")


def test_overrides_that_exist_or_are_arguments_pass():
    valid = [
        "-m",
        "experiment=radgenome,ctrg",
        "model.use_texture=true,false",
        "~deepspeed",
        "hydra.run.dir=x",
        "llm=gpt2",
        "+llm.architecture={model_type: gpt2}",
        "llm.architecture.n_embd=32",
        "+trainer.optimizer.amsgrad=true",
    ]
    assert unknown_keys(valid, CONFIGS, "train") == []
    [problem] = unknown_keys(["trainer.optimizer.amsgrad=true"], CONFIGS, "train")  # an argument the config leaves out
    assert problem.endswith("did you mean +trainer.optimizer.amsgrad=true ?")
    [problem] = unknown_keys(["modle.use_geometry=false"], CONFIGS, "train")
    assert problem.endswith("did you mean model.use_geometry=false ?")


# Failed starts leave no run folder


def test_remove_failed_start_removes_only_folders_without_value(tmp_path):
    failed = tmp_path / "failed"
    for name in (".hydra", "tokenizer", "checkpoints"):
        (failed / name).mkdir(parents=True)
    (failed / ".hydra" / "config.yaml").write_text("a: 1\n")
    (failed / "train.log").write_text("started\n")
    trained = tmp_path / "trained"
    (trained / "checkpoints" / "checkpoint-3").mkdir(parents=True)
    (trained / "train.log").write_text("step 3\n")
    logged = tmp_path / "logged"
    logged.mkdir()
    (logged / "metrics.jsonl").write_text('{"step": 1}\n')
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("a user's file\n")
    linked = tmp_path / "linked"
    linked.symlink_to(failed, target_is_directory=True)
    assert remove_failed_start(linked, failed, failed, trained, logged, mine, tmp_path / "absent") == [failed]
    assert not failed.exists() and trained.is_dir() and logged.is_dir() and mine.is_dir()


# scripts/train.py end to end: each stops in seconds, before any data, model or training, with one message


def test_train_py_misspelled_override(tmp_path):
    done, _ = run_script("train.py", "model.use_geometri=false", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode != 0
    assert done.stderr.count("did you mean model.use_geometry=false ?") == 1
    assert "Traceback" not in done.stderr and "+model.use_geometri" not in done.stderr
    assert not (tmp_path / "run").exists()


def test_train_py_wrong_data_root_reports_the_data_not_deepspeed(tmp_path):
    done, seconds = run_script(
        "train.py",
        "experiment=radgenome",
        "data.root=/nonexistent",
        *OFFLINE_PAPER,
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert done.returncode != 0 and seconds < START_S
    assert "data.root /nonexistent is not a folder" in done.stderr
    assert "DeepSpeed" not in done.stdout + done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()


def test_train_py_without_java_stops_before_anything_and_leaves_no_run_folder(tmp_path):
    (tmp_path / "bin").mkdir()
    done, seconds = run_script(
        "train.py",
        f"data.root={tmp_path / 'data'}",
        "evaluation.protocols=[reg2rg,coco]",
        "logger=none",
        f"hydra.run.dir={tmp_path / 'run'}",
        path=str(tmp_path / "bin"),
    )
    assert done.returncode != 0 and seconds < START_S
    assert done.stderr.count("java is not on PATH") == 1
    assert "evaluation.protocols=[reg2rg]" in done.stderr
    assert not (tmp_path / "data").exists()  # the synthetic data were not even written
    assert not (tmp_path / "run").exists()


def test_train_py_failing_inside_train_leaves_no_run_folder(tiny_data, tmp_path):
    # passes the start-up checks, then train() refuses the batch sizes before any data or model
    done, _ = run_script(
        "train.py",
        *tiny_overrides(tiny_data, None),
        "trainer.effective_batch_size=3",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert done.returncode != 0 and "effective" in done.stderr
    assert not (tmp_path / "run").exists()


# The other entry points


def test_evaluate_py_lists_every_problem_before_reading_anything(tmp_path):
    (tmp_path / "a-file").touch()
    done, _ = run_script(
        "evaluate.py",
        f"predictions={tmp_path / 'absent.csv'}",
        "ce=radbert",
        f"output_dir={tmp_path / 'a-file' / 'eval'}",
        f"hydra.run.dir={tmp_path / 'hydra'}",
        path=str(tmp_path),
    )
    assert done.returncode != 0
    assert "evaluate.py: 4 problem(s) to fix before starting" in done.stderr
    for expected in (
        "java is not on PATH",
        "ce.labeler.model_dir=",
        "ce.labeler.classifier_path=",
        "is a file, not a folder",
    ):
        assert expected in done.stderr
    assert "absent.csv" not in done.stderr  # the predictions are read only after the checks


def test_generate_py_checks_its_output_folder_first(tmp_path):
    (tmp_path / "a-file").touch()
    done, _ = run_script(
        "generate.py",
        f"checkpoint={tmp_path / 'absent'}",
        "data=synthetic",
        f"output={tmp_path / 'a-file' / 'predictions.csv'}",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    )
    assert done.returncode != 0
    assert "generate.py: 1 problem(s) to fix before starting" in done.stderr and "output=..." in done.stderr


def test_generate_py_without_a_checkpoint_says_what_to_give():
    done, _ = run_script("generate.py")
    assert done.returncode == 1 and "give the checkpoint folder: checkpoint=" in done.stderr
    assert "Traceback" not in done.stderr
