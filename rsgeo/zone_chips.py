"""The chips of a zone: where they lie (pure) and their pixels with the zone masked.

A zone that fits in one chip gets one chip centred on its bounding box; a larger
zone gets a grid of chips centred on its bounding box, of which only the chips
the zone overlaps are kept. Chips are the model's chip (the size a scene grid
would use, :meth:`rsgeo.scene.Scene.chip_spec`) and, like grid chips, are shifted
inwards to lie inside the scene rather than padded.

Pixels outside the zone, and nodata pixels, are set to the model's mean colour
(:func:`mask_colour`): after the encoder's ``Normalize`` they are (within half a
grey level) zero, the input the model reads as "nothing in particular". Black
(0), what a grid chip's nodata pixels get, would become ``-mean/std``
(about -2 for CLIP), a strong dark signal that would pull small zones towards
dark classes. Masking happens before the chip is resized to the model input, so
the pixels the model sees never depend on what lies outside the zone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from rsgeo.encoders.base import ImageSpec


@dataclass(frozen=True)
class ZoneChip:
    """One chip of one zone: its window in the scene, its transform, the zone's area inside it.

    ``zone`` is the zone's position in the zones frame; ``area`` is in CRS units squared.
    """

    zone: int
    window: Window
    transform: Affine
    area: float


def mask_colour(spec: ImageSpec) -> np.ndarray:
    """The ``uint8`` RGB that the encoder's normalisation maps to (about) zero: its mean colour."""
    return np.asarray([int(round(255.0 * m)) for m in spec.mean], np.uint8)


def axis_offsets(lo: float, hi: float, size: int, length: int) -> list[int]:
    """Chip offsets along one axis covering ``[lo, hi)`` (pixels), centred on it, inside ``[0, length)``.

    As many chips of ``size`` as the span needs, laid end to end from the centre
    outwards; each is shifted inwards to end inside the scene. Along a scene
    shorter than a chip the one chip starts at 0 (and is clamped to the scene).
    """
    if size >= length:
        return [0]
    n = max(1, math.ceil((hi - lo) / size - 1e-9))
    start = (lo + hi) / 2.0 - n * size / 2.0
    offsets = [min(max(0, int(round(start + k * size))), length - size) for k in range(n)]
    return list(dict.fromkeys(offsets))


def scene_footprint(transform: Affine, width: int, height: int) -> Any:
    """The scene's outline in its CRS (a rotated scene gives a rotated polygon)."""
    import shapely

    corners = [transform * (0, 0), transform * (width, 0), transform * (width, height), transform * (0, height)]
    return shapely.Polygon(corners)


def plan_zone_chips(zone: int, geometry: Any, *, transform: Affine, width: int, height: int, size_px: int) -> list[ZoneChip]:
    """The chips of one zone (in the scene CRS) that it overlaps, row by row; none when it misses the scene."""
    import shapely
    from rasterio.windows import from_bounds

    inside = shapely.intersection(geometry, scene_footprint(transform, width, height))
    if inside.is_empty or inside.area <= 0:
        return []
    box = from_bounds(*inside.bounds, transform=transform)
    c0, c1 = sorted((box.col_off, box.col_off + box.width))
    r0, r1 = sorted((box.row_off, box.row_off + box.height))
    w, h = min(size_px, width), min(size_px, height)
    chips = []
    for row in axis_offsets(r0, r1, size_px, height):
        for col in axis_offsets(c0, c1, size_px, width):
            window = Window(col, row, w, h)
            chip_transform = window_transform(window, transform)
            polygon = scene_footprint(chip_transform, w, h)
            area = float(shapely.area(shapely.intersection(polygon, geometry)))
            if area > 0:
                chips.append(ZoneChip(zone, window, chip_transform, area))
    return chips


def zone_mask(geometry: Any, chip: ZoneChip) -> np.ndarray:
    """True for the chip's pixels inside the zone (pixel centres; every touched pixel when no centre is)."""
    from rasterio.features import geometry_mask

    shape = (int(chip.window.height), int(chip.window.width))
    inside: np.ndarray = geometry_mask([geometry], out_shape=shape, transform=chip.transform, invert=True)
    if not inside.any():  # a sliver between pixel centres: the pixels it touches
        inside = geometry_mask([geometry], out_shape=shape, transform=chip.transform, invert=True, all_touched=True)
    return inside


def masked_chip(rgb: np.ndarray, valid: np.ndarray, inside: np.ndarray, fill: np.ndarray) -> tuple[np.ndarray, float]:
    """``rgb`` ``(H, W, 3)`` with every pixel outside the zone or nodata set to ``fill``, and the
    valid share of the zone's pixels in the chip."""
    keep = inside & valid
    out = np.where(keep[:, :, None], rgb, fill[None, None, :]).astype(np.uint8)
    n_inside = int(inside.sum())
    return out, (float(keep.sum()) / n_inside if n_inside else 0.0)

