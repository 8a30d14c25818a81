"""Enum names that moved between QGIS 3.22 and QGIS 3.36+/4.

QGIS 3.36 moved many Processing enums into the ``Qgis`` namespace and
deprecated the old class members; QGIS 4 (Qt 6) may drop them. Each name here
prefers the new spelling and falls back to the 3.22 one, so the plugin uses no
deprecated API on any version it supports.
"""

from __future__ import annotations

from typing import Any

from qgis.core import (
    Qgis,
    QgsProcessing,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
)


def _pick(new_enum: str, member: str, old_owner: Any, old_member: str) -> Any:
    enum = getattr(Qgis, new_enum, None)
    if enum is not None and hasattr(enum, member):
        return getattr(enum, member)
    return getattr(old_owner, old_member)


FLAG_ADVANCED = _pick("ProcessingParameterFlag", "Advanced", QgsProcessingParameterDefinition, "FlagAdvanced")
FLAG_OPTIONAL = _pick("ProcessingParameterFlag", "Optional", QgsProcessingParameterDefinition, "FlagOptional")
NUMBER_INTEGER = _pick("ProcessingNumberParameterType", "Integer", QgsProcessingParameterNumber, "Integer")
NUMBER_DOUBLE = _pick("ProcessingNumberParameterType", "Double", QgsProcessingParameterNumber, "Double")
SOURCE_POINT = _pick("ProcessingSourceType", "VectorPoint", QgsProcessing, "TypeVectorPoint")
SOURCE_POLYGON = _pick("ProcessingSourceType", "VectorPolygon", QgsProcessing, "TypeVectorPolygon")
FILE_BEHAVIOR_FILE = _pick("ProcessingFileParameterBehavior", "File", QgsProcessingParameterFile, "File")
FILE_BEHAVIOR_FOLDER = _pick("ProcessingFileParameterBehavior", "Folder", QgsProcessingParameterFile, "Folder")

# A colour ramp shader's interpolation (Qgis.ShaderInterpolationMethod since 3.30).
def _shader_linear() -> Any:
    from qgis.core import QgsColorRampShader

    enum = getattr(Qgis, "ShaderInterpolationMethod", None)
    return enum.Linear if enum is not None else QgsColorRampShader.Interpolated


SHADER_LINEAR = _shader_linear()

# Message levels (Qgis.MessageLevel exists since 3.x; the old Qgis.Info alias is deprecated).
_levels = getattr(Qgis, "MessageLevel", Qgis)
MSG_INFO = getattr(_levels, "Info")
MSG_WARNING = getattr(_levels, "Warning")
MSG_CRITICAL = getattr(_levels, "Critical")
MSG_SUCCESS = getattr(_levels, "Success")


def add_flag(param: QgsProcessingParameterDefinition, flag: Any) -> QgsProcessingParameterDefinition:
    """Set ``flag`` on ``param`` keeping its other flags; returns ``param``."""
    param.setFlags(param.flags() | flag)
    return param


def field_type(name: str) -> Any:
    """A ``QgsField`` type: ``QMetaType.Type`` on QGIS ≥ 3.38 (QVariant types are deprecated there)."""
    from qgis.PyQt.QtCore import QMetaType, QVariant

    if Qgis.versionInt() >= 33800:
        return getattr(QMetaType.Type, "QString" if name == "String" else name)
    return getattr(QVariant, name)
