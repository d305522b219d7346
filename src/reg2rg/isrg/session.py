"""An interactive session: a trained model, one CT volume, and a clinician's clicks on a lesion.

    from reg2rg.isrg.session import InteractiveSession, load_isrg_model
    model = load_isrg_model("outputs/train/isrg_demo/<run>/checkpoints/checkpoint-<step>")
    session = InteractiveSession(model, volume_hu, affine)   # volume_hu (z, y, x) HU; affine maps (z, y, x, 1)
    result = session.click(20, 24, 24)                         # to RAS millimetres
    result.mask, result.attributes, result.report
    session.click(22, 30, 24, positive=False); session.undo(); session.reset()
    session.export_mask("lesion.nii.gz"); session.export_report("lesion.json")

The model sees a cube of ``crop_size`` voxels centred on the first click (padded with air where it leaves the
volume); later clicks must fall inside that cube (``reset()`` starts a new lesion). Each click runs the model
on every click so far, with the previous mask as its dense prompt. The mask is the predicted lesion that
holds a positive click: a click on background gives an empty mask, no attributes (``{}``) and a report that
says no lesion was found.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from ..files import atomic_path, atomic_write_bytes
from ..models.checkpoint import MODULES, checkpoint_files, read_config, verify_digests
from ..models.pretrained import mismatch_report
from .attributes import ATTRIBUTES
from .baselines import UNetBaselines
from .clicks import lesion_at_clicks
from .crops import AIR_HU, crop, normalize_hu
from .interactive import ClickTrainedModel
from .model import ISRGModel
from .prompts import NEGATIVE, POSITIVE
from .report import render_report

NO_LESION = "No lesion found at the clicked point."


MODEL_KINDS = {model.kind: model for model in (ISRGModel, UNetBaselines)}


def load_isrg_model(checkpoint_dir: str | Path, device: str = "cpu") -> ClickTrainedModel:
    """An ISRG-CT model (or its baselines) from a checkpoint folder of a training run (safetensors; digests
    checked), in eval mode."""
    directory = Path(checkpoint_dir)
    verify_digests(directory, checkpoint_files(directory))
    config = dict(read_config(directory))
    kind = config.pop("kind", ISRGModel.kind)
    try:
        model = MODEL_KINDS[kind](**config)
    except (KeyError, TypeError) as error:
        raise ValueError(f"{directory}: not an ISRG-CT checkpoint ({error!r})") from error
    weights = load_file(directory / MODULES)
    problems = mismatch_report(model.state_dict(), weights)
    if problems:
        raise ValueError(f"{directory / MODULES}: does not match the ISRG-CT model of its config: {problems}")
    model.load_state_dict(weights)
    return model.to(device).eval()


@dataclass
class ClickResult:
    """The state after a click: ``mask`` bool (z, y, x) of the whole volume, ``attributes`` {attribute:
    {"label": class, "probabilities": {class: p}}} ({} without a lesion), ``report`` (Table 1 template)."""

    mask: np.ndarray
    attributes: dict[str, dict[str, Any]]
    report: str
    clicks: list[dict[str, Any]] = field(default_factory=list)
    logits: torch.Tensor | None = field(default=None, repr=False)  # (1, S, S, S): the next click's dense prompt


class InteractiveSession:
    def __init__(self, model: ClickTrainedModel, volume_hu: np.ndarray, affine: np.ndarray):
        volume = np.asarray(volume_hu)
        if volume.ndim != 3 or not np.issubdtype(volume.dtype, np.number):
            raise ValueError(f"volume_hu must be a 3D numeric array (z, y, x); got shape {volume.shape}")
        if not np.isfinite(volume).all():
            raise ValueError("volume_hu holds NaN or infinite values")
        affine = np.asarray(affine, dtype=np.float64)
        if affine.shape != (4, 4) or not np.isfinite(affine).all():
            raise ValueError(f"affine must be a finite 4 x 4 matrix; got shape {affine.shape}")
        self.model = model.eval()
        self.volume = volume.astype(np.float32)
        self.affine = affine
        self._results: list[ClickResult] = []
        self._origin: np.ndarray | None = None  # volume index of the crop's voxel (0, 0, 0)
        self._features = None  # model.encode(crop), kept for every click

    @property
    def result(self) -> ClickResult | None:
        """The current result (None before the first click)."""
        return self._results[-1] if self._results else None

    def click(self, z: int, y: int, x: int, positive: bool = True) -> ClickResult:
        """Add a click at voxel (z, y, x) of the volume; positive: on the lesion, negative: not on it."""
        if not all(float(v).is_integer() for v in (z, y, x)):
            raise ValueError(f"click ({z}, {y}, {x}): voxel indices must be whole numbers")
        z, y, x = int(z), int(y), int(x)
        point = np.array([z, y, x])
        if not np.all((point >= 0) & (point < self.volume.shape)):
            raise ValueError(f"click ({z}, {y}, {x}) is outside the volume of shape {self.volume.shape} (z, y, x)")
        size = self.model.crop_size
        if self._origin is None:
            cube, self._origin = crop(self.volume, point, size, AIR_HU)
            image = torch.from_numpy(normalize_hu(cube))[None, None].to(self._device)
            with torch.no_grad():
                self._features = self.model.encode(image)
        local = point - self._origin
        if not np.all((local >= 0) & (local < size)):
            low, high = self._origin, self._origin + size - 1
            raise ValueError(
                f"click ({z}, {y}, {x}) is outside the {size}-voxel cube of this lesion, from {tuple(low)} to "
                f"{tuple(high)}; call reset() to start a new lesion there"
            )
        clicks = [*(self.result.clicks if self.result else []), {"z": z, "y": y, "x": x, "positive": bool(positive)}]
        self._results.append(self._predict(clicks))
        return self.result

    def undo(self) -> ClickResult | None:
        """Drop the last click; the result before it (None when no click is left)."""
        if self._results:
            self._results.pop()
        if not self._results:
            self.reset()
        return self.result

    def reset(self) -> None:
        """Forget every click (a new lesion can be clicked anywhere)."""
        self._results, self._origin, self._features = [], None, None

    def export_mask(self, path: str | Path) -> Path:
        """The current mask as a NIfTI file (uint8, 1 = lesion) with the volume's affine: it reloads with nibabel
        onto the volume's grid. An empty mask before the first click."""
        import nibabel as nib

        mask = self.result.mask if self.result else np.zeros(self.volume.shape, bool)
        path = Path(path)
        with atomic_path(path) as temporary:
            # nibabel picks the format from the name's suffix; keep it on the temporary name
            named = temporary.with_name(temporary.name + "".join(path.suffixes))
            nib.save(nib.Nifti1Image(mask.astype(np.uint8), self.affine), named)
            named.replace(temporary)
        return path

    def export_report(self, path: str | Path) -> Path:
        """{"clicks": [{z, y, x, positive}], "attributes": ..., "report": str} as JSON."""
        result = self.result
        record = {
            "clicks": result.clicks if result else [],
            "attributes": result.attributes if result else {},
            "report": result.report if result else "",
        }
        atomic_write_bytes(path, (json.dumps(record, indent=2) + "\n").encode("utf-8"))
        return Path(path)

    @property
    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _predict(self, clicks: list[dict[str, Any]]) -> ClickResult:
        local = [(c["z"], c["y"], c["x"]) - self._origin for c in clicks]
        points = torch.tensor(np.array(local), dtype=torch.long, device=self._device)[None]
        labels = torch.tensor([[POSITIVE if c["positive"] else NEGATIVE for c in clicks]], device=self._device)
        previous = self.result.logits if self.result else None
        with torch.no_grad():
            logits, attribute_logits = self.model.decode(self._features, points, labels, previous)
        cube = lesion_at_clicks(logits[0].cpu().numpy() > 0, [p for p, c in zip(local, clicks) if c["positive"]])
        mask = np.zeros(self.volume.shape, bool)
        low = np.maximum(self._origin, 0)
        high = np.minimum(self._origin + self.model.crop_size, self.volume.shape)
        mask[tuple(slice(a, b) for a, b in zip(low, high))] = cube[
            tuple(slice(a - o, b - o) for a, b, o in zip(low, high, self._origin))
        ]
        if not mask.any():
            return ClickResult(mask, {}, NO_LESION, clicks, logits)
        attributes = {}
        for (name, classes), values in zip(ATTRIBUTES.items(), attribute_logits):
            probabilities = values[0].softmax(-1).cpu().tolist()
            attributes[name] = {
                "label": classes[int(np.argmax(probabilities))],
                "probabilities": dict(zip(classes, probabilities)),
            }
        report = render_report({name: value["label"] for name, value in attributes.items()})
        return ClickResult(mask, attributes, report, clicks, logits)
