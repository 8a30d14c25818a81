"""Processing algorithm: Query by example (``rsgeo query --like-tile/--like``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsGeometry,
    QgsPoint,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterPoint,
    QgsProcessingParameterString,
)

from ..compat import SOURCE_POINT, SOURCE_POLYGON
from ..runner import RsgeoCommand
from .base import tr
from .query_text import QueryAlgorithmBase

#: Geometries in a CRS without an EPSG code are sent in Web Mercator (x, y order is unambiguous).
_FALLBACK_CRS = "EPSG:3857"


def location(geom: QgsGeometry, crs: QgsCoordinateReferenceSystem, context: QgsProcessingContext) -> str:
    """``"X,Y@EPSG:code"`` for a point, ``"WKT@EPSG:code"`` otherwise (rsgeo's --like syntax, x = easting)."""
    authid = crs.authid().upper() if crs.isValid() else ""
    geom = QgsGeometry(geom)
    if not authid.startswith("EPSG:"):
        authid = _FALLBACK_CRS
        geom.transform(QgsCoordinateTransform(crs, QgsCoordinateReferenceSystem(authid), context.transformContext()))
    if isinstance(geom.constGet(), QgsPoint):
        p = geom.asPoint()
        return f"{p.x()!r},{p.y()!r}@{authid}"
    return f"{geom.asWkt()}@{authid}"


def tile_ids(text: str, what: str) -> list[int]:
    items = [t for t in re.split(r"[,\s]+", text.strip()) if t]
    bad = [t for t in items if not t.isdigit()]
    if bad:
        raise QgsProcessingException(tr("{}: tile ids are whole numbers, got {}").format(what, ", ".join(bad)))
    return [int(t) for t in items]


class QueryByExampleAlgorithm(QueryAlgorithmBase):
    def name(self) -> str:
        return "querybyexample"

    def displayName(self) -> str:  # noqa: N802
        return tr("Query by example")

    def shortHelpString(self) -> str:  # noqa: N802
        return tr(
            "\"More tiles like these\": scores every tile by its similarity to example tiles, given by "
            "tile id, by a point on the map, or by point/polygon features (the tiles they touch; any "
            "CRS). Negative examples (\"less like these\") push the ranking away from them, and optional "
            "text is combined with the examples into one query and one layer.\n\n"
            "Input: a scene, or a GeoPackage from Embed scene (then no image encoder runs at all)."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.add_source_parameters()
        self.addParameter(QgsProcessingParameterString(
            "LIKE_TILES", tr("Example tile ids (comma separated)"), optional=True))
        self.addParameter(QgsProcessingParameterPoint("LIKE_POINT", tr("Example point on the map"), optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "LIKE_FEATURES", tr("Example features (points or polygons)"), [SOURCE_POINT, SOURCE_POLYGON], optional=True))
        self.addParameter(QgsProcessingParameterString(
            "UNLIKE_TILES", tr("Negative example tile ids (comma separated)"), optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "UNLIKE_FEATURES", tr("Negative example features"), [SOURCE_POINT, SOURCE_POLYGON], optional=True))
        self.addParameter(QgsProcessingParameterString(
            "TEXT", tr("Optional text combined with the examples"), optional=True))
        self.add_ranking_parameters()
        self.addParameter(QgsProcessingParameterString(
            "LAYER", tr("Layer name (empty: query_<examples>)"), optional=True))
        self.add_output_parameter(optional=True)
        self.add_map_parameters(dense=False)
        self.add_common_parameters()

    def layers_to_load(self, target: Path, before: dict[str, str], after: dict[str, str]) -> list[str]:
        if self._layer:
            return [self._layer] if self._layer in after else []
        return super().layers_to_load(target, before, after)

    def _locations(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> list[str]:
        source = self.parameterAsSource(parameters, name, context)
        if source is None:
            return []
        return [location(f.geometry(), source.sourceCrs(), context)
                for f in source.getFeatures(QgsFeatureRequest().setNoAttributes()) if f.hasGeometry()]

    def build_command(self, parameters: dict[str, Any], context: QgsProcessingContext) -> RsgeoCommand:
        source, is_result = self.source_path(parameters, context)
        like_tiles = tile_ids(self.parameterAsString(parameters, "LIKE_TILES", context), tr("Example tile ids"))
        unlike_tiles = tile_ids(self.parameterAsString(parameters, "UNLIKE_TILES", context), tr("Negative tile ids"))
        like = self._locations(parameters, "LIKE_FEATURES", context)
        if parameters.get("LIKE_POINT") not in (None, ""):
            crs = self.parameterAsPointCrs(parameters, "LIKE_POINT", context)
            point = self.parameterAsPoint(parameters, "LIKE_POINT", context, crs)
            like.append(location(QgsGeometry.fromPointXY(point), crs, context))
        if not like_tiles and not like:
            raise QgsProcessingException(tr("Give at least one example: tile ids, a map point or features."))
        layer = self.parameterAsString(parameters, "LAYER", context).strip()
        if layer and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", layer):
            raise QgsProcessingException(tr("Layer name {!r}: use letters, digits and _ only.").format(layer))
        self._layer = layer
        output = self.output_path(parameters, context, in_place_ok=is_result)
        options = {
            "text": self.texts(parameters, context) or None,
            "like_tile": like_tiles or None,
            "unlike_tile": unlike_tiles or None,
            "like": like or None,
            "unlike": self._locations(parameters, "UNLIKE_FEATURES", context) or None,
            **self.ranking_options(parameters, context),
            "layer": layer or None,
            **self.common_options(parameters, context, is_result=is_result),
            **self.map_options(parameters, context),
            "overwrite": bool(output),
        }
        return RsgeoCommand("query", source, output, options)
