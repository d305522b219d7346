"""Prompt and target text, with the official wording by default (every piece configurable).

Prompt (official, regions numbered from ``first_region_index``, 0 as in the official code)::

    The global information is provided as the context: <image>[global tokens]</image>. The region 0 is
    <region>[region tokens]</region>. The region 1 is <region>...</region>. ... <instruction>

Target with region-report alignment (RRA on): ``"The region i is <area>: <report>"`` for each region
in the sample's order (shuffled by the data side in training, canonical in evaluation), joined by
single spaces, then EOS. With ``text_format="official"`` each region report is kept as given and
followed by a space, as the official code writes it (so the text ends in a space before EOS).

RRA off (paper Table VII): the data side keeps the canonical order, the prompt still numbers the
regions, and the target is the plain region reports joined by spaces, without recognition prefixes
(so generated text cannot be split by region: ``parse_region_reports`` finds no region in it).
With ``use_global`` off the whole global sentence is left out of the prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .parse import DEFAULT_PREFIX, RegionReport, parse_region_reports

IMAGE_OPEN, IMAGE_CLOSE = "<image>", "</image>"
REGION_OPEN, REGION_CLOSE = "<region>", "</region>"
MARKERS: tuple[str, ...] = (IMAGE_OPEN, IMAGE_CLOSE, REGION_OPEN, REGION_CLOSE)
# One placeholder token per visual embedding; the model writes the embeddings at these positions.
PLACEHOLDER = "<|visual|>"
# clean: targets stripped and tokenized apart from the prompt; official: as the official code (reg2rg.text.collate)
TEXT_FORMATS = ("clean", "official")

INSTRUCTION = (
    "Given the provided global and regional information from this CT scan, please generate a comprehensive "
    "medical report for each region. First, identify the anatomical area corresponding to each region, then "
    "provide detailed information about these anatomical structures and any abnormalities that are essential. "
    "You can refer to the global information as the context and take it as a supplement when generating each "
    "region report."
)


@dataclass(frozen=True)
class TokenLayout:
    """How many visual tokens (placeholders) each prompt segment holds."""

    global_tokens: int
    texture_tokens: int
    geometry_tokens: int

    @property
    def region_tokens(self) -> int:
        return self.texture_tokens + self.geometry_tokens

    def total(self, num_regions: int) -> int:
        return self.global_tokens + num_regions * self.region_tokens


@dataclass(frozen=True)
class PromptTemplate:
    """The wording of prompts and targets; ``{i}`` is the region number, ``{area}`` its name."""

    global_context: str = "The global information is provided as the context: "
    region_intro: str = "The region {i} is "
    instruction: str = INSTRUCTION
    target_prefix: str = DEFAULT_PREFIX
    first_region_index: int = 0

    def prompt(self, num_regions: int, layout: TokenLayout) -> str:
        """The prompt for ``num_regions`` regions, one placeholder per visual token of ``layout``."""
        if num_regions < 1:
            raise ValueError(f"a prompt needs at least one region, got {num_regions}")
        text = ""
        if layout.global_tokens:
            text += f"{self.global_context}{IMAGE_OPEN}{PLACEHOLDER * layout.global_tokens}{IMAGE_CLOSE}. "
        region = f"{REGION_OPEN}{PLACEHOLDER * layout.region_tokens}{REGION_CLOSE}. "
        for i in self._numbers(num_regions):
            text += self.region_intro.format(i=i) + region
        return text + self.instruction

    def target(
        self, regions: Sequence[str], reports: Sequence[str], rra: bool = True, text_format: str = "clean"
    ) -> str:
        """The report to learn: with RRA each region report behind its recognition prefix.

        ``text_format`` "clean": region reports stripped and joined by single spaces; "official": each as
        given and followed by one space (the official ``combined_report``).
        """
        if len(regions) != len(reports):
            raise ValueError(f"{len(regions)} regions but {len(reports)} region reports")
        if text_format not in TEXT_FORMATS:
            raise ValueError(f"text_format must be one of {TEXT_FORMATS}, got {text_format!r}")
        prefixes = [
            self.target_prefix.format(i=i, area=area) if rra else ""
            for i, area in zip(self._numbers(len(regions)), regions)
        ]
        if text_format == "official":
            return "".join(f"{prefix}{report} " for prefix, report in zip(prefixes, reports))
        return " ".join(f"{prefix}{report.strip()}" for prefix, report in zip(prefixes, reports))

    def parse(self, text: str) -> list[RegionReport]:
        """Generated text -> region reports, read with this template's target prefix."""
        return parse_region_reports(text, self.target_prefix)

    def _numbers(self, num_regions: int) -> range:
        return range(self.first_region_index, self.first_region_index + num_regions)
