"""Scores of generated MedRegion-CT reports: what the testbed's truth says, region by region, and NLG.

Findings read from the generated ``[Lung]`` line: the nodule count (its number word) and the set of lobes
named in the nodule sentence, and the effusion side; from ``[Abdomen]``, the cyst's organ; from ``[Heart]``,
enlarged or not. Each is compared with the phantom's truth. NLG: the reg2rg protocol's BLEU, METEOR and ROUGE
on the whole report and on each of the six regions. CE: the offline rule labeler's 18 CT-RATE labels of the
generated and the reference reports (micro F1, and F1 of each label that occurs).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from reg2rg.evaluation.ce import classification_table
from reg2rg.evaluation.nlg import reg2rg_scores
from reg2rg.evaluation.rules import RuleLabeler
from reg2rg.medregion.attributes import readable
from reg2rg.medregion.phantom import LOBES
from reg2rg.medregion.prompt import target_text
from reg2rg.medregion.regions import REGIONS
from reg2rg.medregion.reports import COUNT_WORDS, region_reports

_NODULES = re.compile(r"\b(No|One|Two|Three|Four|Five) (?:lung )?nodules?\b([^.]*)", re.IGNORECASE)
_EFFUSION = re.compile(r"\b(Right|Left|No) pleural effusion\b", re.IGNORECASE)
NLG_SHOWN = ("BLEU-1", "BLEU-4", "METEOR", "ROUGE-L")


def nodule_statement(lung: str) -> tuple[int, frozenset[str]] | None:
    """(count, lobes) stated in a lung report, or None when it states no nodule count."""
    match = _NODULES.search(lung)
    if match is None:
        return None
    count = [word.lower() for word in COUNT_WORDS].index(match.group(1).lower())
    lobes = frozenset(lobe for lobe in LOBES if readable(lobe) in match.group(2).lower())
    return count, lobes


def study_checks(predicted: dict[str, str], truth: dict) -> dict[str, bool]:
    """Which of the truth's findings a study's generated region reports state correctly."""
    expected = region_reports(truth)
    lung = predicted.get("lung", "")
    stated = nodule_statement(lung)
    true_lobes = frozenset(n["location"] for n in truth["nodules"])
    effusion = _EFFUSION.search(lung)
    true_side = truth["effusion"]["side"] if truth["effusion"] else "no"
    return {
        "nodule_count": stated is not None and stated[0] == len(truth["nodules"]),
        "nodule_lobes": stated is not None and stated[1] == true_lobes,
        "nodule_count_and_lobes": stated is not None and stated == (len(truth["nodules"]), true_lobes),
        "effusion_side": effusion is not None and effusion.group(1).lower() == true_side,
        "cyst": predicted.get("abdomen", "").strip() == expected["abdomen"],
        "heart": predicted.get("heart", "").strip() == expected["heart"],
    }


def score(predictions: Sequence[dict[str, Any]], entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``predictions`` ({"text", "regions"}) against the split's ``entries`` (region reports and truth)."""
    checks = [study_checks(p["regions"], e["truth"]) for p, e in zip(predictions, entries, strict=True)]
    findings = {name: sum(c[name] for c in checks) / len(checks) for name in checks[0]}
    references = [e["region_reports"] for e in entries]
    whole = reg2rg_scores(_texts(references), [p["text"] for p in predictions])
    regions = {}
    for region in REGIONS:
        pairs = [(r[region], p["regions"].get(region, "")) for r, p in zip(references, predictions) if region in r]
        if pairs:
            scores = reg2rg_scores([a for a, _ in pairs], [b for _, b in pairs]).summary()
            regions[region] = {name: scores[name].mean for name in NLG_SHOWN}
            regions[region]["exact"] = sum(a.strip() == b.strip() for a, b in pairs) / len(pairs)
    summary = whole.summary()
    return {
        "studies": len(predictions),
        "findings": findings,
        "nlg": {name: summary[name].mean for name in NLG_SHOWN},
        "ce": clinical_efficacy(_texts(references), [p["text"] for p in predictions]),
        "regions": regions,
    }


def _texts(references: Sequence[dict[str, str]]) -> list[str]:
    """The reference reports as the model writes them (``[Lung]: ...`` lines)."""
    return [target_text(r) for r in references]


def clinical_efficacy(references: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """Micro F1 over the rule labeler's 18 labels, and the F1 of each label the references hold."""
    labeler = RuleLabeler()
    table = classification_table(labeler(list(references)), labeler(list(predictions)), labeler.labels)
    scores = {"micro F1": float(table.loc["micro", "f1"])}
    scores |= {f"{label} F1": float(table.loc[label, "f1"]) for label in labeler.labels if table.loc[label, "support"]}
    return scores


def summary_markdown(metrics: dict[str, Any]) -> str:
    """The metrics as Markdown tables."""
    lines = [f"# MedRegion-CT evaluation ({metrics['studies']} studies)", "", "| finding stated correctly | share |"]
    lines += ["|---|---|"] + [f"| {name} | {value:.3f} |" for name, value in metrics["findings"].items()]
    lines += ["", "| region | " + " | ".join(NLG_SHOWN) + " | exact |", "|---" * (len(NLG_SHOWN) + 2) + "|"]
    for region, values in metrics["regions"].items():
        lines.append(f"| {region} | " + " | ".join(f"{values[name]:.3f}" for name in (*NLG_SHOWN, "exact")) + " |")
    lines.append("| whole report | " + " | ".join(f"{metrics['nlg'][name]:.3f}" for name in NLG_SHOWN) + " | |")
    lines += ["", "| CE (rule labeler) | F1 |", "|---|---|"] + [f"| {k} | {v:.3f} |" for k, v in metrics["ce"].items()]
    return "\n".join(lines) + "\n"
