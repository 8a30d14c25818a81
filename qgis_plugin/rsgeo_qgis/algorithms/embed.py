"""Processing algorithm: Embed scene (``rsgeo embed``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import QgsProcessingContext, QgsProcessingParameterBoolean

from ..runner import RsgeoCommand
from .base import RsgeoAlgorithm, tr


class EmbedAlgorithm(RsgeoAlgorithm):
    command = "embed"
    accepts_result = False

    def name(self) -> str:
        return "embed"

    def displayName(self) -> str:  # noqa: N802
        return tr("Embed scene")

    def shortHelpString(self) -> str:  # noqa: N802
        return tr(
            "Cuts the scene into chips, runs the image encoder once over every chip and stores the tile "
            "layer and the per-tile embeddings in a GeoPackage. Classify land cover, Text query and "
            "Query by example then answer from that GeoPackage in seconds, without the scene.\n\n"
            "Resumable: a cancelled run keeps its progress and continues where it stopped when run "
            "again with the same output."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.add_source_parameters()
        self.addParameter(QgsProcessingParameterBoolean(
            "RESUME", tr("Resumable (keep progress when cancelled; continue an interrupted run)"),
            defaultValue=False))
        self.add_output_parameter(optional=False)
        self.add_common_parameters()

    def build_command(self, parameters: dict[str, Any], context: QgsProcessingContext) -> RsgeoCommand:
        scene, _ = self.source_path(parameters, context)
        resume = self.parameterAsBoolean(parameters, "RESUME", context)
        self._keep_partial = resume
        options = {"resume": resume, **self.common_options(parameters, context, is_result=False), "overwrite": True}
        return RsgeoCommand("embed", scene, self.output_path(parameters, context, in_place_ok=False), options)

    def layers_to_load(self, target: Path, before: dict[str, str], after: dict[str, str]) -> list[str]:
        return ["tiles"] if "tiles" in after else []
