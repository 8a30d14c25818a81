"""QGIS styles (QML) for rsgeo layers, stored in the GeoPackage.

QGIS applies the default style of a layer from the ``layer_styles`` table when
the layer is opened, so results open styled in QGIS without the plugin.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from rsgeo.definitions.colours import LAYER_OPACITY, class_colours

# Viridis at five stops, low → high similarity.
_SEQUENTIAL = ["68,1,84", "59,82,139", "33,145,140", "94,201,98", "253,231,37"]

_HEADER = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"


def category_colours(names: Sequence[str], known: dict[str, str] | None = None) -> list[str]:
    """An ``"r,g,b"`` colour per class: ``known`` colours first, then the conventional colour of a
    recognisable name ("water", "forêt", "城市" …), then the palette (:mod:`rsgeo.definitions.colours`)."""
    return class_colours(names, known)


def _fill_symbol(name: str, rgb: str, opacity: float) -> str:
    return (
        f'<symbol type="fill" name={quoteattr(name)} alpha="{opacity}" clip_to_extent="1" force_rhr="0">'
        '<layer class="SimpleFill" enabled="1" locked="0" pass="0"><Option type="Map">'
        f'<Option name="color" type="QString" value="{rgb},255"/>'
        '<Option name="outline_color" type="QString" value="35,35,35,120"/>'
        '<Option name="outline_style" type="QString" value="solid"/>'
        '<Option name="outline_width" type="QString" value="0.1"/>'
        '<Option name="outline_width_unit" type="QString" value="MM"/>'
        '<Option name="style" type="QString" value="solid"/>'
        "</Option></layer></symbol>"
    )


def categorized_qml(field: str, categories: Sequence[str], colours: Sequence[str], *, opacity: float = LAYER_OPACITY) -> str:
    """A categorized renderer on ``field`` with one colour per category."""
    cats = "".join(
        f'<category render="true" symbol="{i}" value={quoteattr(c)} label={quoteattr(c)}/>'
        for i, c in enumerate(categories)
    )
    syms = "".join(_fill_symbol(str(i), colour, opacity) for i, colour in enumerate(colours))
    return (
        f'{_HEADER}<qgis version="3.22.0" styleCategories="AllStyleCategories">'
        f'<renderer-v2 type="categorizedSymbol" attr={quoteattr(field)} symbollevels="0" forceraster="0" enableorderby="0">'
        f"<categories>{cats}</categories><symbols>{syms}</symbols></renderer-v2>"
        f"<blendMode>0</blendMode><featureBlendMode>0</featureBlendMode><layerOpacity>1</layerOpacity>"
        f"<previewExpression>{escape(field)}</previewExpression><layerGeometryType>2</layerGeometryType></qgis>"
    )


def graduated_qml(field: str, values: np.ndarray, *, opacity: float = LAYER_OPACITY, classes: int = 5) -> str:
    """A graduated (quantile) colour renderer on ``field`` from the layer's values."""
    finite = values[np.isfinite(values)] if len(values) else values
    if len(finite) == 0:
        finite = np.array([0.0, 1.0])
    breaks = np.unique(np.quantile(finite.astype(np.float64), np.linspace(0, 1, classes + 1)))
    if len(breaks) < 2:
        breaks = np.array([breaks[0] - 1e-6, breaks[0] + 1e-6])
    n = len(breaks) - 1
    colours = [_SEQUENTIAL[int(round(i * (len(_SEQUENTIAL) - 1) / max(n - 1, 1)))] for i in range(n)]
    ranges = "".join(
        f'<range render="true" symbol="{i}" lower="{breaks[i]:.6f}" upper="{breaks[i + 1]:.6f}" '
        f'label="{breaks[i]:.3f} – {breaks[i + 1]:.3f}"/>'
        for i in range(n)
    )
    syms = "".join(_fill_symbol(str(i), colours[i], opacity) for i in range(n))
    return (
        f'{_HEADER}<qgis version="3.22.0" styleCategories="AllStyleCategories">'
        f'<renderer-v2 type="graduatedSymbol" attr={quoteattr(field)} graduatedMethod="GraduatedColor" '
        f'symbollevels="0" forceraster="0" enableorderby="0">'
        f"<ranges>{ranges}</ranges><symbols>{syms}</symbols>"
        f'<mode name="quantile"/><rotation/><sizescale/></renderer-v2>'
        f"<blendMode>0</blendMode><featureBlendMode>0</featureBlendMode><layerOpacity>1</layerOpacity>"
        f"<previewExpression>{escape(field)}</previewExpression><layerGeometryType>2</layerGeometryType></qgis>"
    )


def outline_qml(*, colour: str = "255,255,255") -> str:
    """Tile outlines only (the ``tiles`` layer)."""
    sym = (
        '<symbol type="fill" name="0" alpha="1" clip_to_extent="1" force_rhr="0">'
        '<layer class="SimpleFill" enabled="1" locked="0" pass="0"><Option type="Map">'
        '<Option name="color" type="QString" value="0,0,0,0"/>'
        f'<Option name="outline_color" type="QString" value="{colour},200"/>'
        '<Option name="outline_style" type="QString" value="solid"/>'
        '<Option name="outline_width" type="QString" value="0.2"/>'
        '<Option name="outline_width_unit" type="QString" value="MM"/>'
        '<Option name="style" type="QString" value="no"/>'
        "</Option></layer></symbol>"
    )
    return (
        f'{_HEADER}<qgis version="3.22.0" styleCategories="AllStyleCategories">'
        f'<renderer-v2 type="singleSymbol" symbollevels="0" forceraster="0" enableorderby="0">'
        f"<symbols>{sym}</symbols></renderer-v2><layerGeometryType>2</layerGeometryType></qgis>"
    )
