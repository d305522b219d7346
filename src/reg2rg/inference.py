"""Batched report generation for a dataset split into the official predictions CSV.

Columns: ``AccNum, GT_combined_report, Pred_combined_report`` (region prefixes kept, as in
the authors' files; a model trained without RRA is given its references without them, as it
was trained). Studies are generated longest prompt first (most regions; the split's order among
equals), so a batch pads little and one that does not fit in memory fails at the start. Rows are
appended in that order batch by batch and flushed, so an interrupted run resumes where it stopped:
studies already in the CSV are skipped, and a last line cut off by a crash is dropped. Once every
study is in, the CSV is rewritten in the split's order. The generation settings, whether LoRA was
merged, the data, the split and the checkpoint (with a digest of its weights) go to
``<csv>.settings.json`` beside it; a CSV begun otherwise, or without that file, is not continued.
LoRA is merged into the LLM's weights while generating (``merge_lora``; restored exactly afterwards).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from reg2rg.files import atomic_write_bytes
from reg2rg.models.lora_merge import lora_layers, merged_lora

log = logging.getLogger(__name__)

COLUMNS = ("AccNum", "GT_combined_report", "Pred_combined_report")


def _finished_ids(path: Path) -> set[str]:
    """Study ids already written; truncates a last row that a crash left without its newline."""
    if not path.is_file():
        return set()
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
        log.warning("%s: dropped an incomplete last row left by an interrupted run", path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames and tuple(reader.fieldnames) != COLUMNS:
            raise ValueError(f"{path}: columns {reader.fieldnames} are not {list(COLUMNS)}; choose another output file")
        return {row["AccNum"] for row in reader}


def _sidecar(output: Path) -> Path:
    return Path(f"{output}.settings.json")


# Recorded for the reader, not compared: where the checkpoint was, where it ran, and the counts.
UNCOMPARED = ("checkpoint", "device", "studies", "resumed_with")


def _began_otherwise(output: Path, identity: Mapping[str, Any]) -> str | None:
    """Why the CSV at ``output`` cannot be continued by the generation ``identity`` (None: it can)."""
    if not output.is_file() or output.stat().st_size == 0:
        return None
    try:
        before = json.loads(_sidecar(output).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no {_sidecar(output).name} says how it was made"
    except ValueError:
        return f"{_sidecar(output).name} is unreadable"
    now = json.loads(json.dumps(identity, default=str))
    changed = [key for key in now if before.get(key) != now[key]]
    return f"{', '.join(changed)} changed, see {_sidecar(output).name}" if changed else None


def generate_predictions(
    model,
    dataset,
    output: str | Path,
    batch_size: int = 4,
    num_workers: int = 0,
    settings: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    restart_if_changed: bool = False,
    merge_lora: bool = True,
) -> Path:
    """Generate a report for every study of ``dataset`` (canonical region order) into ``output``.

    ``settings`` are ``Reg2RG.generate`` options (greedy by default); ``metadata`` (checkpoint,
    weights digest, data, split) is recorded in the sidecar file with them. A CSV begun with other
    settings, weights, data or split is an error, or with ``restart_if_changed`` is begun afresh.
    ``merge_lora``: generate with the LoRA weights merged into the LLM (faster; bf16 rounding moves
    some tokens), recorded in the sidecar for a model with LoRA.
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    settings = dict(settings or {})
    lora = {"lora_merged": merge_lora} if lora_layers(model) else {}
    metadata = {"split": dataset.split, **lora, **(metadata or {})}
    identity = {"settings": settings, **{k: v for k, v in metadata.items() if k not in UNCOMPARED}}
    reason = _began_otherwise(output, identity)
    if reason and not restart_if_changed:
        raise ValueError(f"{output} was begun by another generation ({reason}); remove it or choose another output")
    if reason:
        log.warning("%s was begun by another generation (%s): starting it afresh", output, reason)
        output.unlink()
    done = _finished_ids(output)
    todo = [i for i, entry in enumerate(dataset.entries) if entry["study_id"] not in done]
    sidecar = {"settings": settings, "checkpoint": None, **metadata, "studies": len(dataset), "resumed_with": len(done)}
    atomic_write_bytes(_sidecar(output), json.dumps(sidecar, indent=2, default=str).encode())
    if not todo:
        log.info("%s already holds all %d studies", output, len(dataset))
        _write_in_split_order(output, [entry["study_id"] for entry in dataset.entries])
        return output
    collator = model.collator()
    todo.sort(key=lambda index: -len(collator.prompt_ids(len(dataset.region_order(index)))))  # stable
    loader = DataLoader(Subset(dataset, todo), batch_size=batch_size, num_workers=num_workers, collate_fn=list)
    new_file = not output.is_file() or output.stat().st_size == 0
    with (
        merged_lora(model) if lora.get("lora_merged") else nullcontext(),
        open(output, "a", newline="", encoding="utf-8") as f,
        tqdm(total=len(todo), desc="generate", unit="study") as bar,
    ):
        writer = csv.writer(f)
        if new_file:
            writer.writerow(COLUMNS)
        for samples in loader:
            with torch.inference_mode():
                generations = model.generate_reports(samples, **settings)
            for sample, generation in zip(samples, generations):
                writer.writerow((sample["study_id"], collator.target(sample), generation.text))
            f.flush()
            os.fsync(f.fileno())
            bar.update(len(samples))
    _write_in_split_order(output, [entry["study_id"] for entry in dataset.entries])
    return output


