"""What every rsgeo Processing algorithm shares.

Parameters are translated into an :class:`~rsgeo_qgis.runner.RsgeoCommand` in
``prepareAlgorithm`` (main thread: layers may be touched there), the command
runs in ``processAlgorithm`` (a worker thread when run from the toolbox), and
result layers are queued for loading in ``postProcessAlgorithm`` (main thread).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingUtils,
    QgsProviderRegistry,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QCoreApplication

from .. import settings as plugin_settings
from ..backend import BackendError, find_backend
from ..compat import FILE_BEHAVIOR_FILE, FILE_BEHAVIOR_FOLDER, FLAG_ADVANCED, NUMBER_DOUBLE, NUMBER_INTEGER, add_flag
from ..definitions.schema import KEY_RASTERS, RASTER_SIMILARITY, RASTER_TOP_CLASS
from ..layers import StyleFromGeoPackage, display_name, reload_open_layers, reload_open_rasters
from ..definitions.lengths import Length
from ..definitions.options import OPTIONS
from ..resultfile import NotAResultError, changed_layers, check_result, feature_layers, layer_uri, metadata
from ..runner import RsgeoCommand, RunCancelled, RunError, run

DEVICES = ["auto", "cpu", "cuda"]
PRECISIONS = ["fp32", "bf16", "fp16", "int8", "auto"]
#: The image tower's engine (docs/engines.md); auto: the fastest installed for the precision.
ENGINES = ["auto", "torch", "onnxruntime", "openvino"]
EMBEDDING_DTYPES = ["float32", "float16"]


def _non_default(value: str) -> str | None:
    """``None`` for the CLI's defaults (the first choice), so commands stay short."""
    return None if value in ("fp32", "float32") else value


def tr(text: str) -> str:
    return QCoreApplication.translate("rsgeo", text)


