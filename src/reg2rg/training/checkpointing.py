"""Training checkpoints: the model checkpoint plus all that a resumed run needs, in one atomic folder.

    <run>/checkpoints/checkpoint-<step>/
        reg2rg_config.json,               reg2rg.models.save_checkpoint: the model config and what it was
        reg2rg_modules.safetensors,       trained with, what trains outside the LLM (and weights no file
        adapter/, tokenizer files         restores), the LoRA as a PEFT adapter folder, the tokenizer;
                                          ``reg2rg.from_pretrained`` opens the folder
        trainer_state.json                step, batch geometry, seed, counters (``TrainingState``)
        scheduler.pt                      learning-rate scheduler state
        optimizer.pt                      optimizer state (without DeepSpeed: the same on every process)
        deepspeed/                        with DeepSpeed: its ZeRO files, one optimizer partition per process
        rng_state_<rank>.pt               each process's RNG states (torch CPU and CUDA, Python, NumPy)
        digests.json                      SHA-256 of every other file, written last

Every process writes its parts into a hidden ``.pending-checkpoint-<step>`` folder; the main
process then writes the model into a staging folder, moves the parts in and renames it into place
(``save_checkpoint``'s hook), so a checkpoint folder is complete or absent. All processes must share
the file system that holds the checkpoints (as DeepSpeed's own checkpoints require).
Our files load with ``torch.load(weights_only=True)``, safetensors or JSON; DeepSpeed reads its
folder through its checkpoint engine, whose loads are made ``weights_only`` too (``WeightsOnlyLoads``).
A checkpoint is checked against its digests before a resume; ``resume=latest`` passes over a damaged
newest checkpoint (renamed ``<name>.damaged``, never deleted) to the one before it.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator

from reg2rg.models import save_checkpoint
from reg2rg.models.checkpoint import DamagedCheckpointError, load_weights, verify_digests
from reg2rg.models.pretrained import torch_load_safely

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"
DEEPSPEED_TAG = "deepspeed"
NAME = re.compile(r"^checkpoint-(\d+)$")
DAMAGED = ".damaged"  # suffix of a checkpoint moved aside by resume=latest


@dataclass
class TrainingState:
    """Where training stands after ``step`` optimizer steps; the epoch and its position follow from it."""

    step: int
    steps_per_epoch: int
    effective_batch_size: int
    seed: int
    world_size: int
    training_studies: str = ""  # SHA-256 of the training split's study ids in order ("": not recorded)
    group_by_length: bool = False  # steps grouped by sequence length (trainer.group_by_length)
    tokens: int = 0
    unreadable: list[str] = field(default_factory=list)  # study ids that failed to load, each time one did

    @property
    def epoch(self) -> int:
        return self.step // self.steps_per_epoch

    @property
    def step_in_epoch(self) -> int:
        return self.step % self.steps_per_epoch

    def write(self, path: Path) -> None:
        path.write_text(
            json.dumps({**asdict(self), "epoch": self.epoch, "step_in_epoch": self.step_in_epoch}, indent=2) + "\n",
            encoding="utf-8",
        )

    @classmethod
    def read(cls, path: Path) -> TrainingState:
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: cannot read the training state ({error})") from error
        values.pop("epoch", None)
        values.pop("step_in_epoch", None)
        return cls(**values)


def checkpoint_step(path: Path) -> int | None:
    match = NAME.match(path.name)
    return int(match[1]) if match else None


def list_checkpoints(folder: Path) -> list[Path]:
    """Complete training checkpoints in ``folder``, oldest step first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if checkpoint_step(p) is not None and (p / STATE_FILE).is_file()]
    return sorted(found, key=checkpoint_step)


