"""Draw a sample to label and Assess accuracy, through ``processing.run`` in a real QGIS.

The map: eo-learn's Sentinel-2 scene classified by ``test:hash`` in 10-pixel chips; the reference:
the real land-use raster on the same grid (tests/test_assessment.py checks the numbers; this checks
the algorithms' parameters, outputs and the worst-confused tiles layer).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException, QgsProject, QgsRasterLayer, QgsVectorLayer
from qgis_helpers import RecordingFeedback

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def landcover(tmp_path_factory: pytest.TempPathFactory, rsgeo_python: str, data_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("assess") / "s2.gpkg"
    subprocess.run([rsgeo_python, "-m", "rsgeo", "classify", str(data_dir / "eolearn" / "s2_l1c_scene2_13band.tif"),
                    "-o", str(out), "--model", "test:hash", "--chip-size", "10", "--bands", "4,3,2",
                    "--classes", "forest,grassland,shrubland,artificial surface,cultivated land", "-q"], check=True)
    return out


def test_sample_then_assess(plugin, external, project, landcover: Path, data_dir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    import processing

    result = processing.runAndLoadResults("rsgeo:sample", {
        "RESULT": str(landcover), "N": 40, "STRATIFIED": True, "MIN_PER_CLASS": 5, "SEED": 3,
        "OUTPUT": str(tmp_path / "samples.gpkg"),
    }, feedback=RecordingFeedback())
    assert result["LAYER_NAMES"] == "samples"
    points = [lyr for lyr in QgsProject.instance().mapLayers().values() if "samples" in lyr.name()]
    assert len(points) == 1 and points[0].featureCount() == 40
    assert "label" in points[0].fields().names()

    reference = QgsRasterLayer(str(data_dir / "eolearn" / "lulc.tif"), "lulc")
    QgsProject.instance().addMapLayer(reference)
    feedback = RecordingFeedback()
    out = tmp_path / "report"
    result = processing.runAndLoadResults("rsgeo:assess", {
        "RESULT": str(landcover), "REFERENCE": reference, "CLASS_MAP": str(REPO / "tests" / "data" / "eolearn_class_map.yaml"),
        "OUTPUT": str(out),
    }, feedback=feedback)
    report = json.loads((out / "report.json").read_text())
    assert result["REPORT_JSON"] == str(out / "report.json") and (out / "confusion_matrix.png").is_file()
    assert result["SUMMARY"].startswith("Overall accuracy") and report["sample_count"] == 110
    worst = [lyr for lyr in QgsProject.instance().mapLayers().values() if "worst-confused" in lyr.name()]
    assert len(worst) == 1 and isinstance(worst[0], QgsVectorLayer)
    assert sorted(f["tile_id"] for f in worst[0].getFeatures()) == sorted(w["tile_id"] for w in report["worst_confused"])


def test_assess_names_the_field_the_plugin_shows(plugin, external, project, landcover: Path, data_dir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    import processing

    polygons = QgsVectorLayer(str(data_dir / "eolearn" / "TestEOPatch__vector_timeless__LULC.gpkg"), "lulc", "ogr")
    QgsProject.instance().addMapLayer(polygons)
    with pytest.raises(QgsProcessingException, match="pass the class field with ‘Reference class field’"):
        processing.run("rsgeo:assess", {"RESULT": str(landcover), "REFERENCE": polygons, "REFERENCE_FIELD": "CLASS",
                                        "OUTPUT": str(tmp_path / "r")}, feedback=RecordingFeedback())
    assert not (tmp_path / "r").exists()
