"""The bands a STAC item offers: its single-band ``eo:bands`` assets, and the three of its visual asset.

Pure functions of the item's JSON (nothing is opened here): :mod:`rsgeo.stac` stacks
the bands found into a VRT. A *visual* asset is a multi-band true-colour image
(Sentinel-2's ``visual`` TCI): the asset keyed ``visual``, or one with the role
``visual``, whose ``eo:bands`` hold the common names red, green and blue (without
``eo:bands``, its bands 1, 2, 3 are taken as red, green, blue, as a TCI's are).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from rsgeo.errors import SceneError, opt

DEFAULT_BANDS = ("red", "green", "blue")
#: The ``--bands`` name of the item's visual asset (its three bands, as red, green, blue).
VISUAL = "visual"


@dataclass(frozen=True)
class BandAsset:
    """One band of an item: the asset holding it, which of its bands, and how to scale it to physical values.

    Attributes:
        name: the common name (``red``), else the ``eo:bands`` name, else the asset key.
        key: the asset's key in the item (``B04``, ``red``, ``visual``).
        band_name: the ``eo:bands`` name (``B04``, ``rededge1``); ``""`` if none.
        href: the path GDAL opens (``/vsicurl/…`` for a URL).
        scale: ``raster:bands`` scale (1 if none).
        offset: ``raster:bands`` offset (0 if none).
        source_band: the band of the asset's file (1-based; 1 for a single-band asset).
        visual: whether the band is one of the item's visual asset.
    """

    name: str
    key: str
    band_name: str
    href: str
    scale: float = 1.0
    offset: float = 0.0
    source_band: int = 1
    visual: bool = False

    def answers_to(self, name: str) -> bool:
        """Whether ``--bands`` may call this asset ``name`` (its common name, band name or key)."""
        return name in (self.name, self.band_name, self.key)


def gdal_href(href: str, base: str) -> str:
    """An asset href as GDAL opens it, relative ones resolved against ``base`` (the item's URL or folder)."""
    if href.startswith(("http://", "https://")):
        return "/vsicurl/" + href
    if href.startswith("s3://"):
        return "/vsis3/" + href[len("s3://"):]
    if href.startswith("/vsi") or os.path.isabs(href):
        return href
    if base.startswith(("http://", "https://")):
        return "/vsicurl/" + urljoin(base, href)
    return str((Path(base) / href).resolve())


def _is_tiff(asset: dict[str, Any]) -> bool:
    return "tiff" in str(asset.get("type", "")).lower()


def _scaling(asset: dict[str, Any], i: int) -> tuple[float, float]:
    """``(scale, offset)`` of band ``i`` (0-based) of ``asset`` from ``raster:bands``."""
    raster = asset.get("raster:bands") or []
    entry = raster[i] if i < len(raster) and isinstance(raster[i], dict) else {}
    return float(entry.get("scale", 1.0)), float(entry.get("offset", 0.0))


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
        if band not in chosen or (_is_tiff(asset) and not _is_tiff(chosen[band][1])):
            chosen[band] = (key, asset)
    keep = {key for key, _ in chosen.values()}
    out: list[BandAsset] = []
    for key, asset in item["assets"].items():
        if key not in keep:
            continue
        eo = asset["eo:bands"][0]
        scale, offset = _scaling(asset, 0)
        out.append(BandAsset(name=eo.get("common_name") or eo.get("name") or key, key=key, band_name=eo.get("name") or "",
                             href=gdal_href(asset["href"], base), scale=scale, offset=offset))
    return out


def _visual_colours(asset: dict[str, Any]) -> dict[str, int] | None:
    """Colour → 0-based band of a visual asset (``eo:bands`` common names, else TCI order); ``None`` if not RGB."""
    eo = asset.get("eo:bands")
    if not eo:
        return {colour: i for i, colour in enumerate(DEFAULT_BANDS)}
    found: dict[str, int] = {}
    for i, band in enumerate(eo):
        colour = band.get("common_name") or band.get("name")
        if colour in DEFAULT_BANDS and colour not in found:
            found[colour] = i
    return found if len(found) == 3 else None


def visual_bands(item: dict[str, Any], base: str) -> list[BandAsset]:
    """The red, green and blue bands of the item's visual asset, in that order; ``[]`` if it has none.

    Candidates are the asset keyed ``visual`` and assets with the role ``visual``; a
    GeoTIFF is preferred (Earth Search offers ``visual`` and ``visual-jp2``), then the
    key ``visual``, then item order.
    """
    candidates = []
    for order, (key, asset) in enumerate(item["assets"].items()):
        roles = asset.get("roles") or []
        if key != VISUAL and VISUAL not in roles:
            continue
        colours = _visual_colours(asset)
        if colours is not None:
            candidates.append(((not _is_tiff(asset), key != VISUAL, order), key, asset, colours))
    if not candidates:
        return []
    _, key, asset, colours = min(candidates, key=lambda c: c[0])
    eo = asset.get("eo:bands") or []
    out = []
    for colour in DEFAULT_BANDS:
        i = colours[colour]
        scale, offset = _scaling(asset, i)
        band_name = str(eo[i].get("name") or "") if i < len(eo) else ""
        out.append(BandAsset(name=colour, key=key, band_name=band_name, href=gdal_href(asset["href"], base),
                             scale=scale, offset=offset, source_band=i + 1, visual=True))
    return out


def item_bands(item: dict[str, Any], base: str) -> list[BandAsset]:
    """Every band the item offers: its single-band assets in item order, then its visual asset's red, green, blue."""
    return single_band_assets(item, base) + visual_bands(item, base)


def find_band(bands: Sequence[BandAsset], name: str) -> int | None:
    """Index of the band ``name`` calls: by common name first, then band name, then asset key.

    Single-band assets answer before the visual asset's bands, so ``red`` is the
    single-band red asset where the item has one.
    """
    for visual in (False, True):
        for field in ("name", "band_name", "key"):
            for i, band in enumerate(bands):
                if band.visual == visual and getattr(band, field) == name:
                    return i
    return None


def default_rgb(bands: Sequence[BandAsset]) -> dict[int, str]:
    """Index → colour of the bands the default choice feeds as red, green and blue.

    The single-band red, green and blue assets when the item has all three; else its
    visual asset; else whichever single-band assets have those common names.
    """
    single: dict[str, int] = {}
    for i, b in enumerate(bands):
        if not b.visual and b.name in DEFAULT_BANDS:
            single.setdefault(b.name, i)
    visual = {b.name: i for i, b in enumerate(bands) if b.visual}
    chosen = single if len(single) == 3 or not visual else visual
    return {i: colour for colour, i in chosen.items()}


def select(bands: Sequence[BandAsset], names: Sequence[str], item_id: object) -> list[int]:
    """Indices into ``bands`` of ``names`` (``--bands`` by name); ``visual`` (or the visual asset's key) stands for
    its three bands. Names not found raise one :class:`SceneError` line listing what there is."""
    out: list[int] = []
    missing: list[str] = []
    visual = [i for i, b in enumerate(bands) if b.visual]
    for name in names:
        if visual and name in (VISUAL, bands[visual[0]].key) and find_band(
                [b for b in bands if not b.visual], name) is None:
            out.extend(visual)
            continue
        if name == VISUAL and not visual:
            raise SceneError(
                f"STAC item {item_id!r} has no visual asset (a red, green, blue asset keyed visual or with the role "
                f"visual); choose single-band assets by common name, e.g. {opt('bands', 'red,green,blue')}"
            )
        i = find_band(bands, name)
        if i is None:
            missing.append(name)
        else:
            out.append(i)
    if missing:
        offered = list(dict.fromkeys(b.name for b in bands if not b.visual)) + ([VISUAL] if visual else [])
        raise SceneError(
            f"STAC item {item_id!r} has no band {', '.join(missing)}; "
            f"use common names among {', '.join(offered) or 'none'}"
        )
    return out
