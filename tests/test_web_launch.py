"""scripts/serve.py: what it serves when nothing is named, and what it says when something is missing."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from reg2rg.web.launch import newest_checkpoint, settings_from_config

REPO = Path(__file__).resolve().parents[1]
SERVE = REPO / "scripts" / "serve.py"


def checkpoints(root: Path, runs: dict[str, list[int]]) -> None:
    for run, steps in runs.items():
        for step in steps:
            (root / "outputs/train/demo" / run / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True)


def test_the_newest_run_and_its_last_step_are_served(tmp_path, monkeypatch):
    checkpoints(tmp_path, {"2026-01-01_10-00-00": [900], "2026-02-01_09-00-00": [50, 200, 1000]})
    (tmp_path / "data/synthetic/cache").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert newest_checkpoint("outputs/train/demo/*/checkpoints/checkpoint-*") == Path(
        "outputs/train/demo/2026-02-01_09-00-00/checkpoints/checkpoint-1000"
    )
    cfg = OmegaConf.load(REPO / "configs" / "serve.yaml")
    settings, missing = settings_from_config(cfg)
    assert settings.data == Path("data/synthetic/cache") and settings.checkpoint.name == "checkpoint-1000"
    assert settings.isrg_checkpoint is None and len(missing) == 1 and "isrg_checkpoint=" in missing[0]


def run_serve(arguments: list[str], monkeypatch, capsys) -> tuple[str, str]:
    """scripts/serve.py run as from the command line, in this process: (its exit message, what it printed)."""
    monkeypatch.setattr(sys, "argv", [str(SERVE), *arguments])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(SERVE), run_name="__main__")
    return str(stop.value), capsys.readouterr().err


def test_without_the_demo_serve_says_how_to_make_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    message, printed = run_serve([], monkeypatch, capsys)
    assert message == "serve.py: nothing to serve"
    assert "no demo cache at data/synthetic/cache; make it with: python scripts/train.py" in printed
    assert "no isrg_checkpoint=...: and none at outputs/train/*isrg*" in printed


@pytest.mark.parametrize(
    "argument, message", [("data=nowhere", "data=nowhere does not exist"), ("dat=x", "Key 'dat' is not in struct")]
)
def test_a_named_path_that_does_not_exist_and_a_misspelt_key_are_refused(
    tmp_path, monkeypatch, capsys, argument, message
):
    monkeypatch.chdir(tmp_path)
    assert run_serve([argument], monkeypatch, capsys)[0].startswith(f"serve.py: {message}")
