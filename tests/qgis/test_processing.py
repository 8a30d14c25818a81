"""The four Processing algorithms, run through ``processing.run`` in a real QGIS.

rsgeo runs in the external environment ``RSGEO_PYTHON``: QGIS's own Python
here has neither torch nor rsgeo.
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from pathlib import Path

import pytest
from qgis.core import (
    QgsFeature,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingException,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis_helpers import ALGORITHM_IDS, RecordingFeedback, render


def run_and_load(alg: str, params: dict, feedback: RecordingFeedback | None = None) -> dict:
    import processing

    return processing.runAndLoadResults(alg, params, feedback=feedback or RecordingFeedback())


def loaded(name_part: str, kind: type = QgsVectorLayer):  # noqa: ANN201
    """The one project layer of ``kind`` (vector, or raster) whose name contains ``name_part``."""
    layers = [lyr for lyr in QgsProject.instance().mapLayers().values()
              if name_part in lyr.name() and isinstance(lyr, kind)]
    assert len(layers) == 1, [lyr.name() for lyr in QgsProject.instance().mapLayers().values()]
    return layers[0]


def test_provider_lists_the_four_algorithms(plugin) -> None:
    from qgis.core import QgsApplication

    provider = QgsApplication.processingRegistry().providerById("rsgeo")
    assert provider is not None
    assert sorted(a.id() for a in provider.algorithms()) == sorted(ALGORITHM_IDS)
    for alg in provider.algorithms():
        assert alg.shortHelpString()
        assert alg.flags() & alg.FlagCanCancel


def test_qgis_python_has_neither_torch_nor_rsgeo(plugin, external) -> None:
    """The point of the external environment: nothing heavy is installed into QGIS's Python."""
    from rsgeo_qgis import settings
    from rsgeo_qgis.backend import find_backend

    assert importlib.util.find_spec("torch") is None
    assert importlib.util.find_spec("rsgeo") is None
    backend = find_backend(settings.load())
    assert backend.kind == "external"
    assert backend.python == external


