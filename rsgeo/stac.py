"""A STAC item as a scene: its band assets stacked into one in-memory GDAL VRT.

The item is a local JSON file or an ``http(s)://`` URL of one (fetched with
:mod:`urllib`; no pystac needed). Bands are chosen by their ``eo:bands`` common
name (default ``red,green,blue``), else their ``eo:bands`` name or asset key; each
asset's ``raster:bands`` ``scale``/``offset`` is applied in the VRT (``value * scale
+ offset``) so the stretch sees physical values. Remote asset hrefs are read
through GDAL's ``/vsicurl/`` (``s3://`` through ``/vsis3/``); relative hrefs are
resolved against the item (its folder, or its URL).

The red band's grid is the scene's grid. Assets on a coarser or finer grid of the
same CRS (Sentinel-2's 20 m and 60 m bands beside its 10 m ones) are resampled
onto it by the VRT: bilinear from coarser pixels, average from finer ones.
Assets in another CRS are left out.
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
from urllib.parse import urljoin, urlsplit
from xml.sax.saxutils import escape

from rsgeo.errors import SceneError

logger = logging.getLogger(__name__)

DEFAULT_BANDS = ("red", "green", "blue")
_COLOUR = {"red": "Red", "green": "Green", "blue": "Blue"}
#: Seconds to wait for a STAC item URL to answer.
FETCH_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class BandAsset:
    """One single-band asset of an item: how to find it, and how to scale it to physical values.

    Attributes:
        name: the common name (``red``), else the ``eo:bands`` name, else the asset key.
        key: the asset's key in the item (``B04``, ``red``).
        band_name: the ``eo:bands`` name (``B04``, ``rededge1``); ``""`` if none.
        href: the path GDAL opens (``/vsicurl/…`` for a URL).
        scale: ``raster:bands`` scale (1 if none).
        offset: ``raster:bands`` offset (0 if none).
    """

    name: str
    key: str
    band_name: str
    href: str
    scale: float = 1.0
    offset: float = 0.0

    def answers_to(self, name: str) -> bool:
        """Whether ``--bands`` may call this asset ``name`` (its common name, band name or key)."""
        return name in (self.name, self.band_name, self.key)


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


def gdal_href(href: str, base: str) -> str:
    """An asset href as GDAL opens it, relative ones resolved against ``base`` (:func:`item_base`)."""
    if href.startswith(("http://", "https://")):
        return "/vsicurl/" + href
    if href.startswith("s3://"):
        return "/vsis3/" + href[len("s3://"):]
    if href.startswith("/vsi") or os.path.isabs(href):
        return href
    if base.startswith(("http://", "https://")):
        return "/vsicurl/" + urljoin(base, href)
    return str((Path(base) / href).resolve())


def single_band_assets(item: dict[str, Any], base: str) -> list[BandAsset]:
    """Every single-band asset with ``eo:bands``, in item order, one per band.

    An item may offer one band in two formats (Earth Search: ``red`` as a COG and
    ``red-jp2``); the GeoTIFF is kept, else the first.
    """
    chosen: dict[str, tuple[str, dict[str, Any]]] = {}
    for key, asset in item["assets"].items():
        eo = asset.get("eo:bands") or []
        if len(eo) != 1:
            continue  # single-band assets only: one asset, one band of the scene
        band = eo[0].get("name") or eo[0].get("common_name") or key
        tiff = "tiff" in str(asset.get("type", "")).lower()
        if band not in chosen or (tiff and "tiff" not in str(chosen[band][1].get("type", "")).lower()):
            chosen[band] = (key, asset)
    keep = {key for key, _ in chosen.values()}
    out: list[BandAsset] = []
    for key, asset in item["assets"].items():
        if key not in keep:
            continue
        eo = asset["eo:bands"][0]
        raster = (asset.get("raster:bands") or [{}])[0]
        out.append(BandAsset(
            name=eo.get("common_name") or eo.get("name") or key, key=key, band_name=eo.get("name") or "",
            href=gdal_href(asset["href"], base), scale=float(raster.get("scale", 1.0)),
            offset=float(raster.get("offset", 0.0)),
        ))
    return out


def _find(bands: Sequence[BandAsset], name: str) -> int | None:
    """Index of the band ``name`` calls: by common name first, then band name, then asset key."""
    for field in ("name", "band_name", "key"):
        for i, band in enumerate(bands):
            if getattr(band, field) == name:
                return i
    return None


def band_assets(item: dict[str, Any], base: str, names: Sequence[str] = DEFAULT_BANDS) -> list[BandAsset]:
    """The single-band assets of ``names`` (common names, band names or keys), in that order."""
    bands = single_band_assets(item, base)
    found = {n: _find(bands, n) for n in names}
    missing = [n for n, i in found.items() if i is None]
    if missing:
        raise SceneError(
            f"STAC item {item.get('id')!r} has no single-band asset with common name {', '.join(missing)}; "
            f"it has {', '.join(sorted({b.name for b in bands})) or 'none'}"
        )
    return [bands[i] for i in found.values() if i is not None]


@dataclass(frozen=True)
class _Placed:
    """A band of the VRT: its asset, the source rectangle covering the scene grid, and its nodata."""

    asset: BandAsset
    src_rect: tuple[float, float, float, float] | None  # None: the asset is on the scene grid
    resampling: str
    nodata: float | None


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


def _stacked(item: dict[str, Any], base: str) -> tuple[tuple[Any, Any, int, int], list[_Placed]]:
    """The scene grid (the red band's, else the first's) and the bands placed on it, in item order."""
    bands = single_band_assets(item, base)
    if not bands:
        raise SceneError(f"STAC item {item.get('id')!r} has no single-band asset with eo:bands; rsgeo reads those")
    ref = _find(bands, "red")
    order = [ref if ref is not None else 0] + [i for i in range(len(bands)) if i != (ref if ref is not None else 0)]
    grids: dict[int, tuple[Any, Any, int, int]] = {}
    nodata: dict[int, float | None] = {}
    for i in order:
        with open_asset(bands[i], item.get("id")) as ds:
            grids[i], nodata[i] = (ds.crs, ds.transform, ds.width, ds.height), ds.nodata
    grid = grids[order[0]]
    placed = []
    for i, band in enumerate(bands):
        if grids[i] == grid:
            placed.append(_Placed(band, None, "nearest", nodata[i]))
            continue
        rect = source_rect(grid, grids[i])
        if rect is None or not all(math.isfinite(v) and v > 0 for v in rect[2:]):
            logger.info("STAC item %s: asset %s is not on the CRS of the %s band; left out", item.get("id"), band.key,
                        bands[order[0]].name)
            continue
        finer = abs(grids[i][1].a) < abs(grid[1].a)
        placed.append(_Placed(band, rect, "average" if finer else "bilinear", nodata[i]))
    return grid, placed


def band_indices(path: str | os.PathLike[str], names: Sequence[str]) -> tuple[int, ...]:
    """1-based bands of the item's VRT (:func:`item_vrt`) holding the bands ``names`` calls."""
    item = read_item(path)
    stacked = [p.asset for p in _stacked(item, item_base(path))[1]]
    found = {n: _find(stacked, n) for n in names}
    missing = [n for n, i in found.items() if i is None]
    if missing:
        raise SceneError(
            f"STAC item {item.get('id')!r} has no band {', '.join(missing)} in the CRS of its red band; "
            f"use common names among {', '.join(dict.fromkeys(b.name for b in stacked))}"
        )
    return tuple(i + 1 for i in found.values() if i is not None)


