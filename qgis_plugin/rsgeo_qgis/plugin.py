"""The QGIS plugin object: Processing provider, dock widget and menu entries."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .definitions.options import SETTINGS_MENU_ITEM
from .provider import ICON, RsgeoProvider

MENU = "&rsgeo"


def tr(text: str) -> str:
    return QCoreApplication.translate("rsgeo", text)


class RsgeoPlugin:
    """Created by :func:`rsgeo_qgis.classFactory`; ``iface`` is None-safe for qgis_process."""

    def __init__(self, iface: Any) -> None:
        self.iface = iface
        self.provider: RsgeoProvider | None = None
        self.dock: Any = None
        self.actions: list[QAction] = []

    # Processing (also called by qgis_process, without a GUI) -------------------------------
    def initProcessing(self) -> None:  # noqa: N802 - QGIS API
        if self.provider is None:
            self.provider = RsgeoProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    # GUI -----------------------------------------------------------------------------------
    def initGui(self) -> None:  # noqa: N802 - QGIS API
        self.initProcessing()
        icon = QIcon(str(ICON))
        dock_action = QAction(icon, tr("rsgeo search panel"), self.iface.mainWindow())
        dock_action.setCheckable(True)
        dock_action.toggled.connect(self.show_dock)
        settings_action = QAction(tr(SETTINGS_MENU_ITEM), self.iface.mainWindow())
        settings_action.triggered.connect(self.show_settings)
        for action in (dock_action, settings_action):
            self.iface.addPluginToMenu(MENU, action)
            self.actions.append(action)
        self.iface.addToolBarIcon(dock_action)
        self.dock_action = dock_action

    def unload(self) -> None:
        for action in self.actions:
            self.iface.removePluginMenu(MENU, action)
            self.iface.removeToolBarIcon(action)
        self.actions = []
        if self.dock is not None:
            self.dock.shutdown()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    def ensure_dock(self) -> Any:
        """The dock widget, created on first use."""
        if self.dock is None:
            from .dock import RsgeoDock  # noqa: PLC0415 - GUI only

            self.dock = RsgeoDock(self.iface, self.iface.mainWindow())
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
            self.dock.visibilityChanged.connect(self._dock_visibility)
        return self.dock

    def show_dock(self, visible: bool = True) -> None:
        dock = self.ensure_dock()
        dock.setUserVisible(visible)

    def _dock_visibility(self, visible: bool) -> None:
        if hasattr(self, "dock_action") and self.dock_action.isChecked() != visible:
            self.dock_action.blockSignals(True)
            self.dock_action.setChecked(visible)
            self.dock_action.blockSignals(False)

    def show_settings(self) -> None:
        from .settings_dialog import SettingsDialog  # noqa: PLC0415 - GUI only

        SettingsDialog(self.iface.mainWindow()).exec()
