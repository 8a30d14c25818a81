"""The quickstart notebook runs top to bottom (so it never rots)."""

from __future__ import annotations

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
