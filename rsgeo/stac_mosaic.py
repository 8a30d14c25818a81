"""Several STAC items as one scene (``--mosaic``): per band, a GDAL VRT mosaic of the items' assets.

The mosaic is written as a STAC item of its own (``<name>.json``) whose assets are the
per-band mosaics (``<name>/<band>.vrt``), with the items' ``eo:bands`` and
``raster:bands``: :mod:`rsgeo.stac` then reads it like any item (bands by name, scale
and offset, bands of other resolutions onto the red band's grid), and its id, ``mosaic
of A, B``, names the items in the result's metadata. Where items overlap, the later
item's valid pixels win (GDAL VRT source order). Only bands every item has are kept.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from rsgeo.errors import OptionError, opt
from rsgeo.stac import item_base, open_asset, read_item
from rsgeo.stac_assets import BandAsset, single_band_assets


@dataclass(frozen=True)
class _Tile:
    """One item's asset of a band: where it lies in the band's CRS, in its own pixels."""

    href: str
    crs: Any
    transform: Any
    width: int
    height: int
    nodata: float | None
    dtype: str

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        return (t.c, t.f + self.height * t.e, t.c + self.width * t.a, t.f)


def _tile(asset: BandAsset, item_id: object) -> _Tile:
    with open_asset(asset, item_id) as ds:
        return _Tile(asset.href, ds.crs, ds.transform, ds.width, ds.height, ds.nodata, ds.dtypes[0])


def _covers_exactly(boxes: Sequence[tuple[float, float, float, float]], union: tuple[float, float, float, float]) -> bool:
    """Whether ``boxes`` are all one box, or tile ``union`` without gaps or overlaps (then no nodata is needed)."""
    if all(b == boxes[0] for b in boxes):
        return True
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1]):
                return False
    area = sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes)
    whole = (union[2] - union[0]) * (union[3] - union[1])
    return abs(area - whole) <= 1e-9 * whole


def band_mosaic_vrt(key: str, tiles: Sequence[_Tile]) -> str:
    """The VRT XML placing ``tiles`` (one band of every item) on the grid of their union."""
    first = tiles[0]
    t = first.transform
    if any(x.crs != first.crs for x in tiles):
        crss = ", ".join(dict.fromkeys(x.crs.to_string() for x in tiles))
        raise OptionError(f"{opt('mosaic')} needs the items in one CRS, and band {key} is in {crss}; search a smaller "
                          f"{opt('bbox')}, or leave out {opt('mosaic')} to get one result per item")
    if any(x.transform.b or x.transform.d or (x.transform.a, x.transform.e) != (t.a, t.e) for x in tiles):
        raise OptionError(f"{opt('mosaic')} needs the items' band {key} at one pixel size, north up; "
                          f"leave out {opt('mosaic')} to get one result per item")
    boxes = [x.bounds for x in tiles]
    union = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
    nodata = {x.nodata for x in tiles}
    if len(nodata) > 1:
        raise OptionError(f"the items' band {key} have different nodata values ({', '.join(map(str, nodata))}); "
                          f"leave out {opt('mosaic')} to get one result per item")
    value = nodata.pop()
    if value is None and not _covers_exactly(boxes, union):
        raise OptionError(f"the items' band {key} has no nodata value, so {opt('mosaic')} cannot tell the gaps between "
                          f"items from data; leave out {opt('mosaic')} to get one result per item")
    width = round((union[2] - union[0]) / t.a)
    height = round((union[3] - union[1]) / -t.e)
    geo = ", ".join(repr(float(v)) for v in (union[0], t.a, 0.0, union[3], 0.0, t.e))
    parts = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">', f"<SRS>{escape(first.crs.to_wkt())}</SRS>",
             f"<GeoTransform>{geo}</GeoTransform>", f'<VRTRasterBand dataType="{_gdal_type(first.dtype)}" band="1">']
    if value is not None:
        parts.append(f"<NoDataValue>{value!r}</NoDataValue>")
    for x in tiles:  # later sources are drawn over earlier ones: the last item's valid pixels win
        col, row = (x.transform.c - union[0]) / t.a, (x.transform.f - union[3]) / t.e
        parts.append(f'<ComplexSource><SourceFilename relativeToVRT="0">{escape(x.href)}</SourceFilename>'
                     f'<SourceBand>1</SourceBand><SrcRect xOff="0" yOff="0" xSize="{x.width}" ySize="{x.height}"/>'
                     f'<DstRect xOff="{col!r}" yOff="{row!r}" xSize="{x.width}" ySize="{x.height}"/>'
                     + (f"<NODATA>{value!r}</NODATA>" if value is not None else "") + "</ComplexSource>")
    parts.append("</VRTRasterBand></VRTDataset>")
    return "".join(parts)


def _gdal_type(dtype: str) -> str:
    """GDAL's name of a numpy data type (``uint16`` → ``UInt16``), for a VRT band."""
    from rasterio.dtypes import dtype_rev, typename_fwd

    return str(typename_fwd[dtype_rev[dtype]])


def mosaic_item(paths: Sequence[Path], folder: Path, name: str) -> tuple[Path, list[Path]]:
    """Write the mosaic of the items at ``paths`` as ``folder/<name>.json`` (and its band VRTs in ``folder/<name>/``).

    Returns the item file and the files this call wrote (unchanged files are left as they are, for ``--resume``).
    """
    items = [read_item(p) for p in paths]
    bands = [{b.band_name or b.name: b for b in single_band_assets(item, item_base(p))} for item, p in zip(items, paths)]
    keys = [k for k in bands[0] if all(k in b for b in bands[1:])]
    if not keys:
        raise OptionError(f"the items found share no single-band asset, so {opt('mosaic')} has no band to build; "
                          f"leave out {opt('mosaic')} to get one result per item")
    ids = [str(item.get("id", "")) for item in items]
    assets: dict[str, Any] = {}
    files: dict[Path, str] = {}
    for key in keys:
        per_item = [b[key] for b in bands]
        if len({(a.scale, a.offset) for a in per_item}) > 1:
            raise OptionError(f"the items scale band {key} differently (raster:bands scale/offset); "
                              f"leave out {opt('mosaic')} to get one result per item")
        tiles = [_tile(a, i) for a, i in zip(per_item, ids)]
        files[folder / name / f"{key}.vrt"] = band_mosaic_vrt(key, tiles)
        a = per_item[0]
        assets[key] = {"href": f"{name}/{key}.vrt", "type": "application/x-vrt",
                       "eo:bands": [{"name": a.band_name or a.name, "common_name": a.name}],
                       "raster:bands": [{"scale": a.scale, "offset": a.offset}]}
    datetimes = sorted(str((i.get("properties") or {}).get("datetime")) for i in items)
    doc: dict[str, Any] = {"type": "Feature", "stac_version": "1.0.0", "id": f"mosaic of {', '.join(ids)}", "geometry": None,
           "properties": {"datetime": None, "start_datetime": datetimes[0], "end_datetime": datetimes[-1],
                          "rsgeo:mosaic_of": ids},
           "links": [], "assets": assets}
    path = folder / f"{name}.json"
    files[path] = json.dumps(doc, indent=1, sort_keys=True)
    (folder / name).mkdir(parents=True, exist_ok=True)
    written = []
    for file, text in files.items():
        if not file.is_file() or file.read_text(encoding="utf-8") != text:
            file.write_text(text, encoding="utf-8")
            written.append(file)
    return path, written
