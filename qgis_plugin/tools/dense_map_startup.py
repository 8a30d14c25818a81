"""Run by QGIS (--code) for qgis_plugin/tools/dense_map_screenshot.sh.

Adds RGB.byte.tif, runs "Classify land cover" with dense sub-chip maps on (random ViT-B-32
weights), keeps the dense class raster on top of the scene (the vector and tile-raster layers
hidden), expands its legend, takes the screenshot and quits.
"""

import os
import subprocess

import processing
import qgis.utils
from qgis.core import QgsApplication, QgsProcessingFeedback, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QCoreApplication, QTimer
from qgis.PyQt.QtWidgets import QDockWidget

iface = qgis.utils.iface
OUT = os.environ["RSGEO_SHOT_OUT"]
LOG = os.environ["RSGEO_SHOT_LOG"]
shot = False


class LogFeedback(QgsProcessingFeedback):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def pushInfo(self, info: str) -> None:  # noqa: N802
        self.lines.append(info)

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802,N803
        self.lines.append("ERROR: " + error)


def shoot() -> None:
    global shot
    if shot:
        return
    shot = True
    for _ in range(30):
        QCoreApplication.processEvents()
    subprocess.run(["import", "-window", "root", OUT], check=False)
    QgsProject.instance().clear()  # QGIS 3.22 may crash on exit with layers loaded
    QgsApplication.exit(0)


def start() -> None:
    window = iface.mainWindow()
    window.setGeometry(0, 0, 1600, 1000)  # Xvfb has no window manager to maximise it
    for name in ("Browser", "Browser2"):
        browser = window.findChild(QDockWidget, name)
        if browser is not None:
            browser.hide()
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
    with open(LOG, "w", encoding="utf-8") as f:
        f.write("\n".join(feedback.lines) + "\n")
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
