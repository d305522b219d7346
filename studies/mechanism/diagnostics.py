"""Does a model read its images, and what do its visual tokens hold?

The probes of the mechanism study (docs/mechanism.md), run by the scripts beside this file; no part of
the reg2rg package.

``image_swap_losses``: teacher-forced loss with each study's own images against another study's.

A model that writes findings from the image pays for a swap: its loss on the true reports rises. A
model that only learnt which area each region is (and writes the same report whatever the study)
does not: both losses agree to several decimals (docs/training.md, "Why the demo's phantom is narrow").
Each study's image, texture crops and geometry masks are swapped with those of the next study that
has the same regions in the same order, so region identity stays intact and only the study changes.

``region_token_features`` + ``linear_probe``: whether a finding can be read off the tokens a region
(or the global image) hands the LLM, by logistic regression fitted on training studies and scored on
held-out ones (docs/mechanism.md: the demo's lung tokens hold no consolidation).

``input_readability``: the same probe on the inputs themselves (a region's texture crop, its geometry
mask, the global image, average- or max-pooled), before any model: how plainly the data show a finding to a
reader of one input alone (docs/mechanism.md: tuning the phantom).

``decision_scores`` + ``decision_auc``: whether the LLM's wording of a region depends on a finding.
Teacher-forced on each study's own report with the region written as normal, the log-odds of the
abnormal wording over the normal one at the first token where they part. Greedy reports show a
finding only once its log-odds cross zero; the AUC of these scores against the labels also shows a
model half-way there (0.5: the image is ignored; 1.0: every positive study scores above every negative).
``swap_region_input`` gives each study one input of another study with the other label (the region's
texture crop, its geometry mask, or the global image): the decision AUC falls where the model reads
the finding from that input, and stays where it reads it elsewhere.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from accelerate.utils import send_to_device

VISUAL_KEYS = ("image", "texture", "geometry")  # the sample fields a model sees of the study
POOLINGS = {"mean": torch.nn.functional.adaptive_avg_pool3d, "max": torch.nn.functional.adaptive_max_pool3d}


def image_swap_losses(model: Any, samples: Sequence[Mapping[str, Any]], batch_size: int = 4) -> dict[str, float]:
    """Mean teacher-forced loss of ``samples`` (canonical region order) with their own and with swapped images.

    Returns ``own``, ``swapped`` (means over the studies that found a partner) and ``studies`` (how many).
    """
    pairs = []
    for i, sample in enumerate(samples):
        partner = next(
            (
                samples[(i + k) % len(samples)]
                for k in range(1, len(samples))
                if samples[(i + k) % len(samples)]["regions"] == sample["regions"]
            ),
            None,
        )
        if partner is not None:
            pairs.append((sample, {**sample, **{key: partner[key] for key in VISUAL_KEYS}}))
    if not pairs:
        raise ValueError("image_swap_losses needs at least two studies with the same regions")
    own, swapped = zip(*pairs)
    return {
        "own": _mean_loss(model, own, batch_size),
        "swapped": _mean_loss(model, swapped, batch_size),
        "studies": len(pairs),
    }


@torch.no_grad()
def _mean_loss(model: Any, samples: Sequence[Mapping[str, Any]], batch_size: int) -> float:
    """Mean over samples of the model's loss on batches of ``batch_size`` (each batch weighted by its size)."""
    collate, device = model.collator(), next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        for start in range(0, len(samples), batch_size):
            chunk = list(samples[start : start + batch_size])
            total += float(model(**send_to_device(collate(chunk), device)).loss) * len(chunk)
    finally:
        model.train(was_training)
    return total / len(samples)


@torch.no_grad()
def region_token_features(model: Any, samples: Sequence[Mapping[str, Any]], region: str) -> np.ndarray:
    """(N, tokens * D) float32: the visual tokens of ``region`` (its texture and geometry tokens, as the
    model's switches give them) or of the global image (``region="global"``) in each sample, flattened."""
    visual = model.visual
    layout = visual.layout
    was_training = visual.training
    visual.eval()
    rows = []
    try:
        for sample in samples:
            inputs = {key: sample[key][None] if key == "image" else sample[key] for key in VISUAL_KEYS}
            tokens = visual([len(sample["regions"])], **inputs)  # (global + R * per-region, D)
            if region == "global":
                start, count = 0, layout.global_tokens
            elif region in sample["regions"]:
                count = layout.region_tokens
                start = layout.global_tokens + sample["regions"].index(region) * count
            else:
                raise ValueError(f"study {sample.get('study_id')!r} has no region {region!r}")
            if count == 0:
                raise ValueError(f"the model hands the LLM no {region} tokens (its switches turn them off)")
            rows.append(tokens[start : start + count].flatten().float().numpy())
    finally:
        visual.train(was_training)
    return np.stack(rows)


