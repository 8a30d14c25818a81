"""Run by QGIS (--code) for qgis_plugin/tools/first_run_screenshot.sh.

Adds the Landsat scene, runs "Classify land cover" with the defaults (no chip size: the model's
training ground size in the scene's pixels), loads the styled result, opens the algorithm's dialog
beside the map (Chip size in the main parameters), takes the screenshot and quits.
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
dialog = None  # the algorithm's dialog, kept alive until the screenshot
LOG = os.environ["RSGEO_SHOT_LOG"]


class LogFeedback(QgsProcessingFeedback):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def pushInfo(self, info: str) -> None:  # noqa: N802
        self.lines.append(info)

    def pushCommandInfo(self, info: str) -> None:  # noqa: N802
        self.lines.append(info)

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802,N803
        self.lines.append("ERROR: " + error)

    def setProgressText(self, text: str) -> None:  # noqa: N802
        if not self.lines or self.lines[-1] != text:
            self.lines.append(text)


shot = False


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
    with open(LOG, "w", encoding="utf-8") as f:
        f.write("\n".join(feedback.lines) + "\n")
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
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(f"dialog: {type(exc).__name__}: {exc}\n")
    canvas = iface.mapCanvas()
    canvas.mapCanvasRefreshed.connect(lambda: QTimer.singleShot(3000, shoot))
    canvas.setExtent(scene.extent())
    canvas.refresh()
    QTimer.singleShot(60000, shoot)  # the map was not drawn within a minute: shoot anyway


QTimer.singleShot(3000, start)
QTimer.singleShot(1500000, shoot)  # never hang
