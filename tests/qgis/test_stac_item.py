"""A STAC item as the scene of a Processing algorithm: the same tiles and embeddings as the file itself."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from qgis.core import QgsProcessingContext, QgsProcessingException
from qgis_helpers import RecordingFeedback


def _item(data_dir: Path, folder: Path) -> Path:
    """Single-band GeoTIFF copies of RGB.byte.tif's bands, and an item naming them by common name."""
    from osgeo import gdal

    assets = {}
    for band, name in ((1, "red"), (2, "green"), (3, "blue")):
        out = folder / f"B{band}.tif"
        gdal.Translate(str(out), str(data_dir / "RGB.byte.tif"), bandList=[band], creationOptions=["TILED=YES"])
        assets[name] = {"href": out.name, "type": "image/tiff; application=geotiff",
                        "roles": ["data"], "eo:bands": [{"name": f"B{band}", "common_name": name}]}
    doc = {"type": "Feature", "stac_version": "1.0.0", "id": "rgb-byte", "properties": {"datetime": "2000-01-01T00:00:00Z"},
           "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json"],
           "geometry": None, "links": [], "assets": assets}
    path = folder / "item.json"
    path.write_text(json.dumps(doc))
    return path


def _embeddings(gpkg: Path) -> dict[int, bytes]:
    with sqlite3.connect(gpkg) as db:
        return dict(db.execute("SELECT tile_id, embedding FROM rsgeo_embeddings"))


def test_embed_a_stac_item_equals_embedding_the_file(plugin, external, project, data_dir: Path, embedded: Path,
                                                     tmp_path: Path) -> None:
    import processing

    item = _item(data_dir, tmp_path)
    out = tmp_path / "from_item.gpkg"
    result = processing.run("rsgeo:embed", {"STAC_ITEM": str(item), "MODEL": "test:hash", "CHIP_SIZE": "64px",
                                            "OUTPUT": str(out)}, feedback=RecordingFeedback())
    assert result["LAYER_NAMES"] == "tiles"
    with sqlite3.connect(out) as db:
        meta = dict(db.execute("SELECT key, value FROM rsgeo_metadata"))
    assert json.loads(meta["scene"])["stac_item_id"] == "rgb-byte"
    assert _embeddings(out) == _embeddings(embedded)  # the fixture: RGB.byte.tif itself, test:hash, 64 px


def test_one_source_only_and_an_item_that_exists(plugin, project, data_dir: Path, embedded: Path, tmp_path: Path) -> None:
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().createAlgorithmById("rsgeo:classify")
    context = QgsProcessingContext()
    item = _item(data_dir, tmp_path)
    with pytest.raises(QgsProcessingException, match="one source"):
        alg.build_command({"STAC_ITEM": str(item), "RESULT": str(embedded), "CLASSES": "a,b"}, context)
    with pytest.raises(QgsProcessingException, match="JSON file that exists"):
        alg.build_command({"STAC_ITEM": str(tmp_path / "nope.json"), "CLASSES": "a,b"}, context)
    cmd = alg.build_command({"STAC_ITEM": str(item), "CLASSES": "a,b", "BANDS": "red, green, blue"}, context)
    assert cmd.source == str(item) and "--bands=red,green,blue" in cmd.argv()


def _stac_api(rsgeo_python: str, folder: Path) -> tuple[Any, str]:
    """rsgeo's test STAC API (tests/test_stac.py) serving ``folder``, in rsgeo's Python."""
    import os
    import subprocess

    from qgis_helpers import REPO

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.Popen([rsgeo_python, "-m", "tests.test_stac", str(folder)], cwd=REPO, stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout is not None
    return proc, f"http://127.0.0.1:{int(proc.stdout.readline())}/api"


def test_embed_a_stac_search_writes_one_result_per_item(plugin, external, project, data_dir: Path, embedded: Path,
                                                         tmp_path: Path, rsgeo_python: str) -> None:
    """Three items in the test API (5, 30 and 80 % cloud), the map extent in another CRS, at most 50 % cloud."""
    import processing
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject, QgsVectorLayer

    served = tmp_path / "www"
    (served / "items").mkdir(parents=True)
    item = json.loads(_item(data_dir, served).read_text())
    for name, cloud in (("S2_clear", 5.0), ("S2_hazy", 30.0), ("S2_cloudy", 80.0)):  # the ids the test API knows
        doc = {**item, "id": name, "collection": "s2-test",
               "properties": {**item["properties"], "eo:cloud_cover": cloud},
               "assets": {k: {**a, "href": f"../{a['href']}"} for k, a in item["assets"].items()}}
        (served / "items" / f"{name}.json").write_text(json.dumps(doc))
    tiles = QgsVectorLayer(f"{embedded}|layername=tiles", "tiles", "ogr")
    extent = QgsCoordinateTransform(tiles.crs(), QgsCoordinateReferenceSystem("EPSG:3857"),
                                    QgsProject.instance()).transformBoundingBox(tiles.extent())
    proc, api = _stac_api(rsgeo_python, served)
    try:
        out = tmp_path / "found"
        result = processing.runAndLoadResults("rsgeo:stacsearch", {
            "URL": api, "COLLECTION": "s2-test", "MAX_CLOUD": 50, "MAX_ITEMS": 5,
            "EXTENT": f"{extent.xMinimum()},{extent.xMaximum()},{extent.yMinimum()},{extent.yMaximum()} [EPSG:3857]",
            "MODEL": "test:hash", "CHIP_SIZE": "64px", "OUTPUT": str(out)}, feedback=RecordingFeedback())
    finally:
        proc.kill()
        proc.wait()
    assert sorted(result["LAYER_NAMES"].split(",")) == ["S2_clear", "S2_hazy"]  # the cloudy one left out
    for name in ("S2_clear", "S2_hazy"):
        assert _embeddings(out / f"{name}.gpkg") == _embeddings(embedded)
    loaded = [lyr.name() for lyr in QgsProject.instance().mapLayers().values()]
    assert sum("S2_" in n for n in loaded) == 2, loaded
