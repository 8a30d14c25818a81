"""Processing algorithms: one answer per polygon (``rsgeo classify --zones``, ``rsgeo query --zones``).

The zones are any polygon layer of the project, in any CRS: a file layer is passed
to rsgeo as it is, any other (a memory layer, a database layer, a layer with a
filter or "selected features only") is first written to a temporary GeoPackage
by Processing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..compat import FLAG_ADVANCED, NUMBER_DOUBLE, SOURCE_POLYGON, add_flag
from ..runner import RsgeoCommand
from .base import RsgeoAlgorithm, tr

ZONES = "ZONES"


class ZonesAlgorithmBase(RsgeoAlgorithm):
    """Shared parameters: the zones layer, the minimum zone size, the output layer name."""

    def add_zone_parameters(self) -> None:
        self.addParameter(QgsProcessingParameterFeatureSource(
            ZONES, tr("Zones (polygons: fields, parcels, districts; any CRS)"), [SOURCE_POLYGON]))

    def add_zone_tail(self, default_layer: str) -> None:
        self.addParameter(add_flag(QgsProcessingParameterNumber(
            "MIN_ZONE_PX", tr("Zones smaller than this many pixels are reported (status too_small), not answered"),
            NUMBER_DOUBLE, defaultValue=1.0, minValue=0.0), FLAG_ADVANCED))
        self.addParameter(QgsProcessingParameterString("LAYER", tr("Layer name"), defaultValue=default_layer))
        self.add_output_parameter(optional=False)
        self.add_common_parameters()

    def prepareAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> bool:
        self._feedback = feedback  # a non-file zones layer is exported with it (zones_spec)
        return super().prepareAlgorithm(parameters, context, feedback)

    def zones_spec(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str:
        """``PATH[:layer]`` of the zones as rsgeo reads them (exported to a GeoPackage if need be)."""
        path, layer = self.parameterAsCompatibleSourceLayerPathAndLayerName(
            parameters, ZONES, context, ["gpkg", "shp", "geojson", "fgb"], "gpkg",
            getattr(self, "_feedback", None) or QgsProcessingFeedback())
        if not path:
            raise QgsProcessingException(tr("Give the zones: a polygon layer."))
        return f"{path}:{layer}" if layer else path

    def zone_layer_name(self, parameters: dict[str, Any], context: QgsProcessingContext, default: str) -> str:
        layer = self.parameterAsString(parameters, "LAYER", context).strip() or default
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", layer):
            raise QgsProcessingException(tr("Layer name {!r}: use letters, digits and _ only.").format(layer))
        self._layer = layer
        return layer

    def zone_options(self, parameters: dict[str, Any], context: QgsProcessingContext, *,
                     is_result: bool, default_layer: str) -> dict[str, Any]:
        min_px = self.parameterAsDouble(parameters, "MIN_ZONE_PX", context) if "MIN_ZONE_PX" in parameters else 1.0
        return {
            "zones": self.zones_spec(parameters, context),
            "min_zone_px": None if min_px == 1.0 else min_px,
            "layer": self.zone_layer_name(parameters, context, default_layer),
            **self.common_options(parameters, context, is_result=is_result),
            "overwrite": True,
        }

    def layers_to_load(self, target: Path, before: dict[str, str], after: dict[str, str]) -> list[str]:
        return [self._layer] if self._layer in after else []


class ClassifyZonesAlgorithm(ZonesAlgorithmBase):
    command = "classify"

    def name(self) -> str:
        return "classifyzones"

    def displayName(self) -> str:  # noqa: N802
        return tr("Classify zones")

    def shortHelpString(self) -> str:  # noqa: N802
        return tr(
            "Zero-shot land cover per polygon instead of per tile: each zone (field, parcel, district) gets a "
            "softmax score per class, its top class, a status (ok, too_small, no_data) and its valid fraction, "
            "written with the zone's own geometry and attributes. A zone over several chips combines their "
            "embeddings, weighted by the zone's area in each (docs/inputs.md). Below the 'unsure' score the "
            "top class is 'unsure'.\n\n"
            "Input: a GeoPackage from Embed scene (no pixels are read), or a scene."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.add_source_parameters()
        self.add_zone_parameters()
        self.addParameter(QgsProcessingParameterString(
            "CLASS_SET", tr("Class set: a built-in one (eurosat, esa-worldcover …) or a .yaml/.csv class set file"),
            optional=True))
        self.addParameter(QgsProcessingParameterString(
            "CLASSES", tr("…or classes, comma separated (e.g. forest, cultivated land, water)"), optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "UNSURE_BELOW", tr("Top class 'unsure' where the top score is below (empty: never)"), NUMBER_DOUBLE,
            optional=True, minValue=0.0, maxValue=1.0))
        self.add_zone_tail("zones")

    def build_command(self, parameters: dict[str, Any], context: QgsProcessingContext) -> RsgeoCommand:
        source, is_result = self.source_path(parameters, context)
        classes = [c.strip() for c in self.parameterAsString(parameters, "CLASSES", context).split(",") if c.strip()]
        class_set = self.parameterAsString(parameters, "CLASS_SET", context).strip()
        if class_set and classes:
            raise QgsProcessingException(tr("Give either a class set or a list of classes (one of the two)."))
        if not class_set and len(classes) < 2:
            raise QgsProcessingException(tr("Give a class set, or at least two classes, comma separated."))
        unsure = parameters.get("UNSURE_BELOW")
        options = {
            "classes": classes or None,
            "class_set": class_set or None,
            "unsure_below": None if unsure in (None, "") else self.parameterAsDouble(parameters, "UNSURE_BELOW", context),
            **self.zone_options(parameters, context, is_result=is_result, default_layer="zones"),
        }
        return RsgeoCommand("classify", source, self.output_path(parameters, context, in_place_ok=False), options)


class QueryZonesAlgorithm(ZonesAlgorithmBase):
    command = "query"

    def name(self) -> str:
        return "queryzones"

    def displayName(self) -> str:  # noqa: N802
        return tr("Rank zones by text")

    def shortHelpString(self) -> str:  # noqa: N802
        return tr(
            "Ranks polygons by their similarity to a free-text description (\"an orchard\", \"a flooded field\" … "
            "any language the model reads): each zone's combined embedding against the query, best first, "
            "with the zone's own geometry and attributes; zones not scored (too small, no data) come last.\n\n"
            "Input: a GeoPackage from Embed scene (no pixels are read), or a scene."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.add_source_parameters()
        self.add_zone_parameters()
        self.addParameter(QgsProcessingParameterString("TEXT", tr("Query text (one description per line, averaged)"),
                                                       multiLine=True))
        self.add_zone_tail("zones_query")

    def build_command(self, parameters: dict[str, Any], context: QgsProcessingContext) -> RsgeoCommand:
        source, is_result = self.source_path(parameters, context)
        texts = [t.strip() for t in self.parameterAsString(parameters, "TEXT", context).splitlines() if t.strip()]
        if not texts:
            raise QgsProcessingException(tr("Type at least one query."))
        options = {"text": texts, **self.zone_options(parameters, context, is_result=is_result,
                                                        default_layer="zones_query")}
        return RsgeoCommand("query", source, self.output_path(parameters, context, in_place_ok=False), options)