def find_checkpoint(resume: str | None, folder: Path) -> Path | None:
    """The checkpoint ``resume`` names: None (start afresh), "latest" (newest in ``folder``, None if there
    is none) or a path: a checkpoint, a folder of checkpoints or a run folder (its newest checkpoint)."""
    if resume is None:
        return None
    if resume == "latest":
        found = newest_intact(folder)
        if found is None:
            log.info("resume=latest: no checkpoint in %s yet, starting from scratch", folder)
        return found
    path = Path(resume)
    if (path / STATE_FILE).is_file():
        verify_digests(path)
        step = TrainingState.read(path / STATE_FILE).step
        later = [
            p.name for p in list_checkpoints(folder) if checkpoint_step(p) > step and p.resolve() != path.resolve()
        ]
        if later:
            raise ValueError(
                f"resume={resume}: this run's {folder} also holds later checkpoints ({', '.join(later)}); continuing "
                "beside them would mix two histories (retention and resume=latest go by step). Move them away, or "
                "resume into another run folder (hydra.run.dir=...)"
            )
        return path
    for candidate in (path, path / CHECKPOINTS):
        if list_checkpoints(candidate):
            return newest_intact(candidate)
    raise FileNotFoundError(f"resume={resume}: neither a training checkpoint (no {STATE_FILE}) nor a folder of them")


def newest_intact(folder: Path) -> Path | None:
    """The newest checkpoint in ``folder`` whose files match their digests (None: the folder has none).

    Damaged newer ones are renamed ``<name>.damaged`` (kept, never deleted), so that retention and
    ``resume=latest`` no longer see them and the resumed run can write their steps again. When every
    checkpoint is damaged, nothing is moved and the error names the newest one's damaged file.
    """
    damaged: list[tuple[Path, DamagedCheckpointError]] = []
    for checkpoint in reversed(list_checkpoints(folder)):
        try:
            verify_digests(checkpoint)
        except DamagedCheckpointError as error:
            damaged.append((checkpoint, error))
            continue
        for bad, error in damaged:
            aside = _move_aside(bad)
            log.warning(
                "%s: %s is damaged (%s); kept as %s, resuming from %s",
                folder,
                bad.name,
                error,
                aside.name,
                checkpoint.name,
            )
        return checkpoint
    if damaged:
        raise ValueError(f"every checkpoint in {folder} is damaged; the newest: {damaged[0][1]}")
    return None


def _move_aside(checkpoint: Path) -> Path:
    """Rename a damaged checkpoint ``<name>.damaged`` (``.damaged-2``, ... when that name is taken)."""
    aside, copy = checkpoint.with_name(checkpoint.name + DAMAGED), 1
    while aside.exists():
        copy += 1
        aside = checkpoint.with_name(f"{checkpoint.name}{DAMAGED}-{copy}")
    os.replace(checkpoint, aside)
    return aside


def rng_state() -> dict[str, Any]:
    """The RNG states of this process, as tensors and Python numbers (``weights_only`` loads them)."""
    name, keys, position, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"])


def read_torch_file(path: Path, map_location: Any = "cpu", allowed: Sequence[type] = ()) -> Any:
    """A file of tensors, Python primitives and the ``allowed`` classes, read without unpickling code."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {path.parent} is not a complete training checkpoint")
    try:
        return torch_load_safely(path, map_location, allowed)
    except (RuntimeError, EOFError) as error:  # a truncated or damaged file
        raise DamagedCheckpointError(path, f"cannot read it ({error})") from error


def deepspeed_state_classes() -> list[type]:
    """The classes DeepSpeed's ZeRO checkpoints hold besides tensors and containers."""
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]


class WeightsOnlyLoads:
    """A DeepSpeed checkpoint engine whose ``load`` unpickles no code (DeepSpeed's own passes weights_only=False)."""

    def __init__(self, engine: Any):
        self.engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def load(self, path: str, map_location: Any = None) -> Any:
        return read_torch_file(Path(path), map_location, deepspeed_state_classes())


