"""Execute the notebooks in place, so they are committed with their outputs (`make notebooks`).

    python scripts/run_notebooks.py [NAME.ipynb ...]

Each notebook runs top to bottom in a fresh kernel, from notebooks/ (as Jupyter would).
The digest of its code cells is stored in the notebook's metadata (``rsgeo.code_sha256``):
tests/test_notebook.py fails when a code cell was changed after the outputs were made.
Per-cell timing metadata is dropped, so a rerun changes only what the code printed or drew.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = ("quickstart.ipynb", "assessment.ipynb")


def code_digest(nb: nbformat.NotebookNode) -> str:
    """SHA-256 of the notebook's code cells' sources, in order."""
    sources = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    return hashlib.sha256(json.dumps(sources, ensure_ascii=False).encode("utf-8")).hexdigest()


def execute(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    from rsgeo.version import __version__

    nb.metadata["rsgeo"] = {"code_sha256": code_digest(nb), "executed_with": f"rsgeo {__version__}"}
    nbformat.write(nb, path)
    print(f"executed {path}")


if __name__ == "__main__":
    for name in sys.argv[1:] or NOTEBOOKS:
        execute(NOTEBOOKS_DIR / name)
