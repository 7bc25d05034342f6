"""The notebooks in ``notebooks/`` execute (nbclient, kernel ``python3``, working folder
``notebooks/`` so their ``../scenarios/`` paths work) and are committed without outputs. Each
notebook asserts its own numbers (simulation against ``kinesim.theory``) in its last cells."""
from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="install the test extras: pip install -e '.[test]'")
nbclient = pytest.importorskip("nbclient", reason="install the test extras: pip install -e '.[test]'")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = ("01-throttling.ipynb", "02-sizing.ipynb", "03-consumer-lag.ipynb")


def test_the_notebooks_exist_without_outputs():
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert set(EXPECTED) <= set(names), names
    for name in names:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata["kernelspec"]["name"] == "python3"
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{name}: clear the outputs before committing"


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_executes(name, monkeypatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend draws the figures
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=120,
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError with the cell and traceback on failure
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert images >= 1, "every notebook draws at least one figure"
    if name == "01-throttling.ipynb":
        assert "largest gap between simulation and theory" in text
    if name == "03-consumer-lag.ipynb":
        assert "alarm at 16.0 h, loss from 32.0 h" in text