def test_embed_scene(plugin, external, project, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "embed.gpkg"
    feedback = RecordingFeedback()
    result = run_and_load("rsgeo:embed", {
        "INPUT": str(data_dir / "RGB.byte.tif"), "OUTPUT": str(out), "MODEL": "test:hash", "CHIP_SIZE": "64",
    }, feedback)
    assert result["OUTPUT"] == str(out)
    assert result["LAYER_NAMES"] == "tiles"
    assert max(feedback.progress_values) == 100
    assert any("--progress=json" in c for c in feedback.commands)
    with sqlite3.connect(out) as db:
        n_emb = db.execute("SELECT COUNT(*) FROM rsgeo_embeddings").fetchone()[0]
    tiles = loaded("tiles (embed)")
    assert tiles.isValid() and tiles.featureCount() == n_emb > 50
    # The outline style stored by rsgeo, not Processing's default fill.
    symbol = tiles.renderer().symbol()
    assert symbol.symbolLayer(0).brushStyle() == 0  # Qt.NoBrush: outlines only


def test_classify_scene_styled_and_rendered(plugin, external, project, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "classify.gpkg"
    run_and_load("rsgeo:classify", {
        "INPUT": str(data_dir / "L7_ETMs.tif"), "OUTPUT": str(out), "MODEL": "test:hash",
        "CLASSES": "water, forest, urban area", "BANDS": "3,2,1", "CHIP_SIZE": "32",
    })
    layer = loaded("landcover (classify)")
    assert layer.renderer().type() == "categorizedSymbol"
    assert sorted(c.value() for c in layer.renderer().categories()) == ["forest", "urban area", "water"]
    assert {f["top_class"] for f in layer.getFeatures()} <= {"water", "forest", "urban area"}
    stats = render([layer], tmp_path / "classify.png")
    assert stats["painted"] > 0.5 * stats["sampled"], stats  # the tiles cover most of the scene extent
    assert stats["colours"] >= 2, stats  # at least two classes drawn in their own colours
    # The class raster beside the GeoPackage is on the map too, styled from its .qml: the layer's palette.
    raster = loaded("landcover_class (classify)", QgsRasterLayer)
    assert isinstance(raster, QgsRasterLayer) and raster.renderer().type() == "paletted"
    assert [c.label for c in raster.renderer().classes()] == ["water", "forest", "urban area"]
    from rsgeo_qgis.definitions.colours import LAYER_OPACITY

    assert raster.renderer().opacity() == pytest.approx(LAYER_OPACITY)  # as transparent as the stored vector styles
    assert raster.crs() == layer.crs()
    stats = render([raster], tmp_path / "classify_raster.png")
    assert stats["painted"] > 0.5 * stats["sampled"], stats  # the cells cover the scene
    assert not [lyr for lyr in QgsProject.instance().mapLayers().values() if "landcover_scores" in lyr.name()]


def test_classify_stored_embeddings_in_place(plugin, external, project, embedded: Path, tmp_path: Path) -> None:
    before = {r[0] for r in sqlite3.connect(embedded).execute("SELECT table_name FROM gpkg_contents")}
    # The file is open in QGIS while rsgeo replaces it (users keep the tiles on the map).
    tiles = QgsVectorLayer(f"{embedded}|layername=tiles", "tiles", "ogr")
    QgsProject.instance().addMapLayer(tiles)
    n_tiles = tiles.featureCount()
    result = run_and_load("rsgeo:classify", {
        "RESULT": str(embedded), "CLASSES": "sea, island, cloud", "LAYER": "islands", "OUTPUT": None,
    })
    assert result["OUTPUT"] == str(embedded)
    after = {r[0] for r in sqlite3.connect(embedded).execute("SELECT table_name FROM gpkg_contents")}
    assert after - before == {"islands"}
    layer = loaded("islands (rgb)")
    assert layer.isValid() and layer.renderer().type() == "categorizedSymbol"
    assert layer.featureCount() == n_tiles
    assert len(list(layer.getFeatures())) == n_tiles
    assert tiles.isValid() and len(list(tiles.getFeatures())) == n_tiles


def test_classify_with_a_class_set(plugin, external, project, embedded: Path) -> None:
    result = run_and_load("rsgeo:classify", {"RESULT": str(embedded), "CLASS_SET": "eurosat", "LAYER": "eurosat"})
    assert result["LAYER_NAMES"] == "eurosat"
    layer = loaded("eurosat (rgb)")
    assert layer.renderer().type() == "categorizedSymbol" and len(layer.renderer().categories()) == 10


def test_text_query_top_k(plugin, external, project, embedded: Path, tmp_path: Path) -> None:
    out = tmp_path / "query.gpkg"
    result = run_and_load("rsgeo:textquery", {
        "RESULT": str(embedded), "TEXT": "shallow turquoise water\nwhite clouds", "TOP_K": 15, "OUTPUT": str(out),
    })
    names = result["LAYER_NAMES"].split(",")
    assert len(names) == 2 and all(n.startswith("query_") for n in names), names
    for name in names:
        layer = loaded(f"{name} (query)")
        assert layer.renderer().type() == "graduatedSymbol"
        assert layer.featureCount() == 15
        ranks = sorted(f["rank"] for f in layer.getFeatures())
        assert ranks == list(range(1, 16))
        stats = render([layer], tmp_path / f"{name}.png")
        assert stats["painted"] > 0, stats
    # The input GeoPackage was left alone (an output was given).
    assert "query_" not in str({r[0] for r in sqlite3.connect(embedded).execute("SELECT table_name FROM gpkg_contents")})


def _best(layer: QgsVectorLayer) -> tuple[float, dict[int, float]]:
    sims = {int(f["tile_id"]): float(f["similarity"]) for f in layer.getFeatures()}
    return max(sims.values()), sims


def test_query_by_example_tile_id(plugin, external, project, embedded: Path) -> None:
    tiles = QgsVectorLayer(f"{embedded}|layername=tiles", "tiles", "ogr")
    example_id = int(list(tiles.getFeatures())[20]["tile_id"])
    result = run_and_load("rsgeo:querybyexample", {"RESULT": str(embedded), "LIKE_TILES": str(example_id)})
    (name,) = result["LAYER_NAMES"].split(",")
    layer = loaded(name)
    assert layer.renderer().type() == "graduatedSymbol"
    best, sims = _best(layer)
    # A tile is its own best match: the query vector is its embedding.
    assert sims[example_id] == pytest.approx(1.0, abs=1e-3) and sims[example_id] >= best - 1e-6


def test_query_by_example_point_in_another_crs(plugin, external, project, embedded: Path) -> None:
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform

    tiles = QgsVectorLayer(f"{embedded}|layername=tiles", "tiles", "ogr")
    target = list(tiles.getFeatures())[30]
    to_wgs84 = QgsCoordinateTransform(tiles.crs(), QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance())
    centre = to_wgs84.transform(target.geometry().centroid().asPoint())
    points = QgsVectorLayer("Point?crs=EPSG:4326", "examples", "memory")
    f = QgsFeature()
    f.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(centre)))
    points.dataProvider().addFeatures([f])
    feedback = RecordingFeedback()
    result = run_and_load("rsgeo:querybyexample", {
        "RESULT": str(embedded), "LIKE_FEATURES": points, "LAYER": "like_point", "TOP_K": 40,
    }, feedback)
    assert result["LAYER_NAMES"] == "like_point"
    assert any("@EPSG:4326" in c for c in feedback.commands), feedback.commands  # sent in its own CRS
    layer = loaded("like_point")
    assert layer.renderer().type() == "graduatedSymbol"
    assert layer.featureCount() == 40
    best, sims = _best(layer)
    # rsgeo reprojected the WGS 84 point into the scene CRS and found the tile under it.
    assert sims[int(target["tile_id"])] == pytest.approx(1.0, abs=1e-3) and sims[int(target["tile_id"])] >= best - 1e-6


