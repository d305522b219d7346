"""Split generated text into per-region reports: ``"The region i is <area>: <report>"``."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

DEFAULT_PREFIX = "The region {i} is {area}: "


@dataclass(frozen=True)
class RegionReport:
    index: int
    area: str
    report: str


@functools.lru_cache(maxsize=8)
def _prefix_pattern(prefix: str) -> re.Pattern[str]:
    """A regex for a target prefix template with ``{i}`` and ``{area}`` fields.

    An area stops before a colon and never spans a sentence, so "The region 3 is normal. The region
    4 is lung: ..." does not read "normal. The region 4 is lung" as an area.
    """
    if "{i}" not in prefix or "{area}" not in prefix:
        raise ValueError(f"a target prefix needs the fields {{i}} and {{area}}, got {prefix!r}")
    fields = {"{i}": r"(?P<i>\d+)", "{area}": r"(?P<area>[^:.\n]{1,80}?)"}
    parts = re.split(r"(\{i\}|\{area\})", prefix.rstrip())
    return re.compile("".join(fields.get(part) or re.escape(part) for part in parts) + r"\s*")


def parse_region_reports(text: str, prefix: str = DEFAULT_PREFIX) -> list[RegionReport]:
    """Region reports in the order they appear; text before the first prefix is ignored."""
    matches = list(_prefix_pattern(prefix).finditer(text))
    ends = [m.start() for m in matches[1:]] + [len(text)]
    return [
        RegionReport(index=int(m["i"]), area=m["area"].strip(), report=text[m.end() : end].strip())
        for m, end in zip(matches, ends)
    ]
