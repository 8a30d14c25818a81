"""Processing algorithm: Text query (``rsgeo query --text``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..compat import NUMBER_DOUBLE, NUMBER_INTEGER
from ..runner import RsgeoCommand
from .base import RsgeoAlgorithm, tr


class QueryAlgorithmBase(RsgeoAlgorithm):
    command = "query"

    def add_ranking_parameters(self) -> None:
        self.addParameter(QgsProcessingParameterNumber(
            "TOP_K", tr("Keep only the K most similar tiles"), NUMBER_INTEGER, optional=True, minValue=1))
        self.addParameter(QgsProcessingParameterNumber(
            "THRESHOLD", tr("Keep only tiles with similarity ≥ threshold"), NUMBER_DOUBLE, optional=True,
            minValue=-1.0, maxValue=1.0))

    def texts(self, parameters: dict[str, Any], context: QgsProcessingContext) -> list[str]:
        raw = self.parameterAsString(parameters, "TEXT", context)
        return [line.strip() for line in raw.splitlines() if line.strip()]

    def ranking_options(self, parameters: dict[str, Any], context: QgsProcessingContext) -> dict[str, Any]:
        top_k = parameters.get("TOP_K")
        threshold = parameters.get("THRESHOLD")
        return {
            "top_k": None if top_k in (None, "") else self.parameterAsInt(parameters, "TOP_K", context),
            "threshold": None if threshold in (None, "") else self.parameterAsDouble(parameters, "THRESHOLD", context),
        }

    def layers_to_load(self, target: Path, before: dict[str, str], after: dict[str, str]) -> list[str]:
        return [name for name in super().layers_to_load(target, before, after) if name.startswith("query")]


class TextQueryAlgorithm(QueryAlgorithmBase):
    def name(self) -> str:
        return "textquery"

    def displayName(self) -> str:  # noqa: N802
        return tr("Text query")

    def shortHelpString(self) -> str:  # noqa: N802
        return tr(
            "Scores every tile by its similarity to a free-text description (\"solar farm\", \"greenhouses\", "
            "\"estufas\" … any language the model reads). One query per line; each becomes a layer "
            "query_<text> styled by similarity, with rank 1 the best match.\n\n"
            "Input: a scene, or a GeoPackage from Embed scene (then only the text encoder runs)."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.add_source_parameters()
        self.addParameter(QgsProcessingParameterString("TEXT", tr("Query text (one query per line)"), multiLine=True))
        self.add_ranking_parameters()
        self.add_output_parameter(optional=True)
        self.add_map_parameters(dense=True)
        self.add_common_parameters()

    def build_command(self, parameters: dict[str, Any], context: QgsProcessingContext) -> RsgeoCommand:
        source, is_result = self.source_path(parameters, context)
        texts = self.texts(parameters, context)
        if not texts:
            raise QgsProcessingException(tr("Type at least one query."))
        output = self.output_path(parameters, context, in_place_ok=is_result)
        options = {"text": texts, **self.ranking_options(parameters, context),
                   **self.common_options(parameters, context, is_result=is_result),
                   **self.map_options(parameters, context), "overwrite": bool(output)}
        return RsgeoCommand("query", source, output, options)
