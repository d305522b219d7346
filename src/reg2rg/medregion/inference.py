"""A trained MedRegion-CT model outside its training run: rebuilt from a checkpoint, reporting on a study folder.

    settings = encoder_settings(checkpoint)                 # None: not a MedRegion-CT checkpoint
    model = load_medregion_model(checkpoint)
    sample = study_sample(read_study_folder(Path("data/medregion_testbed/valid/valid_0000")), settings)
    [report] = generate_reports(model, [sample])            # {"text", "regions": {region: report}}

A study folder has the testbed's layout (``reg2rg.medregion.sources.read_study_folder``). Its features come from
the slice encoder the run cached its studies with (the checkpoint records the run's data settings), so the model
sees what it was trained on.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from reg2rg.medregion.features import EncoderSettings, SliceEncoder, study_features
from reg2rg.medregion.model import MedRegionCT
from reg2rg.medregion.sources import SourceStudy
from reg2rg.models.checkpoint import checkpoint_files, load_weights, read_config, trained_data_section, verify_digests
from reg2rg.text.tokenizer import load_tokenizer


def encoder_settings(directory: str | Path) -> EncoderSettings | None:
    """The slice encoder the checkpoint's run cached its studies with; None for a checkpoint of another family."""
    data = trained_data_section(directory) or {}
    return EncoderSettings(**data["slice_encoder"]) if "slice_encoder" in data else None


def load_medregion_model(directory: str | Path, device: str = "cpu") -> MedRegionCT:
    """The checkpoint's model (digests checked), in eval mode."""
    directory = Path(directory)
    verify_digests(directory, checkpoint_files(directory))
    if encoder_settings(directory) is None:
        raise ValueError(f"{directory}: its run's data settings name no slice encoder; not a MedRegion-CT checkpoint")
    config = {**read_config(directory), "init_from": None}  # the weights below replace any earlier stage's
    model = MedRegionCT(**config, tokenizer=load_tokenizer(str(directory)))
    load_weights(model, directory)
    return model.to(device).eval()


@lru_cache(maxsize=1)
def slice_encoder(settings: EncoderSettings) -> SliceEncoder:
    """The frozen slice encoder, built once per settings (a Rad-DINO folder loads once)."""
    return settings.build()


def study_sample(study: SourceStudy, settings: EncoderSettings) -> dict[str, Any]:
    """A study as the model reads it: its features, attributes and (where it has them) its region reports."""
    features = study_features(slice_encoder(settings), study.volume.array, study.region_masks, settings.volume_shape)
    return {
        "study_id": study.study_id,
        "region_reports": study.region_reports,
        "attributes": study.attributes,
        **features.tensors(),
    }


def generate_reports(model: MedRegionCT, samples: list[dict[str, Any]], max_new_tokens: int = 256) -> list[dict]:
    """Greedy reports of ``samples``: [{"text", "regions": {region: report}}]."""
    batch = model.collator(inference=True)(samples)
    device = next(model.parameters()).device
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    return model.generate(batch, max_new_tokens=max_new_tokens)