def test_query_by_example_polygon_feature(plugin, external, project, embedded: Path) -> None:
    tiles = QgsVectorLayer(f"{embedded}|layername=tiles", "tiles", "ogr")
    target = int(list(tiles.getFeatures())[40]["tile_id"])
    inside = next(f for f in tiles.getFeatures() if int(f["tile_id"]) == target).geometry().centroid().buffer(100.0, 8)
    polygons = QgsVectorLayer(f"Polygon?crs={tiles.crs().authid()}", "examples", "memory")
    f = QgsFeature()
    f.setGeometry(inside)  # a small polygon within one 19 km tile
    polygons.dataProvider().addFeatures([f])
    feedback = RecordingFeedback()
    failure = None
    try:
        result = run_and_load("rsgeo:querybyexample", {"RESULT": str(embedded), "LIKE_FEATURES": polygons,
                                                       "LAYER": "like_polygon"}, feedback)
    except QgsProcessingException as exc:
        failure = str(exc)
    del tiles, polygons  # no layer may outlive QGIS in a kept traceback
    assert any("--like=polygon" in c.lower() for c in feedback.commands), feedback.commands
    assert failure is None, failure
    assert result["LAYER_NAMES"] == "like_polygon"
    best, sims = _best(loaded("like_polygon"))
    assert sims[target] >= best - 1e-6


def test_random_open_clip_architecture_through_external_env(plugin, external, project, data_dir: Path,
                                                            tmp_path: Path) -> None:
    """A real open_clip model (ViT-S-32, randomly initialised) runs in the external environment."""
    out = tmp_path / "vit.gpkg"
    feedback = RecordingFeedback()
    run_and_load("rsgeo:classify", {
        "INPUT": str(data_dir / "L7_ETMs.tif"), "OUTPUT": str(out), "MODEL": "arch:ViT-S-32", "BANDS": "3,2,1",
        "CHIP_SIZE": "112", "CLASSES": "water, forest, city", "DEVICE": 1, "DENSE": True,
    }, feedback)
    meta = dict(sqlite3.connect(out).execute("SELECT key, value FROM rsgeo_metadata").fetchall())
    assert "arch:ViT-S-32" in meta["model"]
    layer = loaded("landcover (vit)")
    assert layer.renderer().type() == "categorizedSymbol"
    grid = json.loads(meta["grid"])
    assert layer.featureCount() == grid["n_rows"] * grid["n_cols"] > 4  # every chip of this nodata-free scene
    stats = render([layer], tmp_path / "vit.png")
    assert stats["painted"] > 0.5 * stats["sampled"], stats
    # DENSE: the sub-chip class map from the patch tokens (ViT-S-32: 32 px patches), finer than the tiles
    dense = loaded("landcover_dense_class (vit)", QgsRasterLayer)
    assert isinstance(dense, QgsRasterLayer) and dense.renderer().type() == "paletted"
    tiles = loaded("landcover_class (vit)", QgsRasterLayer)
    assert dense.width() > tiles.width() and dense.height() > tiles.height()  # finer than the tile raster
    assert render([dense], tmp_path / "vit_dense.png")["painted"] > 0


def test_the_engine_and_int8_reach_the_run(plugin, external, project, data_dir: Path, tmp_path: Path) -> None:
    """The advanced Inference engine and Precision fields: OpenVINO's static int8, calibrated on the scene."""
    from rsgeo_qgis.algorithms.base import ENGINES, PRECISIONS

    out = tmp_path / "int8.gpkg"
    run_and_load("rsgeo:classify", {
        "INPUT": str(data_dir / "L7_ETMs.tif"), "OUTPUT": str(out), "MODEL": "arch:ViT-S-32", "BANDS": "3,2,1",
        "CHIP_SIZE": "112", "CLASSES": "water, forest, city", "DEVICE": 1, "CACHE_DIR": str(tmp_path / "cache"),
        "ENGINE": ENGINES.index("openvino"), "PRECISION": PRECISIONS.index("int8"),
    })
    model = json.loads(dict(sqlite3.connect(out).execute("SELECT key, value FROM rsgeo_metadata").fetchall())["model"])
    assert (model["engine"], model["precision"]) == ("openvino", "int8")
    assert model["calibration"]["chips"] > 0
    assert loaded("landcover (int8)").featureCount() > 4


