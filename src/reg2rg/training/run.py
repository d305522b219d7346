"""``train(cfg)``: one training run from a composed ``configs/train.yaml``, then the held-out evaluation.

From a notebook::

    from hydra import compose, initialize_config_dir
    with initialize_config_dir(config_dir="/path/to/reg2rg/configs", version_base="1.3"):
        cfg = compose("train", overrides=["experiment=demo", "output_dir=outputs/notebook"])
    result = reg2rg.training.train(cfg)
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

from accelerate.utils import set_seed
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from reg2rg.files import atomic_write_bytes

from .batching import resolve_batching
from .checkpointing import CHECKPOINTS, find_checkpoint
from .config import build_model, build_tokenizer, prepare_data, trained_with
from .deepspeed_config import deepspeed_for
from .distributed import accelerator_session, from_main_process, shared_path, world_size, write_deepspeed_config
from .family import family_for
from .preemption import preemption_flag
from .startup import TRAIN_SPLIT, output_dir
from .tracking import MetricsLog
from .trainer import Trainer, TrainerConfig

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
DEEPSPEED_FILE = "deepspeed.json"


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train (resuming when ``cfg.resume`` says so), checkpoint, and evaluate on ``cfg.evaluation.split``.

    Returns ``run_dir``, ``checkpoint`` (the last one written; the one resumed from if no step was left),
    ``step``, ``train_metrics`` (the last logged), ``stopped_by`` (the signal's name, or None),
    ``exit_code`` (0, or 128 + the signal number) and ``metrics`` (the evaluation's metrics.json content
    on the main process, else None).
    """
    family = family_for(cfg)
    trainer_config: TrainerConfig = instantiate(cfg.trainer)
    batching = resolve_batching(
        trainer_config.per_device_batch_size,
        trainer_config.gradient_accumulation_steps,
        trainer_config.effective_batch_size,
        world_size(),
    )
    selected = OmegaConf.to_container(cfg.deepspeed, resolve=True) if cfg.deepspeed is not None else None
    deepspeed = deepspeed_for(selected, batching.world_size)
    if selected is not None and deepspeed is None:
        log.info("%d process(es): training without DeepSpeed (deepspeed=zero2 keeps it)", batching.world_size)
    with accelerator_session(
        batching, trainer_config.mixed_precision, trainer_config.max_grad_norm, deepspeed
    ) as accelerator:
        main = accelerator.is_main_process
        run_dir = shared_path(accelerator, output_dir(cfg))
        resolved = OmegaConf.to_container(cfg, resolve=True)
        if main:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_deepspeed_config(accelerator, run_dir / DEEPSPEED_FILE)
            log.info(
                "run folder %s; %d process(es) x %d per device x %d accumulation = effective batch %d",
                run_dir,
                batching.world_size,
                batching.per_device,
                batching.accumulation,
                batching.effective,
            )
        prepare_data(cfg, accelerator, family)
        train_set = family.dataset(cfg, TRAIN_SPLIT, True)
        # the main process picks (file listings may lag on shared storage) and tells the others
        resume_dir = from_main_process(
            accelerator, find_checkpoint(cfg.resume, run_dir / CHECKPOINTS) if main else None
        )
        tokenizer = build_tokenizer(cfg, family, train_set, run_dir, resume_dir, accelerator)
        set_seed(cfg.seed)
        model = build_model(cfg, tokenizer)
        metrics = MetricsLog(run_dir, cfg.logger.wandb, cfg.name, resolved) if main else None
        try:
            trainer = Trainer(
                trainer_config,
                accelerator,
                model,
                train_set,
                batching,
                cfg.seed,
                run_dir / CHECKPOINTS,
                metrics,
                trained_with(cfg),
            )
            if resume_dir is not None:
                trainer.resume(resume_dir)
            if main:  # after the resume checks: a refused resume leaves the folder's config as it was
                save_config(resolved, run_dir)
            with preemption_flag() as stop:
                checkpoint = trainer.fit(stop) or resume_dir  # a finished run resumed: its last checkpoint
        finally:
            if metrics is not None:
                metrics.close()
    # the signal that every process stopped on; or one that came after the last step's agreement
    stopped_by = trainer.stopped_by or (signal.Signals(stop.signum) if stop else None)
    if main:
        log.info(
            "stopped at step %d of %d%s; checkpoint %s",
            trainer.state.step,
            trainer.total_steps,
            f" ({stopped_by.name})" if stopped_by else "",
            checkpoint,
        )
    result = {
        "run_dir": run_dir,
        "checkpoint": checkpoint,
        "step": trainer.state.step,
        "train_metrics": trainer.last_metrics,
        "stopped_by": stopped_by.name if stopped_by else None,
        "exit_code": 128 + stopped_by if stopped_by else 0,
        "metrics": None,
    }
    if main and cfg.evaluation.enabled and not stopped_by:
        result["metrics"] = family.evaluate(cfg, model, run_dir, checkpoint)
    return result


def save_config(resolved: dict, run_dir: Path) -> Path:
    """The settings the run goes on with, as ``config.yaml``; when a resumed run's differ (``resume`` itself, a
    longer schedule), the earlier file is kept as ``config.before-resume-<n>.yaml``."""
    path = run_dir / CONFIG_FILE
    text = OmegaConf.to_yaml(OmegaConf.create(resolved))
    if path.is_file() and path.read_text(encoding="utf-8") != text:
        suffixes = (p.stem.rsplit("-", 1)[1] for p in run_dir.glob("config.before-resume-*.yaml"))
        kept = [int(suffix) for suffix in suffixes if suffix.isdigit()]
        os.replace(path, run_dir / f"config.before-resume-{max(kept, default=0) + 1}.yaml")
    atomic_write_bytes(path, text.encode("utf-8"))
    return path
