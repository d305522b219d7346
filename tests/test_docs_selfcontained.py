"""User-facing files cite only what users have: no files outside the repository, no tracker numbers.

The files checked are the tracked files (``git ls-files``) of README.md, data/README.md, docs/,
src/, configs/, scripts/, studies/ and notebooks/; binary files are skipped.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
USER_FACING = ("README.md", "data/README.md", "docs", "src", "configs", "scripts", "studies", "notebooks")
PROSE = ("README.md", "docs")  # where tracker numbers must not appear

OUTSIDE_FILE = re.compile(r"\bARCHITECTURE\.md\b|\.\./shared\b|/work/shared\b", re.IGNORECASE)
TRACKER_NUMBER = re.compile(r"\bissues?\s+#?\d+|\bissue\s*#\d+", re.IGNORECASE)
REFERENCE_SECTION = re.compile(r'docs/reference\.md, "([^"]+)"')
REPO_PATH = re.compile(r"\b(?:configs|docs|src|tests|scripts|data)/[\w./-]*\w\.(?:yaml|py|md)\b")


def tracked_text_files(*pathspecs: str) -> dict[str, str]:
    """{relative path: text} of the tracked files under ``pathspecs``, binary files left out."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-z", "--", *pathspecs], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"not a git checkout ({error})")
    texts = {}
    for name in filter(None, listing.decode().split("\0")):
        path = ROOT / name
        if not path.is_file():  # deleted in the working tree, not yet committed
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        try:
            texts[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return texts


def hits(pattern: re.Pattern, texts: dict[str, str]) -> list[str]:
    """'path:line: text' for every line of ``texts`` that ``pattern`` matches."""
    return [
        f"{name}:{number}: {line.strip()}"
        for name, text in texts.items()
        for number, line in enumerate(text.splitlines(), start=1)
        if pattern.search(line)
    ]


@pytest.mark.parametrize(
    "line",
    ["see ARCHITECTURE.md section 3", "(architecture.md 3)", "../shared/papers/README", "/work/shared/notes"],
)
def test_outside_file_pattern_flags_citations(line):
    assert OUTSIDE_FILE.search(line)


@pytest.mark.parametrize("line", ["issue 5 stays open", "(issue 5, item 6)", "Issue #12", "issues 3 and 4", "issue#7"])
def test_tracker_pattern_flags_numbers(line):
    assert TRACKER_NUMBER.search(line)


@pytest.mark.parametrize(
    "line",
    [
        "def shared_path(path):",
        "each worker in a session of its own",
        "start_new_session=True",
        "the architecture of the model",
        "tissue 5 mm",
        "it issued 3 warnings",
        "an issue with 2 files",
        "colour #117733",
        'docs/reference.md, "Preprocessing"',
        "sharedmem/shared_memory",
    ],
)
def test_patterns_leave_ordinary_text_alone(line):
    assert not OUTSIDE_FILE.search(line)
    assert not TRACKER_NUMBER.search(line)


def test_no_citation_of_files_outside_the_repository():
    texts = tracked_text_files(*USER_FACING)
    assert "README.md" in texts and any(name.startswith("src/") for name in texts)
    found = hits(OUTSIDE_FILE, texts)
    assert not found, "cite docs/reference.md instead of files users do not have:\n" + "\n".join(found)


def test_no_tracker_numbers_in_the_docs():
    found = hits(TRACKER_NUMBER, tracked_text_files(*PROSE))
    assert not found, "state the fact instead of a tracker number:\n" + "\n".join(found)


def test_reference_citations_name_its_sections():
    headings = re.findall(r"^## (.+)$", (ROOT / "docs/reference.md").read_text(encoding="utf-8"), re.MULTILINE)
    texts = tracked_text_files(*USER_FACING)
    cited = {(name, section) for name, text in texts.items() for section in REFERENCE_SECTION.findall(text)}
    assert cited, "no file cites a section of docs/reference.md"
    unknown = sorted(
        f"{name}: {section!r}"
        for name, section in cited
        if not any(heading.startswith(section) for heading in headings)
    )
    assert not unknown, f"sections not in docs/reference.md (its headings: {headings}):\n" + "\n".join(unknown)


def test_paths_named_in_the_reference_exist():
    named = set(REPO_PATH.findall((ROOT / "docs/reference.md").read_text(encoding="utf-8")))
    assert "configs/model/reg2rg.yaml" in named
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert not missing, f"docs/reference.md names files that do not exist: {missing}"
