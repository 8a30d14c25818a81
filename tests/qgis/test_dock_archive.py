"""The search panel over a folder of results (an archive): one query, every scene, the best tiles only."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pyogrio
import pytest
from qgis.core import QgsProject
from qgis_helpers import open_in_dock, wait_until


def _cli(rsgeo_python: str, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([rsgeo_python, "-m", "rsgeo", *args, "-q"], check=True, env=env)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, rsgeo_python: str, data_dir: Path,
            embedded_template: Path) -> Path:
    """Two real scenes in two CRSs, encoded with the test encoder, in one folder."""
    folder = tmp_path_factory.mktemp("archive") / "results"
    folder.mkdir()
    shutil.copy(embedded_template, folder / "rgb.gpkg")
    _cli(rsgeo_python, "embed", str(data_dir / "L7_ETMs.tif"), "-o", str(folder / "landsat.gpkg"),
         "--model", "test:hash", "--chip-size", "64", "--bands", "3,2,1")
    return folder


def test_the_panel_answers_over_a_folder_as_the_cli(plugin, external, project, archive: Path, qgis_iface,
                                                     tmp_path: Path, rsgeo_python: str, data_dir: Path) -> None:
    dock, answers, errors = open_in_dock(plugin.ensure_dock(), lambda d: d.open_archive(str(archive)))
    assert "2 results" in dock.status.text()
    assert not dock.pick.isEnabled() and not dock.classify_button.isEnabled()  # text queries only
    dock.top_k.setValue(7)
    dock.ask("turquoise shallow water")
    assert wait_until(lambda: bool(answers) or bool(errors), 60), dock.status.text()
    assert not errors, errors
    got = answers[-1]
    assert got["tiles"] == 7 and dock.results.count() == 7
    layer = QgsProject.instance().mapLayer(got["layer"])
    assert layer is not None and layer.featureCount() == 7
    assert layer.renderer().type() == "graduatedSymbol"  # the style the answer file stores

    reference = tmp_path / "cli.gpkg"
    _cli(rsgeo_python, "query", str(archive), "--text", "turquoise shallow water", "--top-k", "7",
         "-o", str(reference))
    want = pyogrio.read_dataframe(reference, layer="query_turquoise_shallow_water")
    assert [(s, t) for s, t, _ in got["top"]] == list(zip(want["scene"], want["tile_id"]))
    assert [round(v, 5) for _, _, v in got["top"]] == [round(float(v), 5) for v in want["similarity"]]

    canvas = qgis_iface.mapCanvas()
    before = canvas.extent()
    dock._zoom_to_item(dock.results.item(0))
    assert canvas.extent() != before

    # A result added to the folder is searched by the next query: the folder is listed each time.
    _cli(rsgeo_python, "embed", str(data_dir / "RGB.byte.tif"), "-o", str(archive / "rgb_again.gpkg"),
         "--model", "test:hash", "--chip-size", "64")
    dock.top_k.setValue(40)  # more than the answer holds: asked again
    assert wait_until(lambda: len(answers) >= 2 or bool(errors), 60), dock.status.text()
    assert not errors, errors
    assert "rgb_again" in answers[-1]["scenes"]
    assert QgsProject.instance().mapLayer(got["layer"]) is None  # the earlier answer layer was replaced

    last = answers[-1]["layer"]
    dock.close_result(wait=True)
    assert QgsProject.instance().mapLayer(last) is None
    assert dock.archive is None and dock.client is None