def test_scene_must_be_a_raster_file(plugin) -> None:
    from rsgeo_qgis.algorithms.base import scene_file

    remote = QgsRasterLayer("crs=EPSG:3857&format=image/png&layers=x&styles=&url=http://localhost:1/wms", "remote", "wms")
    with pytest.raises(QgsProcessingException, match="Save it as a GeoTIFF"):
        scene_file(remote)


def test_rsgeo_error_is_one_clear_line(plugin, external, project, embedded: Path) -> None:
    import processing

    feedback = RecordingFeedback()
    with pytest.raises(QgsProcessingException):
        processing.run("rsgeo:classify", {"RESULT": str(embedded), "CLASSES": "a,b", "MODEL": "arch:ViT-S-32"},
                       feedback=feedback)
    errors = " ".join(feedback.errors)
    assert "was encoded with model" in errors and "Traceback" not in errors, feedback.errors


def test_text_query_on_a_scene(plugin, external, project, data_dir: Path, tmp_path: Path) -> None:
    """Straight from the scene (embedding and answering in one run)."""
    out = tmp_path / "scene_query.gpkg"
    result = run_and_load("rsgeo:textquery", {
        "INPUT": str(data_dir / "L7_ETMs.tif"), "BANDS": "3,2,1", "CHIP_SIZE": "64", "TEXT": "mangrove forest",
        "THRESHOLD": -1.0, "OUTPUT": str(out),
    })
    (name,) = result["LAYER_NAMES"].split(",")
    layer = loaded(f"{name} (scene_query)")
    assert layer.renderer().type() == "graduatedSymbol" and layer.featureCount() > 4
    assert render([layer], tmp_path / "scene_query.png")["painted"] > 0
    raster = loaded(f"{name}_similarity (scene_query)", QgsRasterLayer)
    assert isinstance(raster, QgsRasterLayer) and raster.renderer().type() == "singlebandpseudocolor"
    assert render([raster], tmp_path / "scene_query_raster.png")["colours"] >= 2


def test_no_rasters_leaves_only_the_vector_layer(plugin, external, project, embedded: Path, tmp_path: Path) -> None:
    out = tmp_path / "plain.gpkg"
    result = run_and_load("rsgeo:classify", {
        "RESULT": str(embedded), "CLASSES": "sea, island", "OUTPUT": str(out), "RASTERS": False,
    })
    assert result["OUTPUT_RASTERS"] == [] and not list(tmp_path.glob("plain_*.tif"))
    assert isinstance(loaded("landcover (plain)"), QgsVectorLayer)
    feedback = RecordingFeedback()
    with pytest.raises(QgsProcessingException):
        run_and_load("rsgeo:classify", {"RESULT": str(embedded), "CLASSES": "sea, island", "OUTPUT": str(out),
                                        "RASTERS": False, "DENSE": True}, feedback)
    assert any("Dense maps are rasters" in e for e in feedback.errors), feedback.errors


def test_query_by_example_on_a_scene_with_a_map_point(plugin, external, project, data_dir: Path,
                                                      tmp_path: Path) -> None:
    """The map-point parameter ("x,y [EPSG:code]", as the point picker fills it) on a scene."""
    scene = QgsRasterLayer(str(data_dir / "L7_ETMs.tif"), "l7")
    centre = scene.extent().center()
    out = tmp_path / "scene_example.gpkg"
    feedback = RecordingFeedback()
    result = run_and_load("rsgeo:querybyexample", {
        "INPUT": scene, "BANDS": "3,2,1", "CHIP_SIZE": "64", "OUTPUT": str(out),
        "LIKE_POINT": f"{centre.x()},{centre.y()} [{scene.crs().authid()}]", "TOP_K": 3,
    }, feedback)
    (name,) = result["LAYER_NAMES"].split(",")
    assert any(f"@{scene.crs().authid()}" in c for c in feedback.commands), feedback.commands
    layer = loaded(f"{name} (scene_example)")
    assert layer.renderer().type() == "graduatedSymbol" and layer.featureCount() == 3
    best = min(layer.getFeatures(), key=lambda f: f["rank"])
    assert best.geometry().contains(QgsGeometry.fromPointXY(centre))  # the tile under the point is its best match
