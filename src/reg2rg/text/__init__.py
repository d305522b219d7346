"""Prompts, RRA targets, tokenizer set-up, tokenization + collate, and parsing generated reports."""

from .collate import Reg2RGCollator
from .parse import RegionReport, parse_region_reports
from .prompt import MARKERS, PLACEHOLDER, PromptTemplate, TokenLayout
from .tokenizer import SpecialIds, load_tokenizer, setup_tokenizer, train_tokenizer

__all__ = [
    "MARKERS",
    "PLACEHOLDER",
    "PromptTemplate",
    "Reg2RGCollator",
    "RegionReport",
    "SpecialIds",
    "TokenLayout",
    "load_tokenizer",
    "parse_region_reports",
    "setup_tokenizer",
    "train_tokenizer",
]
