"""Run by QGIS (--code) for qgis_plugin/tools/screenshot.sh: open the result, ask, screenshot, quit.

The query is "more tiles like this one" for the tile of the brightest shallow turquoise water:
with the test encoder (colour statistics) that is a question whose answer can be judged by eye.
"""

import os
import sys

sys.path.insert(0, os.environ["RSGEO_SHOT_TOOLS"])  # shot_common, beside this script

import qgis.utils
from qgis.core import QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtWidgets import QDockWidget
from shot_common import iface, prepare_window, shooter


def expand_legend() -> None:
    root = QgsProject.instance().layerTreeRoot()
    iface.layerTreeView().expandAll()  # the graduated legend
    root.findLayer(scene.id()).setExpanded(False)


shoot = shooter(expand_legend, clear=False)


def answered(_summary: dict) -> None:
    canvas = iface.mapCanvas()
    canvas.setExtent(scene.extent())
    canvas.refresh()
    QTimer.singleShot(4000, shoot)


def turquoise_tile() -> int:
    """The tile whose centre pixel is the brightest green-blue (shallow water over sand)."""
    provider = scene.dataProvider()
    best, best_score = None, -1.0
    for f in dock.search.layer.getFeatures():
        p = f.geometry().centroid().asPoint()
        r, g, b = (provider.sample(p, band)[0] for band in (1, 2, 3))
        score = (g + b) / 2 - r if min(r, g, b) > 0 else -1.0
        if score > best_score:
            best, best_score = int(f["tile_id"]), score
    return best


def ready() -> None:
    if dock.query.isEnabled():
        dock.add_example(turquoise_tile())
    else:
        QTimer.singleShot(500, ready)


def start() -> None:
    global scene, dock
    prepare_window()
    window = iface.mainWindow()
    layers = window.findChild(QDockWidget, "Layers")
    scene = QgsRasterLayer(os.environ["RSGEO_SHOT_SCENE"], "RGB.byte.tif (Landsat 7, Bahamas)")
    QgsProject.instance().addMapLayer(scene)
    plugin = qgis.utils.plugins["rsgeo_qgis"]
    plugin.show_dock(True)
    dock = plugin.dock
    if layers is not None:
        window.resizeDocks([layers, dock], [300, 380], Qt.Orientation.Horizontal)
    dock.answered.connect(answered)
    dock.open_result(os.environ["RSGEO_SHOT_RESULT"])
    QTimer.singleShot(500, ready)
    QTimer.singleShot(120000, shoot)  # never hang


QTimer.singleShot(3000, start)
