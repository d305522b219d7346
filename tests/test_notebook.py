"""notebooks/quickstart.ipynb runs top to bottom on the CPU against a tiny checkpoint and a tiny cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_model_helpers import tiny_model
from test_visualize import synthetic_cache

from reg2rg.models import save_checkpoint

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def test_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "strip the notebook's outputs before committing"


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    checkpoint = save_checkpoint(tiny_model(), tmp_path / "checkpoint")
    cache = synthetic_cache(tmp_path / "synthetic", n_valid=1)
    monkeypatch.setenv("REG2RG_CHECKPOINT", str(checkpoint))
    monkeypatch.setenv("REG2RG_CACHE", str(cache))
    monkeypatch.setenv("REG2RG_MAX_NEW_TOKENS", "24")  # an untrained model: a few tokens make the point
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # The kernel runs in tmp_path, so the notebook's outputs/ land there.
    nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = {cell.id: cell.outputs for cell in notebook.cells if cell.cell_type == "code"}
    assert not any(o.output_type == "error" for cell in outputs.values() for o in cell)
    assert any("image/png" in o.get("data", {}) for o in outputs["picture"]), "the figure is displayed"
    assert (tmp_path / "outputs/notebook/grounded.png").is_file()
    assert (tmp_path / "outputs/notebook/grounded.html").is_file()
    [scores] = [o for o in outputs["score"] if o.output_type == "execute_result"]
    text = scores["data"]["text/plain"]
    assert "BLEU-4" in text and "region recognition accuracy" in text
    assert json.loads(NOTEBOOK.read_text())["cells"][1]["outputs"] == []  # running it left the file alone
