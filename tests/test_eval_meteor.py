"""METEOR equals NLTK's single_meteor_score(word_tokenize(...)) as HF evaluate calls it; caches change nothing."""

import random

import pytest
from nltk.translate.meteor_score import meteor_score, single_meteor_score

from reg2rg.evaluation.meteor import MeteorScorer
from reg2rg.evaluation.nltk_data import word_tokenize, wordnet_reader


@pytest.fixture(scope="module")
def meteor() -> MeteorScorer:
    return MeteorScorer()


def test_hand_computed_meteor(meteor):
    # identical 2-word texts: P = R = 1 -> Fmean = 1; one chunk of 2 matches -> penalty 0.5 * (1/2)^3 = 0.0625
    assert meteor.score("heart normal", "heart normal") == pytest.approx(0.9375)
    assert meteor.score("heart normal", "") == 0.0


def test_nltk_documented_example():
    # NLTK's meteor_score doctest value
    hypothesis = "It is a guide to action which ensures that the military always obeys the commands of the party"
    reference = "It is a guide to action that ensures that the military will forever heed Party commands"
    score = meteor_score([reference.split()], hypothesis.split(), wordnet=wordnet_reader())
    assert round(score, 4) == 0.6944


def test_synonym_stage_uses_wordnet():
    class NoSynonyms:
        @staticmethod
        def synsets(word):
            return []

    # NLTK looks synonyms up for the Porter stems left after the stem stage: "tumor" and "neoplasm" are
    # their own stems and share a WordNet 3.0 synset. One match in one chunk: Fmean 1, penalty 0.5.
    assert single_meteor_score(["neoplasm"], ["tumor"], wordnet=wordnet_reader()) == 0.5
    assert single_meteor_score(["neoplasm"], ["tumor"], wordnet=NoSynonyms) == 0


@pytest.mark.parametrize(
    "text",
    [
        "Dr. Smith saw a 3.5 mm nodule (IM274) in the U.S. lungs; no effusion. Heart isn't enlarged.",
        "Nodules, e.g. in the r.u.l. and the L.L.L., were seen. (Sent one.) Sent two! Really? Yes... ok",
        'He said "no effusion." Then left. St. Mary\'s Hospital, Jan. 5. 10 a.m. The end.',
    ],
)
def test_cached_tokenizer_equals_word_tokenize(meteor, text):
    for _ in range(2):  # the second pass runs from the caches
        assert meteor.tokenize(text) == word_tokenize(text)


def test_scores_equal_nltk_on_constructed_reports(meteor):
    rng = random.Random(3)
    sentences = [
        "No pleural effusion was detected.",
        "The heart is enlarged.",
        "Cardiac size is increased.",
        "A 4 mm nodule in the right upper lobe.",
        "Lungs are clear.",
        "Ground-glass opacities in both lungs.",
        "Emphysematous changes are observed.",
        "The trachea and main bronchi are open.",
        "Bones are intact.",
    ]
    for _ in range(60):
        reference = " ".join(rng.choices(sentences, k=rng.randint(1, 6)))
        prediction = " ".join(rng.choices(sentences, k=rng.randint(1, 6)))
        expected = single_meteor_score(
            word_tokenize(reference), word_tokenize(prediction), wordnet=wordnet_reader(), alpha=0.9, beta=3, gamma=0.5
        )
        assert meteor.score(reference, prediction) == expected
