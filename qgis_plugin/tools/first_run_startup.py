"""Run by QGIS (--code) for qgis_plugin/tools/first_run_screenshot.sh.

Adds the Landsat scene, runs "Classify land cover" with the defaults (no chip size: the model's
training ground size in the scene's pixels), loads the styled result, opens the algorithm's dialog
beside the map (Chip size in the main parameters), takes the screenshot and quits.
"""

import os
import sys

sys.path.insert(0, os.environ["RSGEO_SHOT_TOOLS"])  # shot_common, beside this script

import processing
from qgis.core import QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QCoreApplication, QTimer
from shot_common import LogFeedback, iface, prepare_window, shooter

dialog = None  # the algorithm's dialog, kept alive until the screenshot
shoot = shooter()


def start() -> None:
    prepare_window()
    scene = QgsRasterLayer(os.environ["RSGEO_SHOT_SCENE"], "L7_ETMs.tif (Landsat 7, Olinda)")
    renderer = scene.renderer()
    if hasattr(renderer, "setRedBand"):
        renderer.setRedBand(3), renderer.setGreenBand(2), renderer.setBlueBand(1)
    QgsProject.instance().addMapLayer(scene)
    params = {
        "INPUT": scene, "BANDS": "3,2,1", "CLASSES": "water, forest, urban area, cropland",
        "OUTPUT": os.environ["RSGEO_SHOT_OUTPUT"],
    }
    feedback = LogFeedback()
    try:
        processing.runAndLoadResults("rsgeo:classify", params, feedback=feedback)
    except Exception as exc:  # noqa: BLE001 - the log says what happened
        feedback.lines.append(f"FAILED: {exc}")
    feedback.write()
    for _ in range(20):
        QCoreApplication.processEvents()
    iface.layerTreeView().expandAll()  # the land-cover legend
    root = QgsProject.instance().layerTreeRoot()
    root.findLayer(scene.id()).setExpanded(False)
    global dialog
    try:
        dialog = processing.createAlgorithmDialog("rsgeo:classify", {
            "INPUT": scene, "BANDS": "3,2,1", "CLASSES": "water, forest, urban area, cropland"})
        dialog.setGeometry(820, 110, 770, 660)
        dialog.show()
        dialog.raise_()
    except Exception as exc:  # noqa: BLE001 - the log says what happened
        with open(os.environ["RSGEO_SHOT_LOG"], "a", encoding="utf-8") as f:
            f.write(f"dialog: {type(exc).__name__}: {exc}\n")
    canvas = iface.mapCanvas()
    canvas.mapCanvasRefreshed.connect(lambda: QTimer.singleShot(3000, shoot))
    canvas.setExtent(scene.extent())
    canvas.refresh()
    QTimer.singleShot(60000, shoot)  # the map was not drawn within a minute: shoot anyway


QTimer.singleShot(3000, start)
QTimer.singleShot(1500000, shoot)  # never hang
