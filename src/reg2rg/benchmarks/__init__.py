"""Benchmarks behind scripts/benchmark.py; each module has a ``run(...) -> dict``."""
