"""Region prefixes in generated reports: strip them (whole-report protocol) or split reports by them.

Reports follow the RRA format "The region <i> is <area>: <region report> ..." (docs/reference.md, "Prompt and target").
"""

from __future__ import annotations

import re

from reg2rg.constants import canonical_region

# The protocol's prefix (the paper's rm_region_text step): kept exactly, including its greedy area.
PROTOCOL_PREFIX = re.compile(r"The region \d+ is [^:]+: ")
# Region headers for parsing: the area may not run past a sentence end or a colon.
REGION_HEADER = re.compile(r"The region (\d+) is ([^:.\n]+):")
WHITESPACE = re.compile(r"\s+")


def collapse_whitespace(text: str) -> str:
    return WHITESPACE.sub(" ", text).strip()


def strip_region_prefixes(text: str) -> str:
    """The whole report as the reg2rg protocol scores it: prefixes removed, whitespace collapsed."""
    return collapse_whitespace(PROTOCOL_PREFIX.sub("", text))


def has_region_prefix(text: str) -> bool:
    return REGION_HEADER.search(text) is not None


def region_areas(text: str) -> dict[int, str]:
    """Region index -> the area named in its header (lower-cased, whitespace collapsed; first wins)."""
    areas: dict[int, str] = {}
    for match in REGION_HEADER.finditer(text):
        areas.setdefault(int(match.group(1)), collapse_whitespace(match.group(2)).lower())
    return areas


def split_regions(text: str) -> dict[str, str]:
    """Canonical region -> its report text (segments of the same region joined); empty ones dropped.

    A segment runs from its header to the next header or the end of the text. Headers that
    name no known region end the previous segment and are otherwise ignored.
    """
    headers = list(REGION_HEADER.finditer(text))
    segments: dict[str, list[str]] = {}
    for header, following in zip(headers, headers[1:] + [None]):
        body = collapse_whitespace(text[header.end() : following.start() if following else len(text)])
        region = canonical_region(header.group(2))
        if region is not None and body:
            segments.setdefault(region, []).append(body)
    return {region: " ".join(bodies) for region, bodies in segments.items()}


def word_count(text: str) -> int:
    """Words per report as the length plot counts them: whitespace-separated tokens."""
    return len(text.split())
