"""The notebooks run top to bottom (so they never rot), and their committed outputs are current.

The notebooks are committed with their outputs (``make notebooks`` makes them). The
fast tests here check those outputs without running anything: every code cell was
executed, in order, without an error, after its last edit (the code digest recorded
by scripts/run_notebooks.py), the figures are there, and a notebook whose figures come
from randomly initialised weights says so.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quickstart_notebook_executes(tmp_path: Path) -> None:
    nb = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}})
    client.execute()
    images = [
        out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    ]
    assert len(images) >= 3, "the scene, the class map and the heat map must be drawn"
    errors = [out for cell in nb.cells for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors


@pytest.mark.slow
def test_assessment_notebook_executes(tmp_path: Path) -> None:
    """sample -> labels from the reference -> assess on the real eo-learn scene, with the figure shown."""
    nb = nbformat.read(ROOT / "notebooks" / "assessment.ipynb", as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}})
    client.execute()
    images = [
        out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    ]
    assert images, "the confusion-matrix figure must be shown"
    errors = [out for cell in nb.cells for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors


def _script(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


#: Figures each committed notebook must show, and the words that say its model is not a trained one.
COMMITTED = {
    "quickstart.ipynb": (3, "randomly initialised weights"),
    "assessment.ipynb": (1, "deterministic `test:hash` encoder: its \"land cover\" is arbitrary"),
}


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_committed_outputs_are_current(name: str) -> None:
    """Outputs made by `make notebooks` from exactly these code cells, figures included."""
    run_notebooks = _script("run_notebooks")
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert nb.metadata.get("rsgeo", {}).get("code_sha256") == run_notebooks.code_digest(nb), (
        f"a code cell of {name} changed after its outputs were made; run `make notebooks`"
    )
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), f"{name} was not run top to bottom in one kernel: {counts}"
    assert all(cell.outputs for cell in code[1:]), f"a code cell of {name} has no output"
    outputs = [out for cell in code for out in cell.outputs]
    assert not [out for out in outputs if out.get("output_type") == "error"]
    figures, note = COMMITTED[name]
    assert sum("image/png" in out.get("data", {}) for out in outputs) >= figures
    markdown = " ".join(cell.source for cell in nb.cells if cell.cell_type == "markdown")
    markdown = " ".join(markdown.replace("**", "").replace("\n>", " ").split())  # quoted, wrapped, bold
    assert note in markdown, f"{name} must say that its figures do not come from trained weights"


def test_quickstart_is_what_its_script_writes() -> None:
    """notebooks/quickstart.ipynb holds the cells of scripts/make_quickstart_notebook.py (edit the script)."""
    built = _script("make_quickstart_notebook").build()
    committed = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in built.cells]
