"""Run by QGIS (--code) for qgis_plugin/tools/dense_map_screenshot.sh.

Adds RGB.byte.tif, runs "Classify land cover" with dense sub-chip maps on (random ViT-B-32
weights), keeps the dense class raster on top of the scene (the vector and tile-raster layers
hidden), expands its legend, takes the screenshot and quits.
"""

import os
import sys

sys.path.insert(0, os.environ["RSGEO_SHOT_TOOLS"])  # shot_common, beside this script

import processing
from qgis.core import QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QCoreApplication, QTimer
from shot_common import LogFeedback, iface, prepare_window, shooter

shoot = shooter()


def start() -> None:
    prepare_window()
    scene = QgsRasterLayer(os.environ["RSGEO_SHOT_SCENE"], "RGB.byte.tif")
    QgsProject.instance().addMapLayer(scene)
    params = {
        "INPUT": scene, "CLASSES": "water, forest, urban area, cropland, bare soil", "MODEL": "arch:ViT-B-32",
        "CHIP_SIZE": "64px", "STRIDE": "32px", "DENSE": True, "OUTPUT": os.environ["RSGEO_SHOT_OUTPUT"],
    }
    feedback = LogFeedback()
    try:
        processing.runAndLoadResults("rsgeo:classify", params, feedback=feedback)
    except Exception as exc:  # noqa: BLE001 - the log says what happened
        feedback.lines.append(f"FAILED: {exc}")
    feedback.write()
    for _ in range(20):
        QCoreApplication.processEvents()
    root = QgsProject.instance().layerTreeRoot()
    for node in root.findLayers():
        name = node.layer().name()
        dense = "dense_class" in name
        node.setItemVisibilityChecked(dense or node.layer() is scene)
        node.setExpanded(dense)
        if dense:
            node.layer().renderer().setOpacity(0.75)
    canvas = iface.mapCanvas()
    canvas.mapCanvasRefreshed.connect(lambda: QTimer.singleShot(3000, shoot))
    canvas.setExtent(scene.extent())
    canvas.refresh()
    QTimer.singleShot(60000, shoot)  # the map was not drawn within a minute: shoot anyway


QTimer.singleShot(3000, start)
QTimer.singleShot(1500000, shoot)  # never hang
