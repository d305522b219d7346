"""Transparent rule labeler for the 18 CT-RATE abnormality labels (offline CE default, ``ce=rules``).

How a report is read (docs/evaluation.md lists every rule):
1. Lower-case; split into clauses at sentence ends (. ; : ! ? newline, not decimal points) and at
   scope breaks ("but", "however", "except", "apart from", "and the ...", ", there ...").
2. Find label mentions with each label's synonym patterns (CT-RATE vocabulary and common chest CT
   phrasings). A rule may name context words that veto it in that clause (a thyroid nodule is not
   a lung nodule).
3. Classify each mention from cues in its clause within ``window`` words:
   uncertain  - a hedge before or after it ("possible", "suspicious for", "cannot be excluded", "?");
   negated    - a negation before it ("no", "without", "absence of", "negative for", "free of",
                "neither/nor"), after it ("not observed", "were not detected", "absent", "ruled
                out", "resolved") or inside it ("heart is not enlarged");
   positive   - otherwise. Pseudo-negations ("no change in", "not only") are not cues.
4. A label is 1 when any mention is positive (or uncertain, with ``uncertain="positive"``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from reg2rg.constants import CT_RATE_LABELS

POSITIVE, NEGATED, UNCERTAIN = "positive", "negated", "uncertain"
UNCERTAIN_POLICIES = ("positive", "negative")


def _near(first: str, second: str, gap: int, commas: bool = True) -> str:
    """Both patterns in either order within ``gap`` characters of one clause (no comma between unless ``commas``)."""
    between = f"[^.;:{'' if commas else ','}]{{0,{gap}}}?"
    return f"(?:{first}){between}(?:{second})|(?:{second}){between}(?:{first})"


def _coordinated(first: str, second: str, noun: str) -> str:
    """``first`` sharing a noun with a coordinated ``second``: "pleural or pericardial effusion"."""
    return rf"{first}\s*(?:or|and|and/or|nor|,|/)\s*(?:\w+ )?{second} (?:\w+ )?(?:{noun})"


@dataclass(frozen=True)
class Rule:
    """A synonym pattern for one label and, optionally, clause words that veto it."""

    pattern: str
    veto: str | None = None


CALCIFIED = r"calcif\w*|atheroscl\w*|atherom\w*|calcific plaques?"
NON_CORONARY_ARTERY = (
    r"aort\w*|(?<!coronary )arter(?:y|ies|ial)\b|carotid|subclavian|brachiocephalic|innominate|iliac|vascular|vessels?"
)
CORONARY = r"coronar\w*|\blad\b|\bcx\b|\brca\b|circumflex|left anterior descending"
OTHER_ORGAN = (
    r"thyroid|adrenal|liver|hepat\w*|kidney|renal|spleen|splenic|pancrea\w*|breast|lymph|skin|subcutaneous"
    r"|goiter|gland|pleural plaque"
)
NON_LUNG_TISSUE = r"liver|hepat\w*|pancrea\w*|muscl\w*|\bfatty\b|marrow|breast|thyroid"

LABEL_RULES: dict[str, tuple[Rule, ...]] = {
    "Medical material": (
        Rule(
            r"pacemaker|defibrillator|\bicd\b|\bstent\w*|cathet\w*|\bports?\b|port-a-cath|cannula\w*|sternotomy"
            r"|\bwires?\b|cerclage|\bclips?\b|sutures?\b|prosthe\w*|implant\w*|\bcoils?\b|\bgrafts?\b|\bcabg\b"
            r"|(?:endotracheal|tracheostomy|nasogastric|feeding|chest|thoracostomy|drainage) tubes?|\bdrains?\b"
            r"|valve replacement|metallic|surgical material|\bdevices?\b|fixation (?:plates?|screws?)|\bscrews?\b"
        ),
    ),
    "Arterial wall calcification": (
        Rule(_near(CALCIFIED, NON_CORONARY_ARTERY, 60)),
        Rule(r"arterial wall calcif\w*|atheroscl\w*|atherom\w*", veto=CORONARY),
    ),
    "Cardiomegaly": (
        Rule(r"cardiomegal\w*|cardiac enlargement|enlarged (?:heart|cardiac)"),
        Rule(_near(r"\bheart\b|\bcardiac\b|cardiothoracic ratio", r"enlarg\w*|increased", 30, commas=False)),
    ),
    "Pericardial effusion": (
        Rule(r"pericardi\w*(?:(?!pleura)[^.;:]){0,30}?(?:effusion|fluid)|hydropericard\w*"),
        Rule(_coordinated(r"pericardi\w*", r"pleura\w*", "effusions?|fluid")),
        Rule(r"(?:effusion|fluid)[^.;:,]{0,25}\b(?:in|within|into)\b[^.;:,]{0,15}pericardi\w*"),
    ),
    "Coronary artery wall calcification": (Rule(_near(CALCIFIED, CORONARY, 60)),),
    "Hiatal hernia": (
        Rule(r"hiat\w* hernia|hernia\w*[^.;:]{0,50}hiatus|hiatus[^.;:]{0,20}hernia|(?:para)?o?esophageal hernia"),
        Rule(r"sliding hernia"),
    ),
    "Lymphadenopathy": (
        Rule(r"lymphadenopath\w*|adenopath\w*|lymph node enlargement"),
        Rule(
            r"lymph ?nodes?[^.;:]{0,60}?"
            r"(?:patholog\w* (?:size|dimension)|enlarg\w*|increased (?:in )?size|conglomerat\w*)"
        ),
        Rule(r"(?:enlarg\w*|patholog\w*|prominent|bulky|conglomerat\w*) (?:\w+ ){0,3}lymph ?nodes?"),
    ),
    "Emphysema": (
        Rule(r"(?<!subcutaneous )(?<!soft tissue )(?<!mediastinal )(?<!interstitial )emphysem\w*|\bbulla\w*|bullous"),
    ),
    "Atelectasis": (
        Rule(r"\w*atelecta\w*"),
        Rule(r"collaps\w*", veto=r"vertebr\w*|fractur\w*|bone|trachea\w*|tracheomalacia"),
    ),
    "Lung nodule": (
        Rule(r"(?:micro)?nodul\w*(?! thicken)", veto=OTHER_ORGAN),
        Rule(_near(r"\bmass(?:es)?\b", r"\blungs?\b|\blobe\b|pulmonary|parenchym\w*", 40), veto=OTHER_ORGAN),
    ),
    "Lung opacity": (
        Rule(r"opacit\w*|ground[- ]?glass|\bggo\w*|infiltrat\w*|pneumoni\w*", veto=NON_LUNG_TISSUE),
        Rule(
            r"(?:patchy|hazy|increased|nodular|reticular|reticulonodular|linear|nonspecific|parenchymal|consolidative)"
            r" (?:\w+ )?densit(?:y|ies)",
            veto=NON_LUNG_TISSUE,
        ),
    ),
    "Pulmonary fibrotic sequela": (
        Rule(
            r"fibro(?:sis|tic|us)\b|fibroatelecta\w*|sequela\w*|sequel\b|parenchymal bands?|\bscar\w*",
            veto=r"dysplas\w*|skin|incision\w*|chest wall|breast|thyroid",
        ),
    ),
    "Pleural effusion": (
        Rule(r"pleura\w*(?:(?!pericardi)[^.;:]){0,30}?(?:effusion|fluid)|hydrothora\w*"),
        Rule(_coordinated(r"pleura\w*", r"pericardi\w*", "effusions?|fluid")),
        Rule(r"(?:effusion|fluid)[^.;:,]{0,25}\b(?:in|within|into)\b[^.;:,]{0,15}(?:pleura\w*|hemithora\w*)"),
        Rule(r"(?:bilateral|right|left)(?:-sided)? effusions?"),
    ),
    "Mosaic attenuation pattern": (Rule(r"mosaic\w*|air[- ]trapping"),),
    "Peribronchial thickening": (
        Rule(_near(r"peribronch\w*", r"thicken\w*", 30)),
        Rule(_near(r"bronch\w* walls?", r"thicken\w*", 30)),
        Rule(r"peribronchial cuffing"),
    ),
    "Consolidation": (Rule(r"consolidat\w*", veto=r"fractur\w*"),),
    "Bronchiectasis": (
        Rule(r"bronchiecta\w*|bronchiolecta\w*|traction bronch\w*"),
        Rule(_near(r"bronch\w*", r"dilat\w*|ectatic", 25, commas=False)),
    ),
    "Interlobular septal thickening": (
        Rule(_near(r"(?<!ventricular )(?<!atrial )\bsept(?:al|a|um)\b", r"thicken\w*", 30)),
        Rule(r"crazy[- ]paving"),
    ),
}

CLAUSE_END = re.compile(r"(?<!\d)\.|\.(?!\d)|[;:!\n]|(?<=\?)")
SCOPE_BREAK = re.compile(
    r"\b(?:but|however|although|though|whereas|except|apart from|other than|aside from|besides)\b"
    r"|\band (?=(?:the|a|an|there|it)\b)|,\s*(?=(?:the|there|it)\b)"
)
NEGATION_BEFORE = re.compile(
    r"\b(?:no|without|absence of|negative for|free of|neither|nor|resolution of|rather than)\b"
)
NEGATION_AFTER = re.compile(r"\bnot\b|n't\b|\babsent\b|\bruled out\b|\bexcluded\b|\bresolved\b|\bdisappeared\b")
PSEUDO_NEGATION = re.compile(
    r"\bno (?:significant |interval |appreciable |marked )?(?:change|increase|progression|growth)\b"
    r"|\bnot only\b|\bwithout (?:significant |interval )?change\b"
)
UNCERTAINTY = re.compile(
    r"\bpossib\w*|\bprobabl\w*|\blikely\b|\bsuspicious\b|\bsuspect\w*|\bsuspicion\b|\bquestionabl\w*|\bequivocal\b"
    r"|\bindeterminate\b|\b(?:can ?not|cannot|not) be (?:excluded|ruled out)|\bnot (?:excluded|ruled out)\b"
    r"|\bmay (?:be|represent|reflect|indicate|correspond)\b|\bmight\b|\bcould (?:be|represent|reflect)\b"
    r"|\bsuggest\w*|\bdifferential diagnos\w*|\bversus\b|\bvs\b|\brule out\b|\bdoubtful\b|\buncertain\b|\?"
)
WORD = re.compile(r"\w+")

COMPILED_RULES: tuple[tuple[str, re.Pattern, re.Pattern | None], ...] = tuple(
    (label, re.compile(rule.pattern), re.compile(rule.veto) if rule.veto else None)
    for label in CT_RATE_LABELS
    for rule in LABEL_RULES[label]
)


def clauses(text: str) -> list[str]:
    """Lower-cased clauses: negation and hedges never reach across their boundaries."""
    pieces = (part for sentence in CLAUSE_END.split(text.lower()) for part in SCOPE_BREAK.split(sentence))
    return [piece.strip() for piece in pieces if piece and piece.strip()]


def _words_between(clause: str, start: int, end: int) -> int:
    return len(WORD.findall(clause, start, end)) if end > start else 0


def _cues(pattern: re.Pattern, clause: str) -> list[re.Match]:
    pseudo = [match.span() for match in PSEUDO_NEGATION.finditer(clause)]
    return [cue for cue in pattern.finditer(clause) if not any(a <= cue.start() < b for a, b in pseudo)]


def mention_status(clause: str, start: int, end: int, window: int) -> str:
    """Positive, negated or uncertain for the mention ``clause[start:end]``."""

    def before(cue: re.Match) -> bool:
        return cue.end() <= start and _words_between(clause, cue.end(), start) <= window

    def after(cue: re.Match) -> bool:
        return cue.start() >= end and _words_between(clause, end, cue.start()) <= window

    def inside(cue: re.Match) -> bool:
        return cue.start() < end and cue.end() > start

    if any(before(cue) or after(cue) or inside(cue) for cue in _cues(UNCERTAINTY, clause)):
        return UNCERTAIN
    negations_before, negations_after = _cues(NEGATION_BEFORE, clause), _cues(NEGATION_AFTER, clause)
    if any(before(cue) or inside(cue) for cue in negations_before) or any(
        after(cue) or inside(cue) for cue in negations_after
    ):
        return NEGATED
    return POSITIVE


@lru_cache(maxsize=2**16)
def clause_findings(clause: str, window: int) -> frozenset[tuple[str, str]]:
    """(label, status) of every mention in one clause."""
    findings = set()
    for label, pattern, veto in COMPILED_RULES:
        if veto is not None and veto.search(clause):
            continue
        for match in pattern.finditer(clause):
            findings.add((label, mention_status(clause, match.start(), match.end(), window)))
    return frozenset(findings)


class RuleLabeler:
    """Labels texts with the 18 CT-RATE labels by rules; ``labeler(texts) -> (N, 18)`` array of 0/1."""

    name = "rules"
    labels: tuple[str, ...] = CT_RATE_LABELS

    def __init__(self, uncertain: str = "positive", window: int = 12):
        if uncertain not in UNCERTAIN_POLICIES:
            raise ValueError(f"uncertain must be one of {UNCERTAIN_POLICIES}, got {uncertain!r}")
        if window < 1:
            raise ValueError(f"window must be a positive number of words, got {window}")
        self.uncertain = uncertain
        self.window = window
        self._counted = {POSITIVE} | ({UNCERTAIN} if uncertain == "positive" else set())

    def findings(self, text: str) -> set[tuple[str, str]]:
        """Every (label, status) found in ``text``: the labeler's reasoning, for inspection."""
        return set().union(*(clause_findings(clause, self.window) for clause in clauses(text)))

    def label(self, text: str) -> np.ndarray:
        present = {label for label, status in self.findings(text) if status in self._counted}
        return np.array([label in present for label in self.labels], dtype=np.int8)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.int8)
        return np.stack([self.label(text) for text in texts])