def linear_probe(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, l2: float = 1e-2
) -> dict[str, float]:
    """Accuracy of an L2-regularised logistic regression (standardised features, L-BFGS) fitted on
    ``train_x`` (N, F) -> ``train_y`` (N,) in {0, 1}: on its own data and on ``test_x``/``test_y``,
    with the majority-class accuracy of the test labels to compare against, and the AUC of its test
    scores (when the test labels hold both classes)."""
    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
    x, x_test = (torch.from_numpy((a - mean) / std).float() for a in (train_x, test_x))
    y = torch.as_tensor(train_y, dtype=torch.float32)
    weight = torch.zeros(x.shape[1], requires_grad=True)
    bias = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=500)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ weight + bias, y) + l2 * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        fit = ((x @ weight + bias > 0).float() == y).float().mean()
        scores = (x_test @ weight + bias).numpy()
    test_y = np.asarray(test_y)
    rate = float(np.mean(test_y))
    result = {"train": float(fit), "test": float(((scores > 0) == test_y).mean()), "majority": max(rate, 1 - rate)}
    if 0 < rate < 1:
        result["auc"] = decision_auc(scores, test_y)
    return result


def input_readability(
    train: Sequence[Mapping[str, Any]],
    valid: Sequence[Mapping[str, Any]],
    region: str,
    finding: str,
    pool: tuple[int, int, int] = (8, 8, 4),
    reduce: str = "mean",
) -> dict[str, float]:
    """{input: validation AUC} of a ``linear_probe`` for ``finding`` (a CT-RATE label) on each input of
    ``region`` ("texture": its crop, "geometry": its mask, "image": the global image), pooled to ``pool``
    and fitted on ``train``: how plainly one input alone shows the finding, before any model.
    ``reduce`` "mean" shows what changes a region's size or density; "max" also shows a few bright voxels
    (calcified spots) that an average dilutes."""
    y_train, y_valid = _labels(train, finding), _labels(valid, finding)
    if len(set(y_valid.tolist())) < 2:
        raise ValueError(f"the validation studies need some with and some without {finding!r}")
    if reduce not in POOLINGS:
        raise ValueError(f"reduce must be one of {sorted(POOLINGS)}, got {reduce!r}")
    return {
        part: linear_probe(
            _pooled(train, region, part, pool, reduce), y_train, _pooled(valid, region, part, pool, reduce), y_valid
        )["auc"]
        for part in VISUAL_KEYS
    }


def _pooled(
    samples: Sequence[Mapping[str, Any]], region: str, part: str, pool: tuple[int, int, int], reduce: str
) -> np.ndarray:
    """(N, prod(pool)): one input of each sample, pooled by ``reduce``."""
    rows = []
    for sample in samples:
        if region not in sample["regions"]:
            raise ValueError(f"study {sample.get('study_id')!r} has no region {region!r}")
        volume = sample["image"] if part == "image" else sample[part][sample["regions"].index(region)]  # (1, X, Y, Z)
        rows.append(POOLINGS[reduce](torch.as_tensor(volume, dtype=torch.float32), pool).flatten())
    return torch.stack(rows).numpy()


@torch.no_grad()
def decision_scores(
    model: Any, samples: Sequence[Mapping[str, Any]], region: str, normal: str, abnormal: str, batch_size: int = 4
) -> np.ndarray:
    """(N,) float: per sample, log p(abnormal's token) - log p(normal's token) where the two wordings of
    ``region`` part, teacher-forced on the sample's report (its own order) with ``region`` written ``normal``."""
    if normal == abnormal:
        raise ValueError(f"the normal and abnormal wordings of {region!r} are the same: {normal!r}")
    collate, device = model.collator(), next(model.parameters()).device
    written = []  # (sample with the normal wording, its ids, the abnormal wording's ids)
    for sample in samples:
        if region not in sample["regions"]:
            raise ValueError(f"study {sample.get('study_id')!r} has no region {region!r}")
        index = sample["regions"].index(region)
        wordings = [
            [*sample["region_reports"][:index], text, *sample["region_reports"][index + 1 :]]
            for text in (normal, abnormal)
        ]
        as_normal, as_abnormal = ({**sample, "region_reports": reports} for reports in wordings)
        written.append((as_normal, collate.encode(as_normal)[0], collate.encode(as_abnormal)[0]))
    was_training = model.training
    model.eval()
    scores = []
    try:
        for start in range(0, len(written), batch_size):
            chunk = written[start : start + batch_size]
            batch = send_to_device(collate([as_normal for as_normal, _, _ in chunk]), device)
            log_probs = model(**batch).logits.float().log_softmax(dim=-1)  # (B, L, vocabulary)
            for row, (_, ids, other) in enumerate(chunk):
                part = next(k for k, (a, b) in enumerate(zip(ids, other)) if a != b)
                scores.append(float(log_probs[row, part - 1, other[part]] - log_probs[row, part - 1, ids[part]]))
    finally:
        model.train(was_training)
    return np.array(scores)


