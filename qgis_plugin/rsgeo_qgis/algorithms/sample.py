"""Processing algorithm: Draw a sample to label (``rsgeo sample``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..compat import FILE_BEHAVIOR_FILE, NUMBER_INTEGER
from ..resultfile import NotAResultError, check_result
from ..runner import RsgeoCommand
from .base import RsgeoAlgorithm, tr


def result_parameter(name: str) -> QgsProcessingParameterFile:
    return QgsProcessingParameterFile(
        name, tr("rsgeo GeoPackage with a land-cover layer (from Classify land cover)"),
        behavior=FILE_BEHAVIOR_FILE, extension="gpkg")


def checked_result(alg: RsgeoAlgorithm, parameters: dict[str, Any], context: QgsProcessingContext) -> str:
    path = alg.parameterAsFile(parameters, alg.RESULT, context).strip()
    try:
        check_result(path)
    except NotAResultError as exc:
        raise QgsProcessingException(str(exc)) from None
    return path


def checked_layer(alg: RsgeoAlgorithm, parameters: dict[str, Any], context: QgsProcessingContext) -> str:
    layer = alg.parameterAsString(parameters, "LAYER", context).strip() or "landcover"
    if not re.fullmatch(r"[^\x00-\x1f\"]+", layer):
        raise QgsProcessingException(tr("Layer name {!r} holds control characters or quotes.").format(layer))
    return layer


class SampleAlgorithm(RsgeoAlgorithm):
    command = "sample"
    accepts_result = True

    def name(self) -> str:
        return "sample"

    def displayName(self) -> str:  # noqa: N802
        return tr("Draw a sample to label")

    def shortHelpString(self) -> str:  # noqa: N802
        return tr(
            "Random points over a land-cover layer's mapped area, written with an empty 'label' field: "
            "toggle editing and type each point's true class, then run Assess accuracy with the points as "
            "reference.\n\nStratified: points per map class in proportion to its area, with a minimum per "
            "class (default min(50, n / classes)) so rare classes get enough points (Olofsson et al. 2014). "
            "The same seed draws the same points."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(result_parameter(self.RESULT))
        self.addParameter(QgsProcessingParameterString("LAYER", tr("Land-cover layer"), defaultValue="landcover"))
        self.addParameter(QgsProcessingParameterNumber("N", tr("Number of points"), NUMBER_INTEGER, defaultValue=300, minValue=1))
        self.addParameter(QgsProcessingParameterBoolean("STRATIFIED", tr("Stratified by map class"), defaultValue=True))
        self.addParameter(QgsProcessingParameterNumber(
            "MIN_PER_CLASS", tr("Minimum points per class (stratified; empty: min(50, n / classes))"), NUMBER_INTEGER,
            optional=True, minValue=0))
        self.addParameter(QgsProcessingParameterNumber("SEED", tr("Random seed"), NUMBER_INTEGER, defaultValue=0, minValue=0))
        self.add_output_parameter(optional=False)

    def build_command(self, parameters: dict[str, Any], context: QgsProcessingContext) -> RsgeoCommand:
        source = checked_result(self, parameters, context)
        given = parameters.get("MIN_PER_CLASS") not in (None, "")
        options = {
            "layer": checked_layer(self, parameters, context),
            "n_points": self.parameterAsInt(parameters, "N", context),
            "stratified": self.parameterAsBoolean(parameters, "STRATIFIED", context),
            "min_per_class": self.parameterAsInt(parameters, "MIN_PER_CLASS", context) if given else None,
            "seed": self.parameterAsInt(parameters, "SEED", context),
            "overwrite": True,
        }
        return RsgeoCommand("sample", source, self.output_path(parameters, context, in_place_ok=False), options)

    def layers_to_load(self, target: Path, before: dict[str, str], after: dict[str, str]) -> list[str]:
        return ["samples"] if "samples" in after else []
