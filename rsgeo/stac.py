"""A STAC item as a scene: its band assets stacked into one in-memory GDAL VRT.

The item is a local JSON file or an ``http(s)://`` URL of one (fetched with
:mod:`urllib`; no pystac needed). Bands are chosen by their ``eo:bands`` common
name (default ``red,green,blue``), else their ``eo:bands`` name or asset key, or
as ``visual``, the item's visual asset (:mod:`rsgeo.stac_assets`); each asset's ``raster:bands`` ``scale``/``offset`` is applied in the VRT (``value * scale
+ offset``) so the stretch sees physical values. Remote asset hrefs are read
through GDAL's ``/vsicurl/`` (``s3://`` through ``/vsis3/``); relative hrefs are
resolved against the item (its folder, or its URL).

The red band's grid is the scene's grid (the single-band red asset's, else the
visual asset's). Assets on a coarser or finer grid of the
same CRS (Sentinel-2's 20 m and 60 m bands beside its 10 m ones) are resampled
onto it by the VRT: bilinear from coarser pixels, average from finer ones.
Assets in another CRS (or on a rotated grid) are warped onto it, bilinear, through a
GDAL warped VRT nested in the stacked one (:func:`warped_vrt`).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from rsgeo.errors import SceneError
from rsgeo.stac_assets import DEFAULT_BANDS, BandAsset, default_rgb, find_band, item_bands, select, single_band_assets

logger = logging.getLogger(__name__)

_COLOUR = {"red": "Red", "green": "Green", "blue": "Blue"}
#: Seconds to wait for a STAC item URL to answer.
FETCH_TIMEOUT_S = 30.0


def is_item_url(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an ``http(s)://`` URL of a ``.json`` file (a STAC item URL)."""
    text = os.fspath(path)
    return text.lower().startswith(("http://", "https://")) and urlsplit(text).path.lower().endswith(".json")


