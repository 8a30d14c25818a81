"""The plugin loads, registers its provider and GUI, unloads and reloads cleanly."""

from __future__ import annotations

import re

from qgis.core import QgsApplication
from qgis.PyQt.QtGui import QIcon
from qgis_helpers import ALGORITHM_IDS, PLUGIN_DIR


def _providers() -> list[str]:
    return [p.id() for p in QgsApplication.processingRegistry().providers()]


def test_plugin_loads_like_qgis_loads_it(plugin, qgis_iface) -> None:
    import qgis.utils

    assert "rsgeo_qgis" in qgis.utils.available_plugins
    assert "rsgeo_qgis" in qgis.utils.active_plugins
    meta = qgis.utils.plugins_metadata_parser["rsgeo_qgis"]
    assert meta.get("general", "qgisMinimumVersion") == "3.22"
    assert meta.get("general", "hasProcessingProvider") == "yes"
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta.get("general", "version"))
    icon = PLUGIN_DIR / "rsgeo_qgis" / meta.get("general", "icon")
    assert icon.is_file() and not QIcon(str(icon)).pixmap(32, 32).isNull()
    assert _providers().count("rsgeo") == 1
    provider = QgsApplication.processingRegistry().providerById("rsgeo")
    assert sorted(a.id() for a in provider.algorithms()) == sorted(ALGORITHM_IDS)
    assert not provider.icon().isNull()
    assert [a.text() for a in plugin.actions] == ["rsgeo search panel", "rsgeo settings…"]
    qgis_iface.mainWindow().show()  # offscreen
    try:
        plugin.dock_action.setChecked(True)  # the toolbar button
        assert plugin.dock is not None and plugin.dock.isUserVisible()
        assert plugin.dock.parent() is qgis_iface.mainWindow()
        plugin.dock_action.setChecked(False)
        assert not plugin.dock.isUserVisible()
        plugin.dock.setUserVisible(True)  # closing/opening the dock keeps the button in step
        assert plugin.dock_action.isChecked()
        plugin.dock.setUserVisible(False)
    finally:
        qgis_iface.mainWindow().hide()


def test_plugin_unloads_and_reloads(plugin) -> None:
    import qgis.utils

    assert qgis.utils.unloadPlugin("rsgeo_qgis")
    assert "rsgeo" not in _providers()
    assert qgis.utils.loadPlugin("rsgeo_qgis") and qgis.utils.startPlugin("rsgeo_qgis")
    assert qgis.utils.plugins["rsgeo_qgis"] is not plugin
    assert _providers().count("rsgeo") == 1


def test_qt_only_through_qgis_pyqt() -> None:
    """Qt 6 readiness: no direct PyQt5/PyQt6 imports, no exec_() (removed in Qt 6)."""
    offenders = []
    for path in (PLUGIN_DIR / "rsgeo_qgis").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for pattern in (r"^\s*(from|import)\s+PyQt[56]", r"\bexec_\(", r"^\s*(from|import)\s+sip\b"):
            if re.search(pattern, text, re.MULTILINE):
                offenders.append(f"{path.name}: {pattern}")
    assert not offenders, offenders
