"""A STAC item JSON as a scene: its band assets stacked into one in-memory GDAL VRT.

The item is parsed directly (no pystac needed). Bands are chosen by their
``eo:bands`` common name (default ``red,green,blue``); each asset's
``raster:bands`` ``scale``/``offset`` is applied in the VRT (``value * scale +
offset``) so the stretch sees physical values. Remote asset hrefs are read
through GDAL's ``/vsicurl/``; relative hrefs are resolved against the item file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from rsgeo.errors import SceneError

DEFAULT_BANDS = ("red", "green", "blue")
_COLOUR = {"red": "Red", "green": "Green", "blue": "Blue"}


def is_stac_item(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a JSON file (a STAC item, by its suffix)."""
    return str(path).lower().endswith(".json")


def read_item(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The item's JSON, with a clear error for a file that is not a STAC item."""
    try:
        item = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SceneError(f"cannot read the STAC item {path}: {exc}; give a STAC item JSON file") from None
    if not isinstance(item, dict) or item.get("type") != "Feature" or "assets" not in item:
        raise SceneError(f"{path} is not a STAC item (a GeoJSON Feature with assets)")
    return item


def _href(href: str, base: Path) -> str:
    if href.startswith(("http://", "https://")):
        return "/vsicurl/" + href
    if href.startswith("/vsi") or os.path.isabs(href):
        return href
    return str((base / href).resolve())


def single_band_assets(item: dict[str, Any], base: Path) -> list[tuple[str, str, float, float]]:
    """``(common_name, href, scale, offset)`` of every single-band asset with ``eo:bands``, in item order."""
    out: list[tuple[str, str, float, float]] = []
    for key, asset in item["assets"].items():
        eo = asset.get("eo:bands") or []
        raster = asset.get("raster:bands") or [{}]
        if len(eo) != 1:
            continue  # single-band assets only: one asset, one band of the scene
        name = eo[0].get("common_name") or eo[0].get("name") or key
        out.append((name, _href(asset["href"], base), float(raster[0].get("scale", 1.0)),
                    float(raster[0].get("offset", 0.0))))
    return out


def band_assets(item: dict[str, Any], base: Path, names: Sequence[str] = DEFAULT_BANDS) -> list[tuple[str, str, float, float]]:
    """The single-band assets of ``names`` (common names), in that order."""
    found: dict[str, tuple[str, str, float, float]] = {}
    for band in single_band_assets(item, base):
        found.setdefault(band[0], band)
    missing = [n for n in names if n not in found]
    if missing:
        raise SceneError(
            f"STAC item {item.get('id')!r} has no single-band asset with common name {', '.join(missing)}; "
            f"it has {', '.join(sorted(found)) or 'none'}"
        )
    return [found[n] for n in names]


def _stacked(item: dict[str, Any], base: Path) -> list[tuple[str, str, float, float]]:
    """The bands of the item's VRT: every single-band asset on the grid of the red (or first) one."""
    import rasterio

    bands = single_band_assets(item, base)
    if not bands:
        raise SceneError(f"STAC item {item.get('id')!r} has no single-band asset with eo:bands; rsgeo reads those")
    names = [b[0] for b in bands]
    ref = bands[names.index("red")] if "red" in names else bands[0]
    with rasterio.open(ref[1]) as ds:
        grid = (ds.width, ds.height, ds.transform)
    kept = []
    for band in bands:
        with rasterio.open(band[1]) as ds:
            if (ds.width, ds.height, ds.transform) == grid:
                kept.append(band)
    return kept


def band_indices(path: str | os.PathLike[str], names: Sequence[str]) -> tuple[int, ...]:
    """1-based bands of the item's VRT (:func:`item_vrt`) holding the common names ``names``."""
    item = read_item(path)
    stacked = [b[0] for b in _stacked(item, Path(path).resolve().parent)]
    missing = [n for n in names if n not in stacked]
    if missing:
        raise SceneError(
            f"STAC item {item.get('id')!r} has no band {', '.join(missing)} on the red band's grid; "
            f"use common names among {', '.join(stacked)}"
        )
    return tuple(stacked.index(n) + 1 for n in names)


def item_vrt(path: str | os.PathLike[str]) -> tuple[str, str]:
    """``(item id, VRT XML)`` stacking the item's single-band assets, scaled to physical values.

    Every single-band ``eo:bands`` asset on the red band's grid is a band, in item order,
    with the colour interpretation of its common name (so the default band choice finds
    red, green and blue); :func:`band_indices` turns common names into its band numbers.
    """
    import rasterio

    item = read_item(path)
    bands = _stacked(item, Path(path).resolve().parent)
    with rasterio.open(bands[0][1]) as first:
        width, height, crs, t = first.width, first.height, first.crs, first.transform
    geo = ", ".join(str(v) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
    parts = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">',
             f"<SRS>{escape(crs.to_wkt())}</SRS>", f"<GeoTransform>{geo}</GeoTransform>"]
    for i, (name, href, scale, offset) in enumerate(bands, start=1):
        with rasterio.open(href) as ds:
            nodata = ds.nodata
        parts.append(f'<VRTRasterBand dataType="Float32" band="{i}">')
        parts.append(f"<ColorInterp>{_COLOUR.get(name, 'Gray')}</ColorInterp><Description>{escape(name)}</Description>")
        if nodata is not None:
            parts.append(f"<NoDataValue>{nodata * scale + offset}</NoDataValue>")
        parts.append(f'<ComplexSource><SourceFilename relativeToVRT="0">{escape(href)}</SourceFilename>'
                     f"<SourceBand>1</SourceBand><ScaleOffset>{offset}</ScaleOffset><ScaleRatio>{scale}</ScaleRatio>"
                     + (f"<NODATA>{nodata}</NODATA>" if nodata is not None else "") + "</ComplexSource>")
        parts.append("</VRTRasterBand>")
    parts.append("</VRTDataset>")
    return str(item.get("id", "")), "".join(parts)