class Checkpointer:
    """Saves and restores training checkpoints for the model, optimizer and scheduler that ``accelerator`` prepared."""

    def __init__(
        self,
        folder: Path,
        accelerator: Accelerator,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        deepspeed: bool,
        keep_last: int | None,
        trained_with: dict[str, Any] | None = None,
    ):
        """``trained_with``: what each checkpoint records besides the model (``save_checkpoint``)."""
        self.folder = folder
        self.trained_with = trained_with
        self.accelerator = accelerator
        self.model = model  # as prepared: a DeepSpeed engine, DDP or the model itself
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.deepspeed = deepspeed
        self.keep_last = keep_last
        if accelerator.is_main_process:
            self._remove_leftovers()
        accelerator.wait_for_everyone()

    def save(self, state: TrainingState) -> Path:
        """Write ``checkpoint-<step>`` (every process must call this), then apply the retention limit."""
        final = self.folder / f"checkpoint-{state.step}"
        pending = self.folder / f".pending-{final.name}"
        if self.accelerator.is_main_process:
            shutil.rmtree(pending, ignore_errors=True)
            pending.mkdir(parents=True)
        self.accelerator.wait_for_everyone()
        torch.save(rng_state(), pending / f"rng_state_{self.accelerator.process_index}.pt")
        if self.deepspeed:
            self.model.save_checkpoint(
                str(pending), tag=DEEPSPEED_TAG, save_latest=False, exclude_frozen_parameters=True
            )
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            save_checkpoint(
                self.accelerator.unwrap_model(self.model),
                final,
                before_commit=lambda staging: self._add_training_state(staging, pending, state),
                trained_with=self.trained_with,
            )
            pending.rmdir()
            self._apply_retention()
            log.info("checkpoint %s", final)
        self.accelerator.wait_for_everyone()
        return final

    def load(self, directory: Path) -> TrainingState:
        """Restore the model, optimizer, scheduler and this process's RNG from ``directory``."""
        state = TrainingState.read(directory / STATE_FILE)
        written_with_deepspeed = (directory / DEEPSPEED_TAG).is_dir()
        if written_with_deepspeed != self.deepspeed:
            fix = "deepspeed=zero2 (DeepSpeed on any number of processes)" if written_with_deepspeed else "~deepspeed"
            raise ValueError(
                f"{directory} was written {'with' if written_with_deepspeed else 'without'} DeepSpeed; "
                f"resume it {'with' if written_with_deepspeed else 'without'} DeepSpeed: add the override {fix}"
            )
        if self.deepspeed:
            engine = self.model.checkpoint_engine
            self.model.checkpoint_engine = WeightsOnlyLoads(engine)
            try:
                loaded, _ = self.model.load_checkpoint(
                    str(directory),
                    tag=DEEPSPEED_TAG,
                    load_module_strict=False,
                    load_optimizer_states=True,
                    load_lr_scheduler_states=False,
                )
            finally:
                self.model.checkpoint_engine = engine
            if loaded is None:
                raise ValueError(f"DeepSpeed could not load {directory / DEEPSPEED_TAG}")
        else:
            load_weights(self.accelerator.unwrap_model(self.model), directory)
            self.optimizer.load_state_dict(read_torch_file(directory / OPTIMIZER_FILE))
        self.scheduler.load_state_dict(read_torch_file(directory / SCHEDULER_FILE))
        rng_file = directory / f"rng_state_{self.accelerator.process_index}.pt"
        if rng_file.is_file():
            restore_rng(read_torch_file(rng_file))
        else:
            log.warning("%s is missing (the checkpoint had fewer processes): random streams start afresh", rng_file)
        log.info(
            "resumed from %s at step %d (epoch %d, step %d of it)",
            directory,
            state.step,
            state.epoch,
            state.step_in_epoch,
        )
        return state

    def _add_training_state(self, staging: Path, pending: Path, state: TrainingState) -> None:
        for part in pending.iterdir():
            os.replace(part, staging / part.name)
        if not self.deepspeed:
            torch.save(self.optimizer.state_dict(), staging / OPTIMIZER_FILE)
        torch.save(self.scheduler.state_dict(), staging / SCHEDULER_FILE)
        state.write(staging / STATE_FILE)

    def _apply_retention(self) -> None:
        if self.keep_last is None:
            return
        for old in list_checkpoints(self.folder)[: -self.keep_last]:
            shutil.rmtree(old)

    def _remove_leftovers(self) -> None:
        """Staging folders a crashed save left behind (``.pending-checkpoint-*``, ``.checkpoint-*``)."""
        for leftover in self.folder.glob(".*checkpoint-*"):
            shutil.rmtree(leftover, ignore_errors=True)