def is_stac_item(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a JSON file, local or by URL (a STAC item, by its suffix)."""
    text = os.fspath(path)
    if text.lower().startswith(("http://", "https://")):
        return is_item_url(text)
    return "://" not in text and not text.startswith("/vsi") and text.lower().endswith(".json")


def read_item(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The item's JSON, with a clear error for a file (or URL) that is not a STAC item."""
    text = os.fspath(path)
    if is_item_url(text):
        raw = fetch_json(text, what="the STAC item")
    else:
        try:
            raw = json.loads(Path(text).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SceneError(f"cannot read the STAC item {text}: {exc}; give a STAC item JSON file") from None
    if not isinstance(raw, dict) or raw.get("type") != "Feature" or "assets" not in raw:
        raise SceneError(f"{text} is not a STAC item (a GeoJSON Feature with assets)")
    return raw


def stac_item_id(path: str | os.PathLike[str]) -> str | None:
    """The id of the STAC item ``path`` names (a local item file or an item URL); ``None`` for any other scene."""
    return str(read_item(path).get("id", "")) if is_stac_item(path) else None


def fetch_json(url: str, *, what: str, timeout: float = FETCH_TIMEOUT_S) -> Any:
    """The JSON document at ``url``; one :class:`SceneError` line saying what to check if it cannot be had."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"Accept": "application/geo+json, application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310  (http(s) only: is_item_url)
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise SceneError(f"cannot fetch {what} {url}: HTTP {exc.code} {exc.reason}; check the URL (try it with curl -I)") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SceneError(
            f"cannot fetch {what} {url} ({reason}); check the URL and the network (try it with curl -I), "
            "or download the item and give the file"
        ) from None
    try:
        return json.loads(body)
    except ValueError:
        raise SceneError(f"{url} is not JSON; give the URL of a STAC item JSON document") from None


def item_base(path: str | os.PathLike[str]) -> str:
    """What the item's relative hrefs are relative to: its URL, or its folder (absolute)."""
    text = os.fspath(path)
    return text if is_item_url(text) else str(Path(text).resolve().parent)


def band_assets(item: dict[str, Any], base: str, names: Sequence[str] = DEFAULT_BANDS) -> list[BandAsset]:
    """The single-band assets of ``names`` (common names, band names or keys), in that order."""
    bands = single_band_assets(item, base)
    found = {n: find_band(bands, n) for n in names}
    missing = [n for n, i in found.items() if i is None]
    if missing:
        raise SceneError(
            f"STAC item {item.get('id')!r} has no single-band asset with common name {', '.join(missing)}; "
            f"it has {', '.join(sorted({b.name for b in bands})) or 'none'}"
        )
    return [bands[i] for i in found.values() if i is not None]


@dataclass(frozen=True)
class _Placed:
    """A band of the VRT: its asset, the source rectangle covering the scene grid, its nodata and data type."""

    asset: BandAsset
    src_rect: tuple[float, float, float, float] | None  # None: the asset is on the scene grid
    resampling: str
    nodata: float | None
    dtype: str  # the VRT band's data type
    colour: str  # the VRT band's colour interpretation
    warped: str | None = None  # a warped VRT's XML, read instead of the asset (another CRS)


@dataclass(frozen=True)
class _Opened:
    """What the VRT needs of an asset's file: its grid, and per band its nodata and data type."""

    grid: tuple[Any, Any, int, int]
    nodata: tuple[float | None, ...]
    dtypes: tuple[str, ...]


def open_asset(asset: BandAsset, item_id: object) -> Any:
    """The asset opened with rasterio; one :class:`SceneError` line if it cannot be."""
    import rasterio
    from rasterio.errors import RasterioIOError

    from rsgeo.errors import gdal_reason
    from rsgeo.sources import is_remote, remote_gdal_options, remote_hint

    try:
        with rasterio.Env(**remote_gdal_options()):
            return rasterio.open(asset.href)
    except RasterioIOError as exc:
        hint = remote_hint(asset.href) if is_remote(asset.href) else "check that the file exists and is a raster"
        raise SceneError(f"cannot open asset {asset.key!r} of STAC item {item_id!r}, {asset.href} ({gdal_reason(exc)}); {hint}") from None


def source_rect(scene: Any, asset: Any) -> tuple[float, float, float, float] | None:
    """``(col, row, width, height)`` of ``asset``'s pixels covering the grid of ``scene`` (both ``(crs, transform,
    width, height)``); ``None`` where that is not a rectangle of its pixels (another CRS, a rotated grid)."""
    s_crs, s_t, s_w, s_h = scene
    a_crs, a_t, _, _ = asset
    if a_crs != s_crs or s_t.b or s_t.d or a_t.b or a_t.d:
        return None
    col, row = ~a_t * (s_t.c, s_t.f)
    return (col, row, s_w * s_t.a / a_t.a, s_h * s_t.e / a_t.e)


def _opened(asset: BandAsset, item_id: object) -> _Opened:
    with open_asset(asset, item_id) as ds:
        if asset.source_band > ds.count:
            raise SceneError(f"asset {asset.key!r} of STAC item {item_id!r} has {ds.count} band(s), but its eo:bands "
                             f"put {asset.name} in band {asset.source_band}; check the item")
        return _Opened((ds.crs, ds.transform, ds.width, ds.height), tuple(ds.nodatavals), tuple(ds.dtypes))


def _vrt_type(asset: BandAsset, dtype: str) -> str:
    """The VRT band's data type: 8-bit unscaled data (a visual asset) stays ``Byte``, so that the stretch leaves it
    as it is, as it would the file itself; anything else is ``Float32`` (scaled to physical values)."""
    return "Byte" if dtype == "uint8" and (asset.scale, asset.offset) == (1.0, 0.0) else "Float32"


def _stacked(item: dict[str, Any], base: str) -> tuple[tuple[Any, Any, int, int], list[_Placed]]:
    """The scene grid (the default red band's, else the first band's) and the bands placed on it, in item order
    (single-band assets, then the visual asset's red, green, blue)."""
    bands = item_bands(item, base)
    if not bands:
        raise SceneError(f"STAC item {item.get('id')!r} has no single-band asset with eo:bands and no visual asset; "
                         "rsgeo reads those")
    colours = default_rgb(bands)
    ref = next((i for i, c in colours.items() if c == "red"), 0)
    opened: dict[str, _Opened] = {}
    warped: dict[str, tuple[str, float]] = {}
    for band in [bands[ref]] + bands:  # the reference first: a broken red asset is the first message
        if band.href not in opened:
            opened[band.href] = _opened(band, item.get("id"))
    grid = opened[bands[ref].href].grid
    placed = []
    for i, band in enumerate(bands):
        info = opened[band.href]
        k = band.source_band - 1
        nodata, dtype, colour = info.nodata[k], _vrt_type(band, info.dtypes[k]), _COLOUR.get(colours.get(i, ""), "Gray")
        if info.grid == grid:
            placed.append(_Placed(band, None, "nearest", nodata, dtype, colour))
            continue
        rect = source_rect(grid, info.grid)
        if rect is not None and all(math.isfinite(v) and v > 0 for v in rect[2:]):
            finer = abs(info.grid[1].a) < abs(grid[1].a)
            placed.append(_Placed(band, rect, "average" if finer else "bilinear", nodata, dtype, colour))
            continue
        if info.grid[0] is None:
            logger.info("STAC item %s: asset %s has no CRS; left out", item.get("id"), band.key)
            continue
        if band.href not in warped:  # another CRS (or a rotated grid): warped onto the red band's grid
            warped[band.href] = warped_vrt(band, grid, item.get("id"))
            logger.info("STAC item %s: asset %s (%s) warped onto the grid of the %s band (bilinear)", item.get("id"),
                        band.key, info.grid[0], bands[ref].name)
        source, nodata = warped[band.href]
        placed.append(_Placed(band, None, "nearest", nodata, dtype, colour, source))
    return grid, placed


def warped_vrt(asset: BandAsset, grid: tuple[Any, Any, int, int], item_id: object) -> tuple[str, float]:
    """A GDAL warped VRT (its XML) of ``asset`` on ``grid`` (``(crs, transform, width, height)``), bilinear, and its
    nodata value: the asset's, else NaN for floating-point data and 0 for integers (what lies outside the asset)."""
    import xml.etree.ElementTree as ET

    import numpy as np
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    from rsgeo.sources import remote_gdal_options

    crs, transform, width, height = grid
    with open_asset(asset, item_id) as ds:
        nodata = ds.nodata
        if nodata is None:
            nodata = math.nan if np.dtype(ds.dtypes[0]).kind == "f" else 0.0
        with rasterio.Env(**remote_gdal_options()), WarpedVRT(
            ds, crs=crs, transform=transform, width=width, height=height, resampling=Resampling.bilinear, nodata=nodata,
        ) as vrt:
            xml = vrt.tags(ns="xml:VRT")["xml:VRT"]  # GDAL's own serialisation of the warp
    root = ET.fromstring(xml)
    dataset = root.find("GDALWarpOptions/SourceDataset")
    if dataset is not None:  # the path GDAL opens, absolute: the stacked VRT lives in memory
        dataset.set("relativeToVRT", "0")
        dataset.text = asset.href
    return ET.tostring(root, encoding="unicode"), float(nodata)


def band_indices(path: str | os.PathLike[str], names: Sequence[str]) -> tuple[int, ...]:
    """1-based bands of the item's VRT (:func:`item_vrt`) holding the bands ``names`` calls (``visual``: the visual
    asset's red, green and blue)."""
    item = read_item(path)
    stacked = [p.asset for p in _stacked(item, item_base(path))[1]]
    return tuple(i + 1 for i in select(stacked, names, item.get("id")))


def item_vrt(path: str | os.PathLike[str]) -> tuple[str, str]:
    """``(item id, VRT XML)`` stacking the item's bands, scaled to physical values.

    Every single-band ``eo:bands`` asset is a band, in item order, then the visual
    asset's red, green and blue, all on the red band's grid (warped there from
    another CRS).
    The bands the default choice takes (:func:`~rsgeo.stac_assets.default_rgb`) have
    the colour interpretation red, green and blue; :func:`band_indices` turns names
    into band numbers.
    """
    item = read_item(path)
    (crs, t, width, height), bands = _stacked(item, item_base(path))
    geo = ", ".join(str(v) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
    parts = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">',
             f"<SRS>{escape(crs.to_wkt())}</SRS>", f"<GeoTransform>{geo}</GeoTransform>"]
    for i, band in enumerate(bands, start=1):
        a, nodata = band.asset, band.nodata
        parts.append(f'<VRTRasterBand dataType="{band.dtype}" band="{i}">')
        parts.append(f"<ColorInterp>{band.colour}</ColorInterp><Description>{escape(a.name)}</Description>")
        if nodata is not None:
            parts.append(f"<NoDataValue>{nodata * a.scale + a.offset}</NoDataValue>")
        rects = ""
        if band.src_rect is not None:
            x, y, w, h = (repr(float(v)) for v in band.src_rect)
            rects = (f'<SrcRect xOff="{x}" yOff="{y}" xSize="{w}" ySize="{h}"/>'
                     f'<DstRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>')
        parts.append(f'<ComplexSource resampling="{band.resampling}"><SourceFilename relativeToVRT="0">{escape(band.warped or a.href)}'
                     f"</SourceFilename><SourceBand>{a.source_band}</SourceBand>{rects}<ScaleOffset>{a.offset}</ScaleOffset>"
                     f"<ScaleRatio>{a.scale}</ScaleRatio>"
                     + (f"<NODATA>{nodata}</NODATA>" if nodata is not None else "") + "</ComplexSource>")
        parts.append("</VRTRasterBand>")
    parts.append("</VRTDataset>")
    return str(item.get("id", "")), "".join(parts)