def decision_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Probability that a positive study scores above a negative one (ties count half)."""
    labels = np.asarray(labels).astype(bool)
    positive, negative = scores[labels], scores[~labels]
    if len(positive) == 0 or len(negative) == 0:
        raise ValueError("decision_auc needs positive and negative studies")
    above = positive[:, None] - negative[None, :]
    return float((above > 0).mean() + 0.5 * (above == 0).mean())


def swap_region_input(
    samples: Sequence[Mapping[str, Any]], labels: np.ndarray, region: str, part: str
) -> list[dict[str, Any]]:
    """Copies of ``samples`` in which ``part`` ("texture" or "geometry" of ``region``, or the global "image")
    comes from the next study (cyclically) whose label differs; every other input stays the study's own."""
    if part not in VISUAL_KEYS:
        raise ValueError(f"part must be one of {VISUAL_KEYS}, got {part!r}")
    labels = np.asarray(labels)
    if len(set(labels.tolist())) < 2:
        raise ValueError("swap_region_input needs studies with both labels")
    swapped = []
    for i, sample in enumerate(samples):
        donor = next(
            samples[(i + k) % len(samples)]
            for k in range(1, len(samples))
            if labels[(i + k) % len(samples)] != labels[i]
        )
        if part == "image":
            swapped.append({**sample, "image": donor["image"]})
            continue
        rows = torch.as_tensor(sample[part]).clone()  # (R, 1, X, Y, Z)
        rows[sample["regions"].index(region)] = torch.as_tensor(donor[part])[donor["regions"].index(region)]
        swapped.append({**sample, part: rows})
    return swapped


def probe_run(
    run_dir: str, region: str, finding: str, n_train: int = 300, checkpoint: str | None = None
) -> dict[str, float]:
    """``linear_probe`` of ``finding`` (a CT-RATE label) on the ``region`` tokens of a finished run: fitted on
    its first ``n_train`` training studies, scored on its whole validation split (newest checkpoint unless
    ``checkpoint`` is given)."""
    model, found, load = _finished_run(run_dir, checkpoint)
    splits = {}
    for split, count in (("train", n_train), ("valid", None)):
        samples = load(split, count)
        splits[split] = (region_token_features(model, samples, region), _labels(samples, finding))
    return {**linear_probe(*splits["train"], *splits["valid"]), "checkpoint": found}


def decisions_run(run_dir: str, region: str, finding: str, checkpoint: str | None = None) -> dict[str, Any]:
    """``decision_scores`` of a finished run on its validation split, for ``region`` written as the split's
    most common report of it without ``finding`` against the most common one with it; with their AUC, and
    the AUC with each input the model reads swapped (``swapped``: {part: AUC}, see ``swap_region_input``).
    A finding written in several wordings that start differently ("A small right ...", "Bilateral ...")
    is scored on the most common one only, so its AUC can understate what greedy reports show."""
    model, found, load = _finished_run(run_dir, checkpoint)
    samples = [s for s in load("valid", None) if region in s["regions"]]
    if not samples:
        raise ValueError(f"no validation study of {run_dir} has a region {region!r}")
    labels = _labels(samples, finding)
    wordings = [
        Counter(s["region_reports"][s["regions"].index(region)] for s, y in zip(samples, labels) if y == present)
        for present in (0, 1)
    ]
    if not all(wordings):
        raise ValueError(f"the validation split needs studies with and without {finding!r} to score its decisions")
    normal, abnormal = (counts.most_common(1)[0][0] for counts in wordings)
    scores = decision_scores(model, samples, region, normal, abnormal)
    layout = model.visual.layout
    parts = [
        part
        for part, used in zip(VISUAL_KEYS, (layout.global_tokens, layout.texture_tokens, layout.geometry_tokens))
        if used
    ]
    swapped = {
        part: decision_auc(
            decision_scores(model, swap_region_input(samples, labels, region, part), region, normal, abnormal), labels
        )
        for part in parts
    }
    return {
        "auc": decision_auc(scores, labels),
        "swapped": swapped,
        "studies": len(samples),
        "positives": int(labels.sum()),
        "normal": normal,
        "abnormal": abnormal,
        "checkpoint": found,
        "mean_positive": float(scores[labels == 1].mean()),
        "mean_negative": float(scores[labels == 0].mean()),
    }


def _finished_run(run_dir: str, checkpoint: str | None) -> tuple[Any, str, Callable[[str, int | None], list[dict]]]:
    """A finished run's model (newest checkpoint unless ``checkpoint``), that checkpoint, and a loader of the
    first ``count`` (None: all) studies of one of its cached splits, in canonical region order."""
    from pathlib import Path

    from omegaconf import OmegaConf

    from reg2rg.data.dataset import dataset_from_config
    from reg2rg.models import from_pretrained
    from reg2rg.training.checkpointing import find_checkpoint

    run = Path(run_dir)
    cfg = OmegaConf.load(run / "config.yaml")
    found = str(Path(checkpoint) if checkpoint else find_checkpoint(str(run), run / "checkpoints"))

    def load(split: str, count: int | None) -> list[dict]:
        data = dataset_from_config(cfg.data, split)  # the run's own inputs: no LFD crops for a no-LFD run
        return [data[i] for i in range(min(count or len(data), len(data)))]

    return from_pretrained(found), found, load


def _labels(samples: Sequence[Mapping[str, Any]], finding: str) -> np.ndarray:
    if finding not in samples[0]["labels"]:
        raise ValueError(f"unknown finding {finding!r}; the labels are {list(samples[0]['labels'])}")
    return np.array([int(s["labels"][finding]) for s in samples])