def item_vrt(path: str | os.PathLike[str]) -> tuple[str, str]:
    """``(item id, VRT XML)`` stacking the item's single-band assets, scaled to physical values.

    Every single-band ``eo:bands`` asset in the red band's CRS is a band, in item
    order, on the red band's grid, with the colour interpretation of its common name
    (so the default band choice finds red, green and blue); :func:`band_indices`
    turns names into its band numbers.
    """
    item = read_item(path)
    (crs, t, width, height), bands = _stacked(item, item_base(path))
    geo = ", ".join(str(v) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
    parts = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">',
             f"<SRS>{escape(crs.to_wkt())}</SRS>", f"<GeoTransform>{geo}</GeoTransform>"]
    for i, band in enumerate(bands, start=1):
        a, nodata = band.asset, band.nodata
        parts.append(f'<VRTRasterBand dataType="Float32" band="{i}">')
        parts.append(f"<ColorInterp>{_COLOUR.get(a.name, 'Gray')}</ColorInterp><Description>{escape(a.name)}</Description>")
        if nodata is not None:
            parts.append(f"<NoDataValue>{nodata * a.scale + a.offset}</NoDataValue>")
        rects = ""
        if band.src_rect is not None:
            x, y, w, h = (repr(float(v)) for v in band.src_rect)
            rects = (f'<SrcRect xOff="{x}" yOff="{y}" xSize="{w}" ySize="{h}"/>'
                     f'<DstRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>')
        parts.append(f'<ComplexSource resampling="{band.resampling}"><SourceFilename relativeToVRT="0">{escape(a.href)}'
                     f"</SourceFilename><SourceBand>1</SourceBand>{rects}<ScaleOffset>{a.offset}</ScaleOffset>"
                     f"<ScaleRatio>{a.scale}</ScaleRatio>"
                     + (f"<NODATA>{nodata}</NODATA>" if nodata is not None else "") + "</ComplexSource>")
        parts.append("</VRTRasterBand>")
    parts.append("</VRTDataset>")
    return str(item.get("id", "")), "".join(parts)
