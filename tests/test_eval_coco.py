"""Protocol "coco": PTB-style tokens, pycocoevalcap scores, and METEOR reported (not raised) when Java fails."""

import pytest

from reg2rg.evaluation import meteor_java
from reg2rg.evaluation.coco import COCO_METRICS, coco_rouge_l, coco_scores, coco_tokenize

REFS = ["The region 0 is lung: No pleural effusion. A 3.5 mm nodule.", "The heart is enlarged."]
PREDS = ["The region 0 is lung: No effusion. A 4 mm nodule.", "Heart size is increased."]


def test_ptb_style_tokens_drop_punctuation_and_lower_case():
    assert coco_tokenize("The region 1 is lung: Ground-glass opacity, 3.5 mm (IM274); no effusion.") == (
        "ground-glass opacity 3.5 mm im274 no effusion"
    )


def test_rouge_l_equals_pycocoevalcap():
    import random

    from pycocoevalcap.rouge.rouge import Rouge

    rng = random.Random(5)
    for _ in range(100):
        reference = " ".join(rng.choices("abcdef", k=rng.randint(1, 30)))
        candidate = " ".join(rng.choices("abcdef", k=rng.randint(0, 30)))
        assert coco_rouge_l(reference, candidate) == pytest.approx(Rouge().calc_score([candidate], [reference]))


def test_missing_java_gives_none_and_a_reason(monkeypatch):
    monkeypatch.setattr(meteor_java.shutil, "which", lambda name: None)
    scores, warnings = coco_scores(REFS, PREDS)
    assert list(scores) == list(COCO_METRICS)
    assert scores["METEOR"] is None and "java is not on PATH" in warnings[0]
    assert 0 < scores["BLEU-1"] < 1 and scores["ROUGE-L"] > 0


def test_broken_jar_gives_none_and_a_reason(monkeypatch, tmp_path):
    broken = tmp_path / "meteor-1.5.jar"
    broken.write_text("not a jar")
    monkeypatch.setattr(meteor_java, "meteor_jar", lambda: broken)
    scores, warnings = coco_scores(REFS, PREDS, meteor_timeout_s=60)
    assert scores["METEOR"] is None and warnings[0].startswith("coco METEOR not computed")


@pytest.mark.slow
def test_java_meteor_runs(tmp_path):
    if meteor_java.shutil.which("java") is None:
        pytest.skip("no Java")
    scores, warnings = coco_scores(REFS, PREDS)
    assert warnings == [] and 0 < scores["METEOR"] < 1


@pytest.mark.slow
def test_java_meteor_reads_non_ascii_reports_whatever_the_locale():
    """In the C locale (SimpleITK's DICOM writer leaves it behind) text pipes must still carry "±" and "é"."""
    import locale

    if meteor_java.shutil.which("java") is None:
        pytest.skip("no Java")
    previous = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    try:
        score = meteor_java.java_meteor(["nodule 5 ± 1 mm, café"], ["nodule 5 ± 1 mm, café"], timeout_s=120)
    finally:
        locale.setlocale(locale.LC_CTYPE, previous)
    assert 0.9 < score <= 1.0  # identical reports


def test_a_jar_that_dies_on_one_study_names_it(monkeypatch):
    from reg2rg.evaluation import meteor_java

    class DiesOnLongText(meteor_java._MeteorProcess):  # the real per-study loop, a jar that fails on long text
        def __init__(self, jar, deadline):
            pass

        def ask(self, line, answers):
            if len(line.split()) > 1000:
                raise meteor_java.MeteorUnavailable("the METEOR jar exited: java.lang.OutOfMemoryError")
            return ["1 1 1 1"] * answers

        def close(self):
            pass

    monkeypatch.setattr(meteor_java, "_MeteorProcess", DiesOnLongText)
    monkeypatch.setattr(meteor_java.shutil, "which", lambda name: "/usr/bin/java")
    with pytest.raises(
        meteor_java.MeteorUnavailable, match=r"OutOfMemoryError \(while scoring study s2: 2000 reference"
    ):
        meteor_java.java_meteor(["short", "word " * 2000], ["short", "word"], 10, ids=["s1", "s2"])