class RsgeoAlgorithm(QgsProcessingAlgorithm):
    """Base class: subclasses declare their inputs and build the command."""

    INPUT = "INPUT"
    STAC_ITEM = "STAC_ITEM"
    RESULT = "RESULT"
    OUTPUT = "OUTPUT"
    OUTPUT_LAYERS = "OUTPUT_LAYERS"
    LAYER_NAMES = "LAYER_NAMES"
    OUTPUT_RASTERS = "OUTPUT_RASTERS"

    #: rsgeo subcommand (embed/classify/query).
    command = ""
    #: Whether a result GeoPackage may be given instead of the scene.
    accepts_result = True

    def __init__(self) -> None:
        super().__init__()
        self._command: RsgeoCommand | None = None
        self._keep_partial = False
        self._layers: list[str] = []
        #: (name, file) of the rasters this run wrote for its layers, to load after the run.
        self._rasters: list[tuple[str, str]] = []
        self._target = ""

    # -- identity ---------------------------------------------------------------------------
    def createInstance(self) -> "RsgeoAlgorithm":  # noqa: N802
        return type(self)()

    def group(self) -> str:
        return ""

    def groupId(self) -> str:  # noqa: N802
        return ""

    def helpUrl(self) -> str:  # noqa: N802
        return "https://github.com/rsgeo/rsgeo/blob/main/docs/qgis.md"

    # -- parameters -------------------------------------------------------------------------
    def add_source_parameters(self) -> None:
        # Every source is optional on its own; source_path asks for exactly one.
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.INPUT, tr("Scene (raster file)"), optional=True))
        self.addParameter(QgsProcessingParameterString(
            self.STAC_ITEM, tr("…or a STAC item: a JSON file or an https:// URL (bands by common name, e.g. "
                               "nir,red,green, or 'visual'; docs/inputs.md)"), optional=True))
        if self.accepts_result:
            self.addParameter(QgsProcessingParameterFile(
                self.RESULT, tr("…or an rsgeo GeoPackage with stored embeddings (only the text encoder runs)"),
                behavior=FILE_BEHAVIOR_FILE, extension="gpkg", optional=True))

    def add_output_parameter(self, *, optional: bool) -> None:
        description = tr("Output GeoPackage")
        if optional:
            description = tr("Output GeoPackage (skip to add the layers to the input GeoPackage)")
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT, description, fileFilter=tr("GeoPackage (*.gpkg)"), optional=optional))
        self.addOutput(QgsProcessingOutputMultipleLayers(self.OUTPUT_LAYERS, tr("Result layers")))
        self.addOutput(QgsProcessingOutputString(self.LAYER_NAMES, tr("Result layer names (comma separated)")))

    def add_map_parameters(self, *, dense: bool) -> None:
        """Raster maps beside the GeoPackage (on by default), and the dense sub-chip maps (``dense``)."""
        self.addParameter(QgsProcessingParameterBoolean(
            "RASTERS", tr("Also write raster maps (Cloud-Optimised GeoTIFFs beside the GeoPackage) and show them"),
            defaultValue=True))
        if dense:
            self.addParameter(QgsProcessingParameterBoolean(
                "DENSE", tr("{}: finer than one chip, from the ViT's patch tokens (slower; needs RASTERS)").format(
                    OPTIONS["dense"].label), defaultValue=False))
        self.addOutput(QgsProcessingOutputMultipleLayers(self.OUTPUT_RASTERS, tr("Result rasters")))

    def map_options(self, parameters: dict[str, Any], context: QgsProcessingContext) -> dict[str, Any]:
        rasters = self.parameterAsBool(parameters, "RASTERS", context) if "RASTERS" in parameters else True
        dense = "DENSE" in parameters and self.parameterAsBool(parameters, "DENSE", context)
        if dense and not rasters:
            raise QgsProcessingException(tr("Dense maps are rasters: keep the raster maps on, or turn dense maps off."))
        return {"no_rasters": not rasters or None, "dense": dense or None}

    def rasters_to_load(self, target: Path, layers: list[str]) -> list[tuple[str, str]]:
        """The class and similarity rasters the result lists for ``layers`` (score stacks are not loaded)."""
        try:
            records = metadata(target).get(KEY_RASTERS) or {}
        except NotAResultError:
            return []
        out = []
        for name, rec in records.items() if isinstance(records, dict) else ():
            if not isinstance(rec, dict) or rec.get("layer") not in layers:
                continue
            if rec.get("kind") in (RASTER_TOP_CLASS, RASTER_SIMILARITY) and isinstance(rec.get("path"), str):
                path = target.parent / rec["path"]
                if path.is_file():
                    out.append((str(name), str(path)))
        return out

    def add_common_parameters(self) -> None:
        # Shown in the main dialog: the chip size decides how fine the answer is.
        self.addParameter(QgsProcessingParameterString(
            "CHIP_SIZE", tr("Chip size: metres (200m) or pixels (64px); empty: the model's training ground size"),
            optional=True))
        params = [
            QgsProcessingParameterString(
                "MODEL", tr("Model: rs-m-clip, a registered name, arch:ARCH, local-dir:PATH, test:hash "
                            "(empty: the plugin's default for a scene, the stored model for a GeoPackage)"),
                optional=True),
            QgsProcessingParameterFile(
                "CHECKPOINT", tr("{}: a weights file, or an open_clip folder (empty: the one in rsgeo settings…, "
                                 "else download)").format(OPTIONS["checkpoint"].label),
                behavior=FILE_BEHAVIOR_FILE, optional=True),
            QgsProcessingParameterFile(
                "CACHE_DIR", tr("{} (empty: the one in rsgeo settings…, else the Hugging Face cache)").format(
                    OPTIONS["cache_dir"].label),
                behavior=FILE_BEHAVIOR_FOLDER, optional=True),
            QgsProcessingParameterString("STRIDE", tr("Stride: pixels or metres; empty: the chip size"), optional=True),
            QgsProcessingParameterString("BANDS", tr("Bands fed as R,G,B (1-based, e.g. 4,3,2); empty: the RGB bands"),
                                         optional=True),
            QgsProcessingParameterString("STRETCH", tr("Stretch: auto, none, percentile:LOW,HIGH, range:MIN,MAX"),
                                         optional=True),
            QgsProcessingParameterNumber("GSD", tr("Resample to ground sample distance (m)"), NUMBER_DOUBLE,
                                         optional=True, minValue=0.0),
            QgsProcessingParameterNumber("MIN_VALID", tr("Skip chips with a smaller valid fraction (default 0.5)"),
                                         NUMBER_DOUBLE, optional=True, minValue=0.0, maxValue=1.0),
            QgsProcessingParameterNumber("BATCH_SIZE", tr("Batch size"), NUMBER_INTEGER, optional=True, minValue=1),
            QgsProcessingParameterEnum("DEVICE", tr("Device"), options=DEVICES, defaultValue=0),
            QgsProcessingParameterEnum("PRECISION", tr("Precision"), options=PRECISIONS, defaultValue=0),
            QgsProcessingParameterEnum("ENGINE", tr("Inference engine (CPU: openvino or onnxruntime run int8/bf16 faster)"),
                                       options=ENGINES, defaultValue=0),
            QgsProcessingParameterEnum("EMBEDDING_DTYPE", tr("Store embeddings as"), options=EMBEDDING_DTYPES,
                                       defaultValue=0),
        ]
        for p in params:
            self.addParameter(add_flag(p, FLAG_ADVANCED))

    def common_options(self, parameters: dict[str, Any], context: QgsProcessingContext, *,
                       is_result: bool) -> dict[str, Any]:
        def given(name: str) -> bool:
            return parameters.get(name) not in (None, "")

        def text(name: str) -> str | None:
            value = self.parameterAsString(parameters, name, context).strip()
            return value or None

        for name in ("CHIP_SIZE", "STRIDE"):
            value = text(name)
            if value is not None:
                try:
                    Length.parse(value)  # rsgeo's own parser (the shared definitions)
                except ValueError as exc:
                    raise QgsProcessingException(f"{OPTIONS[name.lower()].label}: {exc}") from None
        bands = text("BANDS")
        stac = bool(parameters.get(self.STAC_ITEM))  # a STAC item's bands go by name (red,green,blue; visual)
        pattern = r"[A-Za-z0-9_-]+(,[A-Za-z0-9_-]+)*" if stac else r"\d+(,\d+)*"
        if bands is not None and not re.fullmatch(pattern, bands.replace(" ", "")):
            raise QgsProcessingException(tr("Bands: give 1-based band numbers like 4,3,2, got {!r}").format(bands))
        settings = plugin_settings.load()
        model = text("MODEL")
        if model is None and not is_result:
            model = settings.model
        checkpoint = self.parameterAsFile(parameters, "CHECKPOINT", context).strip() if given("CHECKPOINT") else ""
        if not checkpoint and settings.checkpoint and model == settings.model:
            checkpoint = settings.checkpoint  # the settings' weights are the default model's
        cache_dir = self.parameterAsFile(parameters, "CACHE_DIR", context).strip() if given("CACHE_DIR") else ""
        device = DEVICES[self.parameterAsEnum(parameters, "DEVICE", context)]
        if device == "auto":
            device = plugin_settings.load().device
        return {
            "model": model,
            "checkpoint": checkpoint or None,
            "cache_dir": cache_dir or settings.cache_dir or None,
            "chip_size": text("CHIP_SIZE"),
            "stride": text("STRIDE"),
            "bands": bands.replace(" ", "") if bands else None,
            "stretch": text("STRETCH"),
            "gsd": self.parameterAsDouble(parameters, "GSD", context) if given("GSD") else None,
            "min_valid": self.parameterAsDouble(parameters, "MIN_VALID", context) if given("MIN_VALID") else None,
            "batch_size": self.parameterAsInt(parameters, "BATCH_SIZE", context) if given("BATCH_SIZE") else None,
            "device": None if device == "auto" else device,
            "precision": _non_default(PRECISIONS[self.parameterAsEnum(parameters, "PRECISION", context)]),
            "engine": (None if (engine := ENGINES[self.parameterAsEnum(parameters, "ENGINE", context)]) == "auto"
                       else engine),
            "embedding_dtype": _non_default(EMBEDDING_DTYPES[self.parameterAsEnum(parameters, "EMBEDDING_DTYPE", context)]),
        }

    # -- sources ----------------------------------------------------------------------------
    def source_path(self, parameters: dict[str, Any], context: QgsProcessingContext) -> tuple[str, bool]:
        """(path, is_result): the scene file, or the result GeoPackage given instead."""
        result = ""
        if self.accepts_result:
            result = self.parameterAsFile(parameters, self.RESULT, context).strip()
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        item = self.parameterAsString(parameters, self.STAC_ITEM, context).strip() if self.STAC_ITEM in parameters else ""
        if sum(bool(x) for x in (result, layer is not None, item)) > 1:
            raise QgsProcessingException(tr("Give one source: a scene, a STAC item or an rsgeo GeoPackage."))
        if item:
            if not (item.startswith(("https://", "http://")) or os.path.isfile(item)):
                raise QgsProcessingException(tr("STAC item {!r}: give a JSON file that exists or an https:// URL.").format(item))
            return item, False
        if result:
            try:
                check_result(result)
            except NotAResultError as exc:
                raise QgsProcessingException(str(exc)) from None
            return result, True
        if layer is None:
            raise QgsProcessingException(tr("Give a scene (raster layer), a STAC item or an rsgeo GeoPackage."))
        return scene_file(layer), False

    def output_path(self, parameters: dict[str, Any], context: QgsProcessingContext, *, in_place_ok: bool) -> str | None:
        out = self.parameterAsFileOutput(parameters, self.OUTPUT, context).strip()
        if not out:
            if in_place_ok:
                return None
            out = QgsProcessingUtils.generateTempFilename("rsgeo.gpkg")
        if not out.lower().endswith(".gpkg"):
            out += ".gpkg"
        return out

    # -- running ----------------------------------------------------------------------------
    def build_command(self, parameters: dict[str, Any], context: QgsProcessingContext) -> RsgeoCommand:
        raise NotImplementedError

    def layers_to_load(self, target: Path, before: dict[str, str], after: dict[str, str]) -> list[str]:
        """Which layers of the target GeoPackage this run produced."""
        return [name for name in changed_layers(before, after) if name != "tiles"]

    def prepareAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> bool:
        self._command = self.build_command(parameters, context)
        return True

    def prepared_run(self, feedback: QgsProcessingFeedback) -> tuple[RsgeoCommand, Any]:
        """The command prepareAlgorithm built and the backend that will run it (announced in the log)."""
        cmd = self._command
        if cmd is None:
            raise QgsProcessingException("prepareAlgorithm was not run")
        try:
            backend = find_backend(plugin_settings.load())
        except BackendError as exc:
            raise QgsProcessingException(str(exc)) from None
        feedback.pushInfo(tr("Running {}").format(backend.describe()))
        return cmd, backend

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        cmd, backend = self.prepared_run(feedback)
        target = cmd.target
        # A GeoPackage source is the starting point of the output (in place, or copied to -o):
        # the layers whose last change moves are the ones this run wrote.
        before = feature_layers(cmd.source)
        try:
            run(cmd, backend, feedback, keep_partial=self._keep_partial)
        except (RunCancelled, RunError) as exc:
            # Reported here, once; the exception (which fails the run) carries no text of its own:
            # Processing would print that again (qgis_process: to the message log, as ERROR, and on exit).
            feedback.reportError(str(exc), False)
            raise QgsProcessingException("") from None
        after = feature_layers(target)
        self._layers = self.layers_to_load(target, before, after)
        if not self._layers:
            feedback.reportError(tr("rsgeo finished but wrote no new layer into {}").format(target), False)
        self._rasters = self.rasters_to_load(target, self._layers)
        self._target = str(target)
        return {
            self.OUTPUT: str(target),
            self.OUTPUT_LAYERS: [layer_uri(target, name) for name in self._layers],
            self.LAYER_NAMES: ",".join(self._layers),
            self.OUTPUT_RASTERS: [path for _, path in self._rasters],
        }

    def load_result_layer(self, target: str, name: str, context: QgsProcessingContext,
                          feedback: QgsProcessingFeedback) -> None:
        """Queue layer ``name`` of ``target`` for loading, styled; an open one rewritten in place is reloaded."""
        if reload_open_layers(target, name):  # rewritten in place: the open layer shows the new answer
            feedback.pushInfo(tr("{}: the open layer was reloaded").format(name))
            return
        label = display_name(target, name)
        details = QgsProcessingContext.LayerDetails(label, context.project(), self.OUTPUT_LAYERS)
        details.setPostProcessor(StyleFromGeoPackage.create(label))
        context.addLayerToLoadOnCompletion(layer_uri(target, name), details)

    def postProcessAlgorithm(self, context: QgsProcessingContext,  # noqa: N802
                             feedback: QgsProcessingFeedback) -> dict[str, Any]:
        for name in self._layers:
            self.load_result_layer(self._target, name, context, feedback)
        for name, path in self._rasters:
            if reload_open_rasters(path):
                feedback.pushInfo(tr("{}: the open raster was reloaded").format(name))
                continue
            label = display_name(self._target, name)
            details = QgsProcessingContext.LayerDetails(label, context.project(), self.OUTPUT_RASTERS)
            details.setPostProcessor(StyleFromGeoPackage.create(label))
            context.addLayerToLoadOnCompletion(path, details)
        return {}


def scene_file(layer: QgsRasterLayer) -> str:
    """The file behind a raster layer; QgsProcessingException for non-file rasters."""
    if layer.providerType() != "gdal":
        raise QgsProcessingException(tr(
            "Layer '{}' comes from the '{}' provider; rsgeo reads raster files GDAL opens. "
            "Save it as a GeoTIFF first (right-click ▸ Export ▸ Save As…)."
        ).format(layer.name(), layer.providerType()))
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    path = str(parts.get("path") or layer.source())
    if not (path.startswith("/vsi") or os.path.isfile(path)):
        raise QgsProcessingException(tr(
            "Layer '{}' is not a local raster file ({}); save it as a GeoTIFF first."
        ).format(layer.name(), path))
    return path
