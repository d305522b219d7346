"""A study from the cache with the sample a model takes, and its grounded picture in one call."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reg2rg.visualize.figure import GroundedFigure, grounded_figure
from reg2rg.visualize.page import save_grounded_report

if TYPE_CHECKING:
    from reg2rg.data.cache import CachedStudy
    from reg2rg.data.preprocessing import PreprocessConfig


def open_study(
    cache_dir: str | Path,
    study: int | str = 0,
    split: str = "valid",
    preprocessing: PreprocessConfig | Mapping[str, Any] | None = None,
    lfd: bool | None = None,
    checkpoint: str | Path | None = None,
    region_set: str | None = None,
) -> tuple[CachedStudy, dict]:
    """A cached study (by position in the split or by id) and its model sample, regions in canonical order.

    With ``checkpoint`` the sample is made as the checkpoint's model was trained (its recorded LFD setting,
    preprocessing and region set); a given ``preprocessing``, ``lfd`` or ``region_set`` that contradicts them
    is refused. Otherwise (and for a checkpoint that records none) ``preprocessing`` defaults to the parameters
    the cache's precomputed arrays were made with, ``lfd`` to True and ``region_set`` to "reported". Close the
    study (``study.close()``) when done with it.
    """
    from reg2rg.data.build import read_index
    from reg2rg.data.cache import CachedStudy
    from reg2rg.data.dataset import load_sample, usable_regions
    from reg2rg.data.preprocessing import PreprocessConfig

    given = {
        "lfd": lfd,
        "region_set": region_set,
        "preprocessing": asdict(preprocessing) if isinstance(preprocessing, PreprocessConfig) else preprocessing,
    }
    settings = _trained_settings(checkpoint, {key: value for key, value in given.items() if value is not None})
    cache_dir = Path(cache_dir)
    entries = read_index(cache_dir, split)
    if isinstance(study, str):
        position = next((i for i, e in enumerate(entries) if e["study_id"] == study), None)
        if position is None:
            raise ValueError(f"study {study!r} is not in {cache_dir / (split + '.jsonl')}")
    else:
        position = int(study)
        if not -len(entries) <= position < len(entries):
            raise ValueError(f"study {study} is out of range: {split} has {len(entries)} studies")
    entry = entries[position]
    opened = CachedStudy(cache_dir / entry["file"])
    try:
        preprocessing = settings.get("preprocessing")
        if preprocessing is None:
            params = opened.meta.get("precomputed")
            if params is None:
                raise ValueError(f"{opened.path} has no precomputed arrays: pass preprocessing=... as in training")
            preprocessing = {**params, "foreground_hu": opened.meta["foreground_hu"]}
        regions = usable_regions(entry, settings.get("region_set", "reported"))  # as CachedRegionDataset orders them
        if not regions:
            raise ValueError(f"study {entry['study_id']} has no region with both a mask and a report")
        sample = load_sample(opened, entry, PreprocessConfig(**preprocessing), regions, settings.get("lfd", True))
    except BaseException:
        opened.close()
        raise
    return opened, sample


def _trained_settings(checkpoint: str | Path | None, given: Mapping[str, Any]) -> dict[str, Any]:
    """The data settings to make a sample with: the checkpoint's (refusing a ``given`` one that differs), or ``given``."""
    from reg2rg.models.checkpoint import TRAINED_DATA_KEYS, trained_data_section, trained_data_settings

    trained = trained_data_section(checkpoint) if checkpoint is not None else None
    if trained is None:
        return dict(given)
    recorded, asked = trained_data_settings(trained), trained_data_settings(given)
    differing = [
        f"{key}={asked[key]} (trained: {recorded.get(key)})" for key in asked if recorded.get(key) != asked[key]
    ]
    if differing:
        raise ValueError(
            f"{checkpoint} holds a model trained with other data settings than asked: {', '.join(differing)}; "
            "leave them out to use the checkpoint's"
        )
    return {key: trained[key] for key in TRAINED_DATA_KEYS if trained.get(key) is not None}


def render_study(
    cache_dir: str | Path,
    study: int | str = 0,
    checkpoint: str | Path | None = None,
    *,
    split: str = "valid",
    png_path: str | Path | None = None,
    html_path: str | Path | None = None,
    max_new_tokens: int = 512,
    device: str | None = None,
    colours: int | None = None,
    **figure_options: Any,
) -> GroundedFigure:
    """A cached study's grounded picture in one call (``scripts/render_example.py``).

    With ``checkpoint`` the reports are the model's (greedy), made from a sample with the data settings
    the model was trained with; without one they are the study's reference reports, and the caption says
    so. Written to ``png_path`` / ``html_path`` when given; ``figure_options`` go to ``grounded_figure``.
    """
    opened, sample = open_study(cache_dir, study, split, checkpoint=checkpoint)
    try:
        truth = sample["regions"]
        if checkpoint is None:
            reports: Any = dict(zip(truth, sample["region_reports"]))
            first_index = 0
            caption = "Reference (ground-truth) region reports of the study, not model output"
        else:
            import torch

            from reg2rg.models import from_pretrained

            model = from_pretrained(checkpoint, device=device or ("cuda" if torch.cuda.is_available() else "cpu"))
            [reports] = model.generate_reports([sample], max_new_tokens=max_new_tokens)
            first_index = model.template.first_region_index
            caption = f"Model output: {Path(checkpoint).name}, greedy decoding"
        figure_options.setdefault("caption", caption)
        figure = grounded_figure(opened, reports, truth_regions=truth, first_index=first_index, **figure_options)
    finally:
        opened.close()
    if png_path is not None:
        save_grounded_report(figure, png_path, html_path, colours=colours)
    return figure
