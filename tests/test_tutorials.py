"""The tutorial notebooks in docs/tutorials execute from top to bottom without an error (nbclient)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "docs" / "tutorials"
NOTEBOOKS = sorted(p.name for p in TUTORIALS.glob("*.ipynb"))


def test_there_are_three_tutorials():
    assert NOTEBOOKS == ["01_perceptron_to_mlp.ipynb", "02_cnn_fashion_mnist.ipynb", "03_lstm_sequences.ipynb"]


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_tutorial_notebook_executes(name, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    src = str(TUTORIALS.parents[1] / "src")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(TUTORIALS / name, as_version=4)
    committed = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.outputs for c in committed[1:]), f"{name}: the committed notebook lacks rendered outputs"
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(TUTORIALS)}})
    client.execute()  # raises CellExecutionError naming the cell that failed
    text = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert "gradcheck: True" in text or "test accuracy" in text
