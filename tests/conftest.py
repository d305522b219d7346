"""Test-wide settings: offline, quiet, deterministic, CPU."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PYTHONUTF8", "1")  # subprocesses decode their UTF-8 output (progress bars) alike everywhere


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """The synthetic dataset of the training tests (test_training_helpers.py), written and cached once."""
    from test_training_helpers import prepare_tiny_data

    return prepare_tiny_data(tmp_path_factory.getbasetemp() / "training-synthetic")
