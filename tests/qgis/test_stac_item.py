"""A STAC item as the scene of a Processing algorithm: the same tiles and embeddings as the file itself."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

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
