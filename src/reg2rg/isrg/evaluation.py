"""Click-by-click evaluation: DSC and HD95 after each of N simulated clicks, attribute accuracy after each click,
per lesion type, against the majority baseline."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .clicks import centre_click, lesion_at_clicks
from .data import LesionStudy, lesion_sample
from .interactive import ClickTrainedModel
from .metrics import dice, hd95
from .prompts import NEGATIVE, POSITIVE


def evaluate_clicks(model: ClickTrainedModel, studies: Sequence[LesionStudy], clicks: int) -> list[dict]:
    """One record per study: {"study_id", "lesion_type", "dsc": [per click], "hd95": [...], "predicted":
    [[5 class indices] per click], "attributes": [5 true classes]}. Click 1 is the deepest lesion voxel; each
    next click is the deepest voxel of the previous mask's errors (``clicks.centre_click``). The mask scored is
    the one a session shows: the predicted parts that hold a positive click (``clicks.lesion_at_clicks``)."""
    model.eval()
    device = next(model.parameters()).device
    records = []
    with torch.no_grad():
        for study in studies:
            sample = lesion_sample(study, model.crop_size)
            target = sample["mask"].numpy()
            features = model.encode(sample["image"][None].to(device))
            prediction = np.zeros_like(target)
            points, labels, previous = [], [], None
            record = {"study_id": study.study_id, "lesion_type": study.lesion_type, "dsc": [], "hd95": []}
            record |= {"predicted": [], "attributes": [int(a) for a in study.attributes]}
            for _ in range(clicks):
                point, positive = centre_click(prediction, target)
                points.append(point)
                labels.append(POSITIVE if positive else NEGATIVE)
                logits, attribute_logits = model.decode(
                    features, torch.tensor([points], device=device), torch.tensor([labels], device=device), previous
                )
                previous = logits
                positive_points = [p for p, label in zip(points, labels) if label == POSITIVE]
                prediction = lesion_at_clicks(logits[0].cpu().numpy() > 0, positive_points)
                record["dsc"].append(dice(prediction, target))
                record["hd95"].append(hd95(prediction, target, study.spacing))
                record["predicted"].append([int(x[0].argmax()) for x in attribute_logits])
            records.append(record)
    return records


def per_click_means(records: list[dict], key: str) -> list[float]:
    """The mean over studies of ``key`` ("dsc" / "hd95") at each click; an infinite HD95 (empty prediction)
    is left out of its mean."""
    values = np.array([r[key] for r in records], dtype=np.float64)  # (studies, clicks)
    return [
        float(np.mean(column[np.isfinite(column)])) if np.isfinite(column).any() else float("inf")
        for column in values.T
    ]
