"""Result layers into QGIS, on the main thread, styled from the GeoPackage.

rsgeo writes one default style per layer into the GeoPackage's
``layer_styles`` table. ``QgsVectorLayer`` applies it when a layer is opened
normally, but Processing opens result layers without their default style, so
a post-processor re-applies it once the layer is in the project. The rasters
rsgeo writes beside a result (``rasters`` in its metadata) carry their style
as a ``.qml`` sidecar, which the same post-processor applies.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)

from .resultfile import layer_uri


def apply_stored_style(layer: QgsVectorLayer) -> bool:
    """Apply the layer's default style from its GeoPackage; False if there is none."""
    _message, ok = layer.loadDefaultStyle()
    if ok:
        layer.triggerRepaint()
    return bool(ok)


def open_result_layer(path: str | Path, layer: str, name: str | None = None) -> QgsVectorLayer:
    """A styled vector layer for ``layer`` of the rsgeo result at ``path`` (not added to a project)."""
    options = QgsVectorLayer.LayerOptions(QgsProject.instance().transformContext())
    options.loadDefaultStyle = True
    lyr = QgsVectorLayer(layer_uri(path, layer), name or display_name(path, layer), "ogr", options)
    if not lyr.isValid():
        raise ValueError(f"cannot open layer {layer!r} of {path}")
    return lyr


def reload_open_layers(path: str | Path, layer: str) -> list[QgsVectorLayer]:
    """Reload the project's layers showing ``layer`` of ``path`` (a rerun rewrote it in place):
    new features, the new stored style, repainted. Returns the layers reloaded."""
    from qgis.core import QgsProviderRegistry  # noqa: PLC0415

    target = (str(Path(path).resolve()), layer)
    found = []
    for lyr in QgsProject.instance().mapLayers().values():
        if not isinstance(lyr, QgsVectorLayer) or lyr.providerType() != "ogr":
            continue
        parts = QgsProviderRegistry.instance().decodeUri("ogr", lyr.source())
        try:
            key = (str(Path(str(parts.get("path") or "")).resolve()), str(parts.get("layerName") or ""))
        except OSError:
            continue
        if key == target:
            lyr.dataProvider().reloadData()
            lyr.reload()
            apply_stored_style(lyr)
            lyr.updateExtents()
            lyr.triggerRepaint()
            found.append(lyr)
    return found


def apply_sidecar_style(layer: QgsRasterLayer) -> bool:
    """Apply the ``.qml`` beside a raster rsgeo wrote; False if there is none."""
    qml = Path(layer.source()).with_suffix(".qml")
    if not qml.is_file():
        return False
    _message, ok = layer.loadNamedStyle(str(qml))
    if ok:
        layer.triggerRepaint()
    return bool(ok)


def reload_open_rasters(path: str | Path) -> list[QgsRasterLayer]:
    """Reload the project's raster layers showing the file ``path`` (a rerun rewrote it): new pixels, new style."""
    try:
        target = str(Path(path).resolve())
    except OSError:
        return []
    found = []
    for lyr in QgsProject.instance().mapLayers().values():
        if isinstance(lyr, QgsRasterLayer) and lyr.providerType() == "gdal":
            try:
                same = str(Path(lyr.source()).resolve()) == target
            except OSError:
                continue
            if same:
                lyr.dataProvider().reloadData()
                lyr.reload()
                apply_sidecar_style(lyr)
                lyr.triggerRepaint()
                found.append(lyr)
    return found


def display_name(path: str | Path, layer: str) -> str:
    return f"{layer} ({Path(path).stem})"


class StyleFromGeoPackage(QgsProcessingLayerPostProcessorInterface):
    """Processing post-processor: name the loaded layer and apply its stored style."""

    # Processing keeps only a C++ pointer to post-processors; Python must own them.
    _alive: list["StyleFromGeoPackage"] = []

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    @classmethod
    def create(cls, name: str) -> "StyleFromGeoPackage":
        obj = cls(name)
        cls._alive.append(obj)
        del cls._alive[:-64]
        return obj

    def postProcessLayer(  # noqa: N802 - QGIS API
        self, layer: QgsVectorLayer, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> None:
        if isinstance(layer, QgsRasterLayer):
            layer.setName(self.name)
            if not apply_sidecar_style(layer):
                feedback.pushInfo(f"{self.name}: no .qml style beside the raster; using QGIS's default")
        if isinstance(layer, QgsVectorLayer):
            layer.setName(self.name)
            if not apply_stored_style(layer):
                feedback.pushInfo(f"{self.name}: no style stored in the GeoPackage; using QGIS's default")
