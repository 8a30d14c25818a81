"""Classify zones and Rank zones by text, through ``processing.run`` in a real QGIS.

The zones are a memory layer in EPSG:4326 over a scene in UTM: the plugin must hand
them to rsgeo as a file (Processing exports them), and the answers must equal what the
rsgeo CLI gives for the same zones.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsField,
    QgsGeometry,
    QgsProcessingFeatureSourceDefinition,
    QgsProject,
    QgsRectangle,
    QgsVectorFileWriter,
    QgsVectorLayer,
)
from qgis_helpers import RecordingFeedback

CLASSES = "sea, island, cloud"


def _zones_layer(embedded: Path) -> QgsVectorLayer:
    """Three zones in EPSG:4326: one over several chips, one smaller than a pixel, one off the scene."""
    from rsgeo_qgis.compat import field_type

    tiles = QgsVectorLayer(f"{embedded}|layername=tiles", "tiles", "ogr")
    ext = tiles.extent()
    cx, cy = ext.center().x(), ext.center().y()
    rects = {
        "big": QgsRectangle(cx - 30_000, cy - 20_000, cx + 30_000, cy + 20_000),
        "tiny": QgsRectangle(cx + 40_000, cy, cx + 40_100, cy + 100),
        "away": QgsRectangle(ext.xMaximum() + 50_000, cy, ext.xMaximum() + 80_000, cy + 30_000),
    }
    to_wgs84 = QgsCoordinateTransform(tiles.crs(), QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance())
    layer = QgsVectorLayer("Polygon?crs=EPSG:4326", "fields", "memory")
    layer.dataProvider().addAttributes([QgsField("name", field_type("String"))])
    layer.updateFields()
    features = []
    for name, rect in rects.items():
        geom = QgsGeometry.fromRect(rect)
        geom.transform(to_wgs84)
        f = QgsFeature(layer.fields())
        f.setGeometry(geom)
        f["name"] = name
        features.append(f)
    assert layer.dataProvider().addFeatures(features)[0]
    QgsProject.instance().addMapLayer(layer)
    return layer


def _run(alg: str, params: dict) -> dict:
    import processing

    return processing.runAndLoadResults(alg, params, feedback=RecordingFeedback())


def _answers(gpkg: str, layer: str) -> dict[str, dict]:
    lyr = QgsVectorLayer(f"{gpkg}|layername={layer}", layer, "ogr")
    assert lyr.isValid(), (gpkg, layer)
    return {f["name"]: {k: f[k] for k in lyr.fields().names()} for f in lyr.getFeatures()}


def _cli(rsgeo_python: str, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([rsgeo_python, "-m", "rsgeo", *args, "-q"], check=True, env=env)


def _file_copy(layer: QgsVectorLayer, path: Path) -> str:
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = "fields"
    error = QgsVectorFileWriter.writeAsVectorFormatV3(layer, str(path), QgsProject.instance().transformContext(), options)
    assert error[0] == QgsVectorFileWriter.NoError, error
    return f"{path}:fields"


def test_classify_zones_from_a_memory_layer_equals_the_cli(plugin, external, project, embedded: Path,
                                                            tmp_path: Path, rsgeo_python: str) -> None:
    zones = _zones_layer(embedded)
    out = tmp_path / "zones.gpkg"
    result = _run("rsgeo:classifyzones", {
        "RESULT": str(embedded), "ZONES": zones, "CLASSES": CLASSES, "UNSURE_BELOW": 0.0, "OUTPUT": str(out),
    })
    assert result["LAYER_NAMES"] == "zones"
    loaded = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.source().endswith("layername=zones")]
    assert len(loaded) == 1 and loaded[0].featureCount() == 3
    assert loaded[0].crs().authid() == "EPSG:32618"  # the scene's CRS, not the zones'
    assert loaded[0].renderer().type() == "categorizedSymbol"  # the style rsgeo stored
    assert {c.value() for c in loaded[0].renderer().categories()} >= {"sea", "island", "cloud"}
    got = _answers(str(out), "zones")
    assert {k: v["status"] for k, v in got.items()} == {"big": "ok", "tiny": "too_small", "away": "no_data"}
    assert got["big"]["top_class"] in {"sea", "island", "cloud"}
    total = sum(got["big"][c] for c in ("sea", "island", "cloud") if c in got["big"])
    assert total == pytest.approx(1.0, abs=1e-5)

    # The same zones given to the CLI as a file: the plugin changed nothing on the way.
    cli_out = tmp_path / "cli.gpkg"
    _cli(rsgeo_python, "classify", str(embedded), "--zones", _file_copy(zones, tmp_path / "fields.gpkg"),
         "--classes", CLASSES.replace(" ", ""), "-o", str(cli_out))
    want = _answers(str(cli_out), "zones")
    for name in ("big", "tiny", "away"):
        for key, value in want[name].items():
            if key == "fid":
                continue
            if isinstance(value, float):
                assert got[name][key] == pytest.approx(value, abs=1e-6, nan_ok=True), (name, key)
            else:
                assert got[name][key] == value, (name, key)


def test_rank_zones_only_the_selected_ones(plugin, external, project, embedded: Path, tmp_path: Path) -> None:
    zones = _zones_layer(embedded)
    zones.selectByExpression("\"name\" IN ('big', 'away')")
    out = tmp_path / "ranked.gpkg"
    result = _run("rsgeo:queryzones", {
        "RESULT": str(embedded), "TEXT": "shallow turquoise water",
        "ZONES": QgsProcessingFeatureSourceDefinition(zones.id(), selectedFeaturesOnly=True),
        "LAYER": "water_fields", "OUTPUT": str(out),
    })
    assert result["LAYER_NAMES"] == "water_fields"
    got = _answers(str(out), "water_fields")
    assert set(got) == {"big", "away"}  # the unselected zone was not sent
    assert got["big"]["status"] == "ok" and -1.0 <= got["big"]["similarity"] <= 1.0
    assert got["away"]["status"] == "no_data"


def test_zones_need_two_classes_or_a_query(plugin, project, embedded: Path) -> None:
    from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingException

    alg = QgsApplication.processingRegistry().createAlgorithmById("rsgeo:classifyzones")
    zones = _zones_layer(embedded)
    with pytest.raises(QgsProcessingException, match="either a class set or a list"):
        alg.build_command({"RESULT": str(embedded), "ZONES": zones, "CLASSES": "a,b", "CLASS_SET": "eurosat"},
                          QgsProcessingContext())
    with pytest.raises(QgsProcessingException, match="at least two classes"):
        alg.build_command({"RESULT": str(embedded), "ZONES": zones, "CLASSES": "sea"}, QgsProcessingContext())
    with pytest.raises(QgsProcessingException, match="at least one query"):
        QgsApplication.processingRegistry().createAlgorithmById("rsgeo:queryzones").build_command(
            {"RESULT": str(embedded), "ZONES": zones, "TEXT": "  "}, QgsProcessingContext())


def test_classify_zones_of_a_scene_masks_each_zone(plugin, external, project, embedded: Path, data_dir: Path,
                                                   tmp_path: Path, rsgeo_python: str) -> None:
    """A raster layer as input: each zone is encoded from its own chips, pixels outside it masked."""
    from qgis.core import QgsRasterLayer

    zones = _zones_layer(embedded)
    scene = QgsRasterLayer(str(data_dir / "RGB.byte.tif"), "rgb")
    QgsProject.instance().addMapLayer(scene)
    out = tmp_path / "scene_zones.gpkg"
    result = _run("rsgeo:classifyzones", {
        "INPUT": scene, "ZONES": zones, "CLASSES": CLASSES, "MODEL": "test:hash", "CHIP_SIZE": "64px",
        "OUTPUT": str(out),
    })
    assert result["LAYER_NAMES"] == "zones"
    got = _answers(str(out), "zones")
    assert {k: v["status"] for k, v in got.items()} == {"big": "ok", "tiny": "too_small", "away": "no_data"}
    cli_out = tmp_path / "cli_scene.gpkg"
    _cli(rsgeo_python, "classify", str(data_dir / "RGB.byte.tif"), "--zones",
         _file_copy(zones, tmp_path / "fields.gpkg"), "--classes", CLASSES.replace(" ", ""), "--model", "test:hash",
         "--chip-size", "64px", "-o", str(cli_out))
    want = _answers(str(cli_out), "zones")
    assert got["big"]["top_class"] == want["big"]["top_class"]
    assert got["big"]["top_score"] == pytest.approx(want["big"]["top_score"], abs=1e-6)
    # Masked chips, not the stored whole chips: the answer differs from the one from the embedded result.
    stored = tmp_path / "stored.gpkg"
    _cli(rsgeo_python, "classify", str(embedded), "--zones", _file_copy(zones, tmp_path / "f2.gpkg"),
         "--classes", CLASSES.replace(" ", ""), "-o", str(stored))
    assert _answers(str(stored), "zones")["big"]["top_score"] != pytest.approx(got["big"]["top_score"], abs=1e-6)


def test_classify_zones_with_a_class_set(plugin, external, project, embedded: Path, tmp_path: Path) -> None:
    zones = _zones_layer(embedded)
    out = tmp_path / "eurosat_zones.gpkg"
    _run("rsgeo:classifyzones", {"RESULT": str(embedded), "ZONES": zones, "CLASS_SET": "eurosat", "OUTPUT": str(out)})
    got = _answers(str(out), "zones")
    loaded = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.source().endswith("layername=zones")]
    assert len(loaded) == 1 and len(loaded[0].renderer().categories()) == 10  # EuroSAT's ten classes in the legend
    assert got["big"]["status"] == "ok" and got["big"]["top_class"] in {c.value() for c in loaded[0].renderer().categories()}
