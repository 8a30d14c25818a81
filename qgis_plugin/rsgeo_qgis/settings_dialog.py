"""Settings dialog (Plugins ▸ rsgeo ▸ rsgeo settings…): where rsgeo runs, the default model, its
local weights and cache folder, the device."""

from __future__ import annotations

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from . import settings as plugin_settings
from .backend import ENV_VAR, BackendError, find_backend
from .definitions.models import DEFAULT_MODEL
from .definitions.options import OPTIONS


def tr(text: str) -> str:
    return QCoreApplication.translate("rsgeo", text)


BACKEND_LABELS = {
    "auto": "Automatic (QGIS's Python if it has rsgeo and torch, else an external environment)",
    "inprocess": "Inside QGIS (rsgeo installed in QGIS's Python)",
    "external": "External Python environment",
}


class SettingsDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(tr("rsgeo settings"))
        s = plugin_settings.load()
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.backend = QComboBox(self)
        for key, label in BACKEND_LABELS.items():
            self.backend.addItem(tr(label), key)
        self.backend.setCurrentIndex(max(0, self.backend.findData(s.backend)))
        form.addRow(tr("Run rsgeo"), self.backend)
        self.python = QgsFileWidget(self)
        self.python.setFilePath(s.python)
        self.python.setToolTip(tr("A Python interpreter with rsgeo installed, e.g. ~/rsgeo-env/bin/python. "
                                  "Empty: {} or auto-detection.").format(ENV_VAR))
        form.addRow(tr("Python interpreter"), self.python)
        self.model = QLineEdit(s.model, self)
        form.addRow(tr("Default model"), self.model)
        self.checkpoint = QgsFileWidget(self)
        self.checkpoint.setObjectName("checkpoint")
        self.checkpoint.setFilePath(s.checkpoint)
        self.checkpoint.setToolTip(tr(
            "Weights downloaded by hand, for machines without internet: the model's file (RemoteCLIP .pt …), "
            "or the folder of an open_clip model (rs-m-clip). Used with the default model. Empty: download."))
        form.addRow(tr(OPTIONS["checkpoint"].label), self.checkpoint)
        self.cache_dir = QgsFileWidget(self)
        self.cache_dir.setObjectName("cache_dir")
        self.cache_dir.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.cache_dir.setFilePath(s.cache_dir)
        self.cache_dir.setToolTip(tr("Where downloaded weights are kept. Empty: the Hugging Face cache."))
        form.addRow(tr(OPTIONS["cache_dir"].label), self.cache_dir)
        self.device = QComboBox(self)
        self.device.addItems(list(plugin_settings.DEVICES))
        self.device.setCurrentText(s.device)
        form.addRow(tr("Device"), self.device)
        self.top_k = QSpinBox(self)
        self.top_k.setRange(1, 10000)
        self.top_k.setValue(s.top_k)
        form.addRow(tr("Search panel: top K"), self.top_k)
        layout.addLayout(form)
        check = QPushButton(tr("Check"), self)
        check.clicked.connect(self.check)
        layout.addWidget(check)
        self.report = QLabel(self)
        self.report.setWordWrap(True)
        self.report.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.report)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def current(self) -> plugin_settings.PluginSettings:
        return plugin_settings.PluginSettings(
            backend=str(self.backend.currentData()), python=self.python.filePath().strip(),
            model=self.model.text().strip() or DEFAULT_MODEL, device=self.device.currentText(),
            top_k=self.top_k.value(), checkpoint=self.checkpoint.filePath().strip(),
            cache_dir=self.cache_dir.filePath().strip(),
        )

    def check(self) -> None:
        """Show which rsgeo the current choices would use (or what to install)."""
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            self.report.setText(tr("Using {}").format(find_backend(self.current()).describe()))
        except BackendError as exc:
            self.report.setText(str(exc))
        finally:
            QApplication.restoreOverrideCursor()

    def accept(self) -> None:
        plugin_settings.save(self.current())
        super().accept()
