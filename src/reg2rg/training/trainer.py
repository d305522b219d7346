"""The training loop (Accelerate): one device, DDP or DeepSpeed ZeRO, with gradient accumulation.

Each optimizer step consumes exactly one effective batch (``loader``). After a step the loop logs
(every ``log_every_n_steps``), checkpoints (every ``save_every_n_steps``, at each epoch end, at the
last step, and on SIGTERM / SIGINT; the main process then redraws ``loss_curve.png``) and stops at
the last step or on a signal. A resumed run continues the very same data order, learning rate and
random streams.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, gather_object, send_to_device
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm
from transformers import get_scheduler

from .batching import Batching
from .checkpointing import Checkpointer, TrainingState
from .loader import (
    epoch_loader,
    epoch_order,
    limit_lengths,
    padding_fraction,
    sequence_lengths,
    steps_per_epoch,
    studies_digest,
)
from .preemption import PreemptionFlag
from .throughput import Throughput
from .tracking import MetricsLog

log = logging.getLogger(__name__)

MIXED_PRECISION = ("no", "bf16", "fp16")


@dataclass
class TrainerConfig:
    """The ``trainer`` config group (``configs/trainer/default.yaml`` documents every field)."""

    optimizer: Callable[..., torch.optim.Optimizer]  # called with the trainable parameters
    epochs: int = 6
    max_steps: int | None = None
    per_device_batch_size: int = 1
    gradient_accumulation_steps: int | None = None
    effective_batch_size: int | None = 16
    lr_scheduler: str = "constant_with_warmup"
    warmup_steps: int = 20
    max_grad_norm: float = 1.0
    mixed_precision: str = "bf16"
    num_workers: int = 4
    log_every_n_steps: int = 10
    save_every_n_steps: int | None = None
    save_at_epoch_end: bool = True
    keep_last: int | None = 3
    progress_bar: bool = True
    max_length: int | None = None  # tokens per training sequence; None: the LLM's positions
    overlength: str = "truncate"  # a longer study: truncate | skip (see loader.limit_lengths)
    group_by_length: bool = False  # steps of studies of similar length: less padding (see loader.epoch_order)

    def __post_init__(self) -> None:
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"trainer.mixed_precision must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}")
        at_least_one = {
            "epochs": self.epochs,
            "log_every_n_steps": self.log_every_n_steps,
            "max_steps": self.max_steps,
            "save_every_n_steps": self.save_every_n_steps,
            "keep_last": self.keep_last,
            "max_length": self.max_length,
        }
        for name, value in at_least_one.items():
            if value is not None and value < 1:
                raise ValueError(f"trainer.{name} must be >= 1 (or null where optional), got {value}")
        for name in ("warmup_steps", "num_workers", "max_grad_norm"):
            if getattr(self, name) < 0:
                raise ValueError(f"trainer.{name} must be >= 0, got {getattr(self, name)}")


class Trainer:
    """Trains ``model`` on ``train_set``; ``fit`` runs until the last step or a preemption signal."""

    window: _Window  # what was consumed since the last log (set by ``fit``)
    clock: Throughput
    bar: tqdm

    def __init__(
        self,
        config: TrainerConfig,
        accelerator: Accelerator,
        model: nn.Module,
        train_set: Dataset,
        batching: Batching,
        seed: int,
        checkpoint_dir: Path,
        metrics: MetricsLog | None,
        trained_with: dict[str, Any] | None = None,
    ):
        """``model`` and ``train_set`` as ``reg2rg.training.family`` describes them; ``trained_with``: what every
        checkpoint records besides the model (``reg2rg.training.config.trained_with``)."""
        self.config = config
        self.accelerator = accelerator
        self.collate = model.collator(max_length=config.max_length or model.max_positions)
        self.over_length = limit_lengths(train_set, self.collate, config.overlength, accelerator.is_main_process)
        self.train_set = train_set
        self.batching = batching
        self.lengths = sequence_lengths(train_set, self.collate) if config.group_by_length else None
        self.seed = seed
        self.metrics = metrics
        self.deepspeed = accelerator.distributed_type == DistributedType.DEEPSPEED
        self.parameters = [p for p in model.parameters() if p.requires_grad]
        self.model, self.optimizer = accelerator.prepare(model, config.optimizer(self.parameters))
        self.steps_per_epoch = steps_per_epoch(len(train_set), batching)
        self.total_steps = config.epochs * self.steps_per_epoch
        if config.max_steps is not None:
            self.total_steps = min(self.total_steps, config.max_steps)
        # Stepped here once per optimizer step (accelerate would step a prepared scheduler once per process).
        self.scheduler = get_scheduler(
            config.lr_scheduler,
            self.optimizer,
            num_warmup_steps=config.warmup_steps,
            num_training_steps=self.total_steps,
        )
        self.checkpointer = Checkpointer(
            checkpoint_dir,
            accelerator,
            self.model,
            self.optimizer,
            self.scheduler,
            self.deepspeed,
            config.keep_last,
            trained_with,
        )
        self.state = TrainingState(
            step=0,
            steps_per_epoch=self.steps_per_epoch,
            effective_batch_size=batching.effective,
            seed=seed,
            world_size=batching.world_size,
            training_studies=studies_digest(train_set),
            group_by_length=config.group_by_length,
        )
        if self.lengths is not None and accelerator.is_main_process:
            self._log_padding()
        self.grad_norm: float | None = None
        self.last_checkpoint: Path | None = None
        self.stopped_by: signal.Signals | None = None  # the signal that all processes stopped on
        self.last_metrics: dict[str, float] = {}

    def resume(self, directory: Path) -> None:
        """Continue from a checkpoint of the same training studies, batch geometry and seed."""
        state = self.checkpointer.load(directory)
        expected = (self.steps_per_epoch, self.batching.effective, self.seed, self.config.group_by_length)
        found = (state.steps_per_epoch, state.effective_batch_size, state.seed, state.group_by_length)
        if found != expected:
            raise ValueError(
                f"{directory}: (steps per epoch, effective batch, seed, group by length) = {found}, but this run has "
                f"{expected}; the data order would not continue. Resume with the same data, "
                "trainer.effective_batch_size, seed and trainer.group_by_length"
            )
        if state.training_studies and state.training_studies != self.state.training_studies:
            raise ValueError(
                f"{directory}: its training split held other studies than this run's ({len(self.train_set)} studies); "
                "the data order would not continue. Resume with the same training split"
            )
        state.world_size = self.batching.world_size
        state.training_studies = self.state.training_studies
        self.state = state

    def fit(self, stop: PreemptionFlag) -> Path | None:
        """Train to the last step, or until ``stop`` is raised; returns the checkpoint written at the end."""
        show = self.accelerator.is_main_process and self.config.progress_bar
        with (
            logging_redirect_tqdm(),
            tqdm(
                total=self.total_steps, initial=self.state.step, unit="step", desc="train", disable=not show
            ) as self.bar,
        ):
            self.model.train()
            self.window, self.clock = _Window(self.accelerator.device), Throughput()
            while self.state.step < self.total_steps:
                for batch, unreadable in self._epoch_loader():
                    self._micro_step(batch, unreadable)
                    if self.accelerator.sync_gradients:
                        self.scheduler.step()
                        self.state.step += 1
                        self.window.steps += 1
                        self.bar.update()
                        if self._after_step(stop):
                            return self.last_checkpoint
        return self.last_checkpoint

    def _epoch_loader(self) -> DataLoader:
        return epoch_loader(
            self.train_set,
            self.collate,
            self.batching,
            self.accelerator.process_index,
            self.seed,
            self.state.epoch,
            self.state.step_in_epoch,
            self.config.num_workers,
            self.lengths,
        )

    def _log_padding(self) -> None:
        """The share of padding in the first epoch's micro-batches, grouped by length and not."""
        size, step_size, per_device = len(self.lengths), self.batching.effective, self.batching.per_device
        grouped = epoch_order(size, step_size, self.seed, 0, self.lengths)
        plain = epoch_order(size, step_size, self.seed, 0)
        log.info(
            "steps grouped by length: %.1f%% of the tokens are padding (%.1f%% without)",
            100 * padding_fraction(self.lengths, grouped, per_device),
            100 * padding_fraction(self.lengths, plain, per_device),
        )

    def _micro_step(self, batch: dict, unreadable: list[str]) -> None:
        if "attention_mask" in batch:  # a text model's batch: count its tokens
            self.window.tokens += int(batch["attention_mask"].sum())
        self.window.unreadable += unreadable
        with self.accelerator.accumulate(self.model):
            # Compact samples cross as integers (pinned, asynchronously) and become float32 on the device.
            on_device = send_to_device(batch, self.accelerator.device, non_blocking=True)
            loss = self.model(**self.train_set.on_device(on_device)).loss
            self.accelerator.backward(loss)
            if self.accelerator.sync_gradients and self.config.max_grad_norm > 0:
                norm = self.accelerator.clip_grad_norm_(self.parameters, self.config.max_grad_norm)
                self.grad_norm = None if norm is None else float(norm)  # None: DeepSpeed clips in its step
            self.optimizer.step()
            self.optimizer.zero_grad()
        self.window.loss_sum += loss.detach().float()
        self.window.micro_batches += 1

    def _after_step(self, stop: PreemptionFlag) -> bool:
        """Log and checkpoint after optimizer step ``state.step``; True when training should stop.

        Every checkpoint comes right after a log, so a resumed run logs the same windows as an uninterrupted one.
        """
        step, config = self.state.step, self.config
        epoch_end = step % self.steps_per_epoch == 0
        last = step == self.total_steps
        # Read once and agreed on: a signal arriving after this read is acted on at the next step (or by
        # the caller, after the last one).
        self.stopped_by = self._signal_anywhere(stop)
        periodic = config.save_every_n_steps is not None and step % config.save_every_n_steps == 0
        save = periodic or (epoch_end and config.save_at_epoch_end) or last or self.stopped_by is not None
        if save or step % config.log_every_n_steps == 0 or epoch_end:
            self._log()
        if save:
            self.last_checkpoint = self.checkpointer.save(self.state)
            if self.metrics is not None:  # the main process
                try:
                    self.metrics.plot()
                except Exception as error:  # a picture never costs the run (the other processes wait at the next step)
                    log.warning("loss_curve.png not drawn: %s", error)
        return last or self.stopped_by is not None

    def _signal_anywhere(self, stop: PreemptionFlag) -> signal.Signals | None:
        """The signal any process received (None: none), so that all of them checkpoint and stop together."""
        received = self.accelerator.gather(torch.tensor([stop.signum or 0], device=self.accelerator.device))
        signum = int(received.max())
        return signal.Signals(signum) if signum else None

    def _log(self) -> None:
        """Metrics of the steps since the last log, over all processes."""
        window = self.window
        totals = torch.tensor(
            [float(window.loss_sum), window.micro_batches, window.tokens],
            dtype=torch.float64,
            device=self.accelerator.device,
        )
        loss_sum, micro_batches, tokens = self.accelerator.reduce(totals, reduction="sum").tolist()
        unreadable = [study for ids in gather_object([window.unreadable]) for study in ids]
        self.state.tokens += int(tokens)
        self.state.unreadable += unreadable
        if unreadable and self.accelerator.is_main_process:
            log.warning("unreadable studies (each replaced by the next study): %s", ", ".join(unreadable))
        metrics = {
            "loss": loss_sum / max(micro_batches, 1),
            "lr": self.scheduler.get_last_lr()[0],
            "epoch": self.state.step / self.steps_per_epoch,
            **self.clock.rates(window.steps * self.batching.effective, int(tokens)),
            "unreadable_studies": len(self.state.unreadable),
        }
        if self.deepspeed:
            self.grad_norm = self.model.get_global_grad_norm()
        if self.grad_norm is not None:
            metrics["grad_norm"] = float(self.grad_norm)
        if torch.cuda.is_available():
            metrics["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        self.window = _Window(self.accelerator.device)
        self.last_metrics = metrics
        self.bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}")
        if self.metrics is not None:
            self.metrics.log(metrics, self.state.step)


class _Window:
    """What this process consumed since the last log."""

    def __init__(self, device: torch.device):
        self.loss_sum = torch.zeros((), device=device)  # on the device: no synchronisation per micro-batch
        self.micro_batches = 0
        self.tokens = 0
        self.steps = 0
        self.unreadable: list[str] = []
