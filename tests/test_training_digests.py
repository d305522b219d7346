"""Checkpoints record the SHA-256 of every file; a damaged file is named when the checkpoint is opened or
resumed, and resume=latest passes over a damaged newest checkpoint to the one before it (kept, not deleted)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from test_model_helpers import tiny_model
from test_training_helpers import compose_train, tiny_overrides

from reg2rg.files import file_sha256
from reg2rg.models import from_pretrained, save_checkpoint
from reg2rg.models.checkpoint import ADAPTER_WEIGHTS, DIGESTS, MODULES, DamagedCheckpointError, load_weights
from reg2rg.training import train
from reg2rg.training.checkpointing import find_checkpoint, list_checkpoints, read_torch_file


def flip_bytes(path: Path, count: int = 8) -> None:
    """Invert ``count`` bytes in the middle of ``path`` (past any header)."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + count] = bytes(b ^ 0xFF for b in data[middle : middle + count])
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def test_every_file_of_a_checkpoint_has_its_digest(model, tmp_path):
    checkpoint = save_checkpoint(model, tmp_path / "checkpoint")
    digests = json.loads((checkpoint / DIGESTS).read_text())
    files = {p.relative_to(checkpoint).as_posix() for p in checkpoint.rglob("*") if p.is_file() and p.name != DIGESTS}
    assert set(digests) == files and {MODULES, ADAPTER_WEIGHTS} <= files
    assert all(digests[name] == file_sha256(checkpoint / name) for name in files)


def test_flipped_bytes_in_the_weights_are_named(model, tmp_path, caplog):
    checkpoint = save_checkpoint(model, tmp_path / "checkpoint")
    flip_bytes(checkpoint / MODULES)
    with pytest.raises(DamagedCheckpointError, match=rf"{checkpoint / MODULES}: damaged: its SHA-256 differs"):
        from_pretrained(checkpoint)

    (checkpoint / DIGESTS).unlink()  # deleting the record does not get the damage past the check
    with pytest.raises(DamagedCheckpointError, match=rf"{checkpoint / DIGESTS}: missing"):
        from_pretrained(checkpoint)


def test_a_truncated_weights_file_is_named(model, tmp_path):
    checkpoint = save_checkpoint(model, tmp_path / "checkpoint")
    truncate(checkpoint / MODULES)
    with pytest.raises(DamagedCheckpointError, match=rf"{checkpoint / MODULES}: damaged"):
        from_pretrained(checkpoint)
    (checkpoint / DIGESTS).unlink()
    with pytest.raises(DamagedCheckpointError, match=rf"{checkpoint / MODULES}: cannot read the weights"):
        load_weights(model, checkpoint)


def test_a_truncated_training_state_file_is_named(tmp_path):
    import torch

    path = tmp_path / "optimizer.pt"
    torch.save({"state": {0: {"exp_avg": torch.ones(1000)}}}, path)
    truncate(path)
    with pytest.raises(DamagedCheckpointError, match=rf"{path}: cannot read it"):
        read_torch_file(path)


def run(tiny_data: Path, output_dir: Path, *extra: str) -> dict:
    # 3 steps per epoch; a checkpoint after every step, all kept
    schedule = ["trainer.max_steps=3", "trainer.save_every_n_steps=1", "trainer.keep_last=null"]
    return train(compose_train([*tiny_overrides(tiny_data, output_dir), *schedule, *extra]))


def test_resume_latest_passes_over_a_damaged_newest_checkpoint(tiny_data, tmp_path, caplog):
    first = run(tiny_data, tmp_path / "run", "trainer.max_steps=2")
    folder = first["run_dir"] / "checkpoints"
    assert [p.name for p in list_checkpoints(folder)] == ["checkpoint-1", "checkpoint-2"]
    damaged = folder / "checkpoint-2" / "optimizer.pt"
    flip_bytes(damaged)

    with pytest.raises(DamagedCheckpointError, match=f"{damaged}: damaged"):  # named explicitly: no fallback
        run(tiny_data, tmp_path / "other-run", f"resume={folder / 'checkpoint-2'}")

    with caplog.at_level(logging.WARNING):
        resumed = run(tiny_data, tmp_path / "run", "resume=latest")
    assert f"checkpoint-2 is damaged ({damaged}: damaged" in caplog.text
    assert "resuming from checkpoint-1" in caplog.text
    assert resumed["step"] == 3
    assert [p.name for p in list_checkpoints(folder)] == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]
    kept = folder / "checkpoint-2.damaged"  # never deleted: moved aside, with the damaged file in it
    assert file_sha256(kept / "optimizer.pt") != json.loads((kept / DIGESTS).read_text())["optimizer.pt"]
    assert find_checkpoint("latest", folder) == folder / "checkpoint-3"


def test_resume_stops_when_every_checkpoint_is_damaged(tiny_data, tmp_path):
    first = run(tiny_data, tmp_path / "run", "trainer.max_steps=2")
    folder = first["run_dir"] / "checkpoints"
    for checkpoint in list_checkpoints(folder):
        truncate(checkpoint / MODULES)
    before = sorted(p.name for p in folder.iterdir())
    newest = rf"every checkpoint in {folder} is damaged; the newest: .*checkpoint-2/{MODULES}"
    with pytest.raises(ValueError, match=newest):
        find_checkpoint("latest", folder)
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing moved, nothing deleted
