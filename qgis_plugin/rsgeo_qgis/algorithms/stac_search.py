"""Processing algorithm: Embed a STAC search (``rsgeo embed --stac-search``).

The scenes are found in a STAC API (Earth Search, Planetary Computer, a local one)
by collection, the extent of the map or a layer (in any CRS), dates and cloud cover;
each item found is encoded into ``OUTPUT/<item id>.gpkg`` (or, as a mosaic, into one
GeoPackage), and the tile layers are loaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..compat import NUMBER_DOUBLE, NUMBER_INTEGER
from ..resultfile import layer_uri
from ..runner import RsgeoCommand, RunCancelled, RunError, run
from .base import RsgeoAlgorithm, tr

EARTH_SEARCH = "https://earth-search.aws.element84.com/v1"


class StacSearchAlgorithm(RsgeoAlgorithm):
    command = "embed"
    accepts_result = False

    def name(self) -> str:
        return "stacsearch"

    def displayName(self) -> str:  # noqa: N802
        return tr("Embed a STAC search")

    def shortHelpString(self) -> str:  # noqa: N802
        return tr(
            "Finds scenes in a STAC API — by collection, an extent (the map canvas, a layer, or typed; any CRS), "
            "dates and cloud cover — and encodes each item found into its own GeoPackage in the output folder "
            "(<item id>.gpkg), or all of them as one mosaic. Bands by common name (e.g. nir,red,green) or "
            "'visual'. Then Classify land cover, Text query and the search panel answer from those GeoPackages "
            "(a folder of them is an archive for the panel).\n\nNeeds rsgeo[stac] (pystac-client) in rsgeo's "
            "environment, and network access to the API and its assets."
        )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterString("URL", tr("STAC API (its landing page)"), defaultValue=EARTH_SEARCH))
        self.addParameter(QgsProcessingParameterString(
            "COLLECTION", tr("Collection(s), comma separated (e.g. sentinel-2-l2a)"), optional=True))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", tr("Items that intersect this extent"), optional=True))
        self.addParameter(QgsProcessingParameterString(
            "DATETIME", tr("Dates: a date, or an interval such as 2024-06-01/2024-08-31"), optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "MAX_CLOUD", tr("Most cloud cover, % (eo:cloud_cover)"), NUMBER_DOUBLE, optional=True, minValue=0.0,
            maxValue=100.0))
        self.addParameter(QgsProcessingParameterNumber(
            "MAX_ITEMS", tr("At most this many items"), NUMBER_INTEGER, defaultValue=3, minValue=1))
        self.addParameter(QgsProcessingParameterBoolean(
            "MOSAIC", tr("One mosaic of all the items found (one GeoPackage) instead of one per item"), defaultValue=False))
        self.addParameter(QgsProcessingParameterFolderDestination(
            self.OUTPUT, tr("Output folder (one GeoPackage per item; mosaic.gpkg with the mosaic)")))
        self.add_common_parameters()
        self.addOutput(QgsProcessingOutputMultipleLayers(self.OUTPUT_LAYERS, tr("Tile layers")))
        self.addOutput(QgsProcessingOutputString(self.LAYER_NAMES, tr("Results written (their names, comma separated)")))

    def build_command(self, parameters: dict[str, Any], context: QgsProcessingContext) -> RsgeoCommand:
        url = self.parameterAsString(parameters, "URL", context).strip()
        if not url.startswith(("https://", "http://")):
            raise QgsProcessingException(tr("STAC API {!r}: give its https:// address.").format(url))
        folder = self.parameterAsString(parameters, self.OUTPUT, context).strip()
        os.makedirs(folder, exist_ok=True)
        mosaic = self.parameterAsBoolean(parameters, "MOSAIC", context)
        options: dict[str, Any] = {
            "stac_search": url,
            "collection": [c.strip() for c in self.parameterAsString(parameters, "COLLECTION", context).split(",")
                           if c.strip()] or None,
            "datetime": self.parameterAsString(parameters, "DATETIME", context).strip() or None,
            "max_cloud": None if parameters.get("MAX_CLOUD") in (None, "") else
            self.parameterAsDouble(parameters, "MAX_CLOUD", context),
            "max_items": self.parameterAsInt(parameters, "MAX_ITEMS", context),
            "mosaic": mosaic or None,
        }
        if parameters.get("EXTENT") not in (None, ""):
            extent = self.parameterAsExtent(parameters, "EXTENT", context)
            crs = self.parameterAsExtentCrs(parameters, "EXTENT", context)
            if not extent.isEmpty():
                options["bbox"] = ",".join(repr(v) for v in (extent.xMinimum(), extent.yMinimum(),
                                                             extent.xMaximum(), extent.yMaximum()))
                options["bbox_crs"] = crs.authid() or crs.toWkt()
        options.update(self.common_options(parameters, context, is_result=False))
        options["bands"] = self.parameterAsString(parameters, "BANDS", context).replace(" ", "") or None
        self._folder = folder
        output = os.path.join(folder, "mosaic.gpkg") if mosaic else folder
        return RsgeoCommand("embed", "", output, {**options, "overwrite": mosaic or None})

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        cmd, backend = self.prepared_run(feedback)
        before = {p.name: p.stat().st_mtime_ns for p in Path(self._folder).glob("*.gpkg")}
        try:
            run(cmd, backend, feedback)
        except (RunCancelled, RunError) as exc:
            feedback.reportError(str(exc), False)
            raise QgsProcessingException("") from None
        written = sorted(p for p in Path(self._folder).glob("*.gpkg") if before.get(p.name) != p.stat().st_mtime_ns)
        self._written = [str(p) for p in written]
        feedback.pushInfo(tr("{} results in {}").format(len(written), self._folder))
        return {self.OUTPUT: self._folder, self.OUTPUT_LAYERS: [layer_uri(p, "tiles") for p in written],
                self.LAYER_NAMES: ",".join(p.stem for p in written)}

    def postProcessAlgorithm(self, context: QgsProcessingContext,  # noqa: N802
                             feedback: QgsProcessingFeedback) -> dict[str, Any]:
        for path in getattr(self, "_written", []):
            self.load_result_layer(path, "tiles", context, feedback)
        return {}
