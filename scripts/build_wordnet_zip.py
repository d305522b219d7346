"""Build the WordNet 3.0 archive that reg2rg ships for METEOR (docs/evaluation.md, "WordNet and Punkt").

    apt-get download wordnet-base wordnet-sense-index
    for deb in wordnet-*.deb; do dpkg -x $deb wordnet-deb; done
    python scripts/build_wordnet_zip.py wordnet-deb/usr/share/wordnet src/reg2rg/evaluation/resources/nltk_data/corpora/wordnet.zip

Debian's ``wordnet-base`` and ``wordnet-sense-index`` hold Princeton's WordNet 3.0 database. The archive takes the files NLTK's
WordNet reader opens (its layout: ``wordnet/<file>`` inside ``wordnet.zip``), adds the ``lexnames``
file Debian leaves out and WordNet's licence. Entries carry a fixed date, so the same input gives
the same bytes.
"""

import argparse
import zipfile
from pathlib import Path

from reg2rg.evaluation.nltk_data import WORDNET_LICENSE

# The database files NLTK's reader opens (lexnames is written below).
DATABASE_FILES = tuple(
    [f"{kind}.{pos}" for kind in ("data", "index") for pos in ("adj", "adv", "noun", "verb")]
    + [f"{pos}.exc" for pos in ("adj", "adv", "noun", "verb")]
    + ["index.sense"]  # NLTK reads it when the reader starts (sense-key map)
)

# lexnames(5WN): the 45 lexicographer files of WordNet 3.0, numbered from 00 in this order.
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body"
    " noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location"
    " noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process"
    " noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change"
    " verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation"
    " verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
# The third lexnames column: the syntactic category of the file's synsets.
SYNTACTIC_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
FIXED_DATE = (2006, 12, 6, 0, 0, 0)  # WordNet 3.0's release


def lexnames_text() -> str:
    """The ``lexnames`` file: number, file name and syntactic category, tab separated."""
    lines = (f"{i:02d}\t{name}\t{SYNTACTIC_CATEGORY[name.split('.')[0]]}" for i, name in enumerate(LEXNAMES))
    return "\n".join(lines) + "\n"


def build_wordnet_zip(source: Path, out: Path) -> Path:
    """Write ``out`` (via a temporary file) from the WordNet database folder ``source``."""
    missing = [name for name in DATABASE_FILES if not (source / name).is_file()]
    if missing:
        raise SystemExit(f"{source}: WordNet files {missing} are missing")
    entries = {name: (source / name).read_bytes() for name in DATABASE_FILES}
    entries["lexnames"] = lexnames_text().encode()
    entries["LICENSE"] = WORDNET_LICENSE.encode()
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, data in sorted(entries.items()):
            archive.writestr(zipfile.ZipInfo(f"wordnet/{name}", FIXED_DATE), data, zipfile.ZIP_DEFLATED, 9)
    partial.replace(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="WordNet 3.0 database folder (Debian: /usr/share/wordnet)")
    parser.add_argument("out", type=Path, help="the archive to write")
    args = parser.parse_args()
    print(build_wordnet_zip(args.source, args.out))


if __name__ == "__main__":
    main()
