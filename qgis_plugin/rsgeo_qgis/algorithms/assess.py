"""Processing algorithm: Assess accuracy (``rsgeo assess``).

The report folder is the output; the run's summary (overall accuracy, kappa, the comparison table)
goes to the log, and the worst-confused tiles of the land-cover layer are loaded as a layer of
their own, so the report links back to the map.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputString,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsProviderRegistry,
)

from ..compat import FILE_BEHAVIOR_FILE, NUMBER_DOUBLE
from ..runner import RsgeoCommand, RunCancelled, RunError, run
from .base import RsgeoAlgorithm, tr
from .sample import checked_layer, checked_result, result_parameter


def reference_path(layer: Any) -> str:
    """``PATH`` or ``PATH:LAYER`` of a project layer rsgeo can read (a file GDAL/OGR opens)."""
    provider = layer.providerType()
    if provider not in ("gdal", "ogr"):
        raise QgsProcessingException(tr(
            "Layer '{}' comes from the '{}' provider; save it as a GeoTIFF or GeoPackage first."
        ).format(layer.name(), provider))
    parts = QgsProviderRegistry.instance().decodeUri(provider, layer.source())
    path = str(parts.get("path") or layer.source())
    name = parts.get("layerName")
    return f"{path}:{name}" if name else path


class AssessAlgorithm(RsgeoAlgorithm):
    command = "assess"
    REPORT_JSON = "REPORT_JSON"
    SUMMARY = "SUMMARY"

    def name(self) -> str:
        return "assess"

    def displayName(self) -> str:  # noqa: N802
        return tr("Assess accuracy")

    def shortHelpString(self) -> str:  # noqa: N802
        return tr(
            "Compares a land-cover layer with reference data — a categorical raster (a land-use map), polygons "
            "or labelled points (from Draw a sample to label) — in any CRS, and writes a report folder: "
            "report.json, report.md and confusion_matrix.png with the error matrix, overall, user's and "
            "producer's accuracy, F1, kappa and error-adjusted areas with 95 % confidence intervals "
            "(Olofsson et al. 2014). The class map (YAML) says which map class is which reference class. "
            "Tiles with several reference classes take the majority; a purity above 0 leaves out mixed tiles. "
            "The worst-confused tiles are loaded as a layer."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(result_parameter(self.RESULT))
        self.addParameter(QgsProcessingParameterString("LAYER", tr("Land-cover layer"), defaultValue="landcover"))
        self.addParameter(QgsProcessingParameterMapLayer("REFERENCE", tr("Reference data (raster, polygons or points)")))
        self.addParameter(QgsProcessingParameterString(
            "REFERENCE_FIELD", tr("Reference class field (vector reference; empty: label)"), optional=True))
        self.addParameter(QgsProcessingParameterFile(
            "CLASS_MAP", tr("Class map (YAML: map class → reference class; empty: same names)"),
            behavior=FILE_BEHAVIOR_FILE, fileFilter="YAML (*.yaml *.yml)", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "PURITY", tr("Minimum reference purity of a tile (0: majority)"), NUMBER_DOUBLE, defaultValue=0.0,
            minValue=0.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterString(
            "COMPARE", tr("Other results to compare, one RESULT.gpkg[:LAYER] per line"), multiLine=True, optional=True))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT, tr("Report folder")))
        self.addOutput(QgsProcessingOutputFile(self.REPORT_JSON, tr("report.json")))
        self.addOutput(QgsProcessingOutputString(self.SUMMARY, tr("Summary")))

    def build_command(self, parameters: dict[str, Any], context: QgsProcessingContext) -> RsgeoCommand:
        source = checked_result(self, parameters, context)
        layer = self.parameterAsLayer(parameters, "REFERENCE", context)
        if layer is None:
            raise QgsProcessingException(tr("Give the reference data (a raster or vector layer)."))
        self._layer = checked_layer(self, parameters, context)
        self._source = source
        compare = [c.strip() for c in self.parameterAsString(parameters, "COMPARE", context).splitlines() if c.strip()]
        options = {
            "layer": self._layer,
            "reference": reference_path(layer),
            "reference_field": self.parameterAsString(parameters, "REFERENCE_FIELD", context).strip() or None,
            "class_map": self.parameterAsFile(parameters, "CLASS_MAP", context).strip() or None,
            "purity": self.parameterAsDouble(parameters, "PURITY", context) or None,
            "compare": compare or None,
            "overwrite": True,
        }
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context).strip()
        return RsgeoCommand("assess", source, output, options)

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        cmd, backend = self.prepared_run(feedback)
        try:
            run(cmd, backend, feedback)
        except (RunCancelled, RunError) as exc:
            raise QgsProcessingException(str(exc)) from None
        report_json = cmd.target / "report.json"
        report = json.loads(report_json.read_text(encoding="utf-8"))
        summary = tr("Overall accuracy {:.3f} ± {:.3f} (95 % CI), kappa {:.3f}, {} units").format(
            report["overall_accuracy"], report["overall_accuracy_ci95"] or 0.0, report["kappa"] or 0.0,
            report["sample_count"])
        feedback.pushInfo(summary)
        for row in report.get("compared", []):
            feedback.pushInfo("  {map}: OA {overall_accuracy}, kappa {kappa}, mean F1 {mean_f1}".format(**row))
        # tile ids when the map is a vector layer; a class raster's units are raster cells, not selectable tiles
        self._worst = [int(w["tile_id"]) for w in report.get("worst_confused", []) if "tile_id" in w]
        if self._worst:
            feedback.pushInfo(tr("Worst-confused tiles: {}").format(", ".join(map(str, self._worst))))
        return {self.OUTPUT: str(cmd.target), self.REPORT_JSON: str(report_json), self.SUMMARY: summary}

    def postProcessAlgorithm(self, context: QgsProcessingContext,  # noqa: N802
                             feedback: QgsProcessingFeedback) -> dict[str, Any]:
        worst = getattr(self, "_worst", [])
        if worst:
            ids = ",".join(str(t) for t in worst)
            uri = f'{self._source}|layername={self._layer}|subset="tile_id" IN ({ids})'
            details = QgsProcessingContext.LayerDetails(
                tr("worst-confused tiles ({})").format(Path(self._source).stem), context.project(), self.OUTPUT)
            context.addLayerToLoadOnCompletion(uri, details)
        return {}