def _write_in_split_order(path: Path, study_ids: Sequence[str]) -> None:
    """Rewrite the CSV at ``path`` with its rows in the order of ``study_ids`` (others last, as they were)."""
    with open(path, newline="", encoding="utf-8") as f:
        header, *rows = csv.reader(f)
    position = {study_id: index for index, study_id in enumerate(study_ids)}
    ordered = sorted(rows, key=lambda row: position.get(row[0], len(position)))
    if ordered != rows:
        text = io.StringIO()
        csv.writer(text).writerows([header, *ordered])
        atomic_write_bytes(path, text.getvalue().encode("utf-8"))


DEFAULT_BATCH_SIZE = 4  # generate.py's batch for a checkpoint that records no evaluation batch size


def data_for_checkpoint(checkpoint: str | Path, given=None, overrides: Sequence[str] = ()):
    """The data config to generate with for ``checkpoint``: ``given`` (``data=...``) holding to the data settings
    the checkpoint's model was trained with (``TRAINED_DATA_KEYS``), or that whole data section when none is given.

    A given setting that differs is replaced by the trained one (logged); one that ``overrides`` (the command
    line) set explicitly is refused, with what differs. The trained section is the checkpoint's record, or for a
    checkpoint saved without it, its run folder's config.yaml.
    """
    from omegaconf import OmegaConf

    from reg2rg.models.checkpoint import run_config_path, trained_data_section, trained_data_settings

    trained = trained_data_section(checkpoint)
    if given is None:
        if trained is None:
            raise ValueError(
                f"no data=... given and {run_config_path(checkpoint)} (the config of the run that wrote {checkpoint}) "
                "does not exist, nor does the checkpoint record its data settings; name the data: data=synthetic, "
                "data=radgenome data.root=..., data=ctrg ... or data=manifest ..."
            )
        return OmegaConf.create(trained)
    if trained is None:
        log.warning("%s records no data settings: generating with those of data=%s as given", checkpoint, given.name)
        return given
    recorded, now = trained_data_settings(trained), trained_data_settings(given)
    differing = {key: now.get(key) for key in recorded if now.get(key) != recorded[key]}
    explicit = _overridden_data_keys(overrides)
    refused = [
        key
        for key in differing
        if any(o == key or key.startswith(f"{o}.") or o.startswith(f"{key}.") for o in explicit)
    ]
    if refused:
        trained_values = ", ".join(f"data.{key}={recorded[key]}" for key in refused)
        given_values = ", ".join(f"data.{key}={differing[key]}" for key in refused)
        raise ValueError(
            f"{checkpoint} holds a model trained with {trained_values}; the override {given_values} "
            "contradicts it: drop the override (the checkpoint's setting is used), or use a checkpoint "
            "trained so"
        )
    data = OmegaConf.create(OmegaConf.to_container(given, resolve=True))
    for key, value in differing.items():
        log.info(
            "data.%s=%s, as the checkpoint's model was trained (data=%s says %s)", key, recorded[key], given.name, value
        )
        OmegaConf.update(data, key, recorded[key], merge=False)
    return data


def _overridden_data_keys(overrides: Sequence[str]) -> list[str]:
    """The ``data.*`` keys (without ``data.``) that command-line overrides set."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys = [o.key_or_group for o in OverridesParser.create().parse_overrides(list(overrides))]
    return [key.removeprefix("data.") for key in keys if key.startswith("data.")]


def generate_from_config(cfg, overrides: Sequence[str] = ()) -> Path:
    """``scripts/generate.py``: checkpoint + data config + split -> predictions CSV.

    Data: ``data_for_checkpoint`` (``overrides``: the command line's). Decoding: ``cfg.decoding`` and
    ``cfg.batch_size`` when set, else those of the checkpoint's run's evaluation (its fidelity mode's);
    ``cfg.generation`` options that are not null go over the run's (``reg2rg.models.decoding``).
    ``cfg.merge_lora`` and ``cfg.seed`` likewise (the seed matters to sampling decoders only).
    """
    from accelerate.utils import set_seed
    from omegaconf import OmegaConf

    from reg2rg.data.dataset import dataset_from_config
    from reg2rg.data.prepare import prepare_dataset
    from reg2rg.models import from_pretrained
    from reg2rg.models.checkpoint import checkpoint_record, read_trained_with
    from reg2rg.models.decoding import decoding_options

    data = data_for_checkpoint(cfg.checkpoint, cfg.get("data"), overrides)
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = from_pretrained(cfg.checkpoint, device=device, trust_remote_code=cfg.trust_remote_code)
    prepare_dataset(data, [cfg.split], workers=cfg.num_workers or 1, synthesize=False)  # generate reads what is there
    dataset = dataset_from_config(data, cfg.split)
    trained = read_trained_with(cfg.checkpoint).get("evaluation") or {}
    given = {k: v for k, v in OmegaConf.to_container(cfg.generation, resolve=True).items() if v is not None}
    settings, used = decoding_options(
        cfg.get("decoding") or trained.get("decoding", "greedy"),
        {**(trained.get("generation") or {}), **given},
        model.config["llm"]["name_or_path"],
    )
    batch_size = cfg.batch_size or trained.get("batch_size") or DEFAULT_BATCH_SIZE
    merge_lora = trained.get("merge_lora", True) if cfg.get("merge_lora") is None else cfg.merge_lora
    seed = trained.get("seed", 0) if cfg.get("seed") is None else cfg.seed
    log.info("%s; batch size %d; seed %d", used, batch_size, seed)
    set_seed(seed)  # a sampling decoder draws the same reports again
    metadata = {
        **checkpoint_record(cfg.checkpoint),
        "data": data.name,
        "split": cfg.split,
        "device": device,
        "seed": seed,
    }
    return generate_predictions(
        model,
        dataset,
        cfg.output,
        batch_size,
        cfg.num_workers,
        settings,
        metadata,
        merge_lora=merge_lora,
    )
