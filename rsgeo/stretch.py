"""Scene-wide radiometric scaling of any data type to the model's 8-bit input.

One stretch per scene, computed once from a decimated read (GDAL uses the
overviews when the file has them), never a per-chip min-max: the same surface
must look the same to the model in every chip.

The sample read is bounded: when a plain decimated read would decode more than
``MAX_DECODED_PIXELS`` per band (a huge scene without overviews, e.g. a sparse
200k x 200k mosaic), the sample comes from at most ``SAMPLE_BLOCKS`` whole
blocks spread evenly over the scene instead. For a GeoTIFF only blocks that
hold data are candidates, so a sparse file is sampled where its data is.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from rsgeo.errors import OptionError, SceneError, gdal_reason, opt

logger = logging.getLogger(__name__)

#: Longest side of the decimated read used to estimate percentiles.
SAMPLE_SIDE = 1024
#: Most pixels per band a plain decimated read may decode (whole blocks count).
MAX_DECODED_PIXELS = 1 << 28
#: Blocks read for the sample of a scene above that limit.
SAMPLE_BLOCKS = 256
#: Most block-availability lookups when sampling a sparse GeoTIFF (about 1 us each).
MAX_BLOCK_LOOKUPS = 1 << 21


@dataclass(frozen=True)
class Stretch:
    """Linear map of each band from ``[low, high]`` to ``[0, 255]``.

    ``kind`` is ``none`` (values are already 0-255), ``percentile`` (``low``
    and ``high`` estimated from the scene at ``percentiles``) or ``range``
    (fixed values given by the user).
    """

    kind: str
    low: tuple[float, ...]
    high: tuple[float, ...]
    percentiles: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def apply(self, data: np.ndarray) -> np.ndarray:
        """``(B, H, W)`` array of any dtype → ``uint8`` with this stretch."""
        if self.kind == "none" and data.dtype == np.uint8:
            return data
        x = data.astype(np.float32, copy=False)
        low = np.asarray(self.low, np.float32).reshape(-1, 1, 1)
        high = np.asarray(self.high, np.float32).reshape(-1, 1, 1)
        span = np.where(high > low, high - low, 1.0)
        out = (x - low) * (255.0 / span)
        np.nan_to_num(out, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
        np.clip(out, 0.0, 255.0, out=out)
        # To the nearest integer, halves to the even one (recorded as read.rounding): truncating
        # would darken every band by half a level on average.
        return np.rint(out).astype(np.uint8)


_EXAMPLES = {"percentile": "percentile:2,98", "range": "range:0,3000"}


def parse_stretch(text: str) -> tuple[str, tuple[float, ...]]:
    """Parse ``auto``, ``none``, ``percentile:2,98`` or ``range:LOW,HIGH``."""
    text = text.strip().lower()
    if text in ("auto", "none"):
        return text, ()
    kind, _, values = text.partition(":")
    if kind not in ("percentile", "range") or not values:
        raise OptionError(
            f"unknown stretch {text!r}; use auto, none, percentile:2,98 or range:LOW,HIGH"
        )
    try:
        numbers = tuple(float(v) for v in values.split(","))
    except ValueError:
        raise OptionError(f"stretch {text!r} needs two numbers, e.g. {_EXAMPLES[kind]}") from None
    if len(numbers) != 2 or not numbers[0] < numbers[1] or not all(map(math.isfinite, numbers)):
        raise OptionError(f"stretch {text!r} needs two increasing numbers, e.g. {_EXAMPLES[kind]}")
    if kind == "percentile" and not (0 <= numbers[0] and numbers[1] <= 100):
        raise OptionError(f"percentiles must lie in [0, 100], got {text!r}")
    return kind, numbers


def compute_stretch(dataset: Any, bands: tuple[int, ...], how: str = "auto") -> Stretch:
    """Decide the stretch for ``bands`` of an open rasterio dataset.

    ``auto`` leaves 8-bit data as it is and stretches everything else between
    the 2nd and 98th percentiles of the valid pixels of each band.
    """
    kind, values = parse_stretch(how)
    n = len(bands)
    dtype = np.dtype(dataset.dtypes[bands[0] - 1])
    if kind == "auto":
        if all(np.dtype(dataset.dtypes[b - 1]) == np.uint8 for b in bands):
            return Stretch("none", (0.0,) * n, (255.0,) * n)
        kind, values = "percentile", (2.0, 98.0)
    if kind == "none":
        return Stretch("none", (0.0,) * n, (255.0,) * n)
    if kind == "range":
        return Stretch("range", (values[0],) * n, (values[1],) * n)
    sample, n_blocks = _decimated_sample(dataset, bands)
    lows, highs = [], []
    name = _name(dataset)
    for i, band in enumerate(bands):
        valid = sample[i].compressed() if np.ma.isMaskedArray(sample[i]) else np.ravel(sample[i])
        valid = valid[np.isfinite(valid)]
        if valid.size == 0 and n_blocks is not None:
            raise SceneError(
                f"band {band} of {name}: no valid pixel in a sample of {n_blocks} blocks (the scene is too large "
                f"to sample whole without overviews); build overviews with `gdaladdo {name}`, or give the stretch "
                f"with {opt('stretch', 'range:LOW,HIGH')}"
            )
        if valid.size == 0:
            raise SceneError(
                f"band {band} of {name} holds no valid pixel (all nodata); "
                f"choose other bands with {opt('bands')} or check the file's nodata value"
            )
        lo, hi = np.percentile(valid.astype(np.float64), values)
        if hi <= lo:
            hi = lo + (1.0 if np.issubdtype(dtype, np.integer) else max(abs(lo) * 1e-6, 1e-12))
        lows.append(float(lo))
        highs.append(float(hi))
    logger.info("stretch percentile %s: low=%s high=%s", values, lows, highs)
    return Stretch("percentile", tuple(lows), tuple(highs), (values[0], values[1]))


def _name(dataset: Any) -> str:
    from pathlib import Path

    return Path(str(dataset.name)).name


def _decimated_sample(dataset: Any, bands: tuple[int, ...]) -> tuple[np.ma.MaskedArray, int | None]:
    """Sample pixels ``(len(bands), h, w)`` and, for a block sample, how many blocks it read."""
    factor = max(1.0, max(dataset.width, dataset.height) / SAMPLE_SIDE)
    out_h = max(1, int(round(dataset.height / factor)))
    out_w = max(1, int(round(dataset.width / factor)))
    unique = tuple(dict.fromkeys(bands))
    n_blocks: int | None = None
    try:
        if decoded_pixels(dataset, unique[0], out_h, out_w) <= MAX_DECODED_PIXELS:
            data = dataset.read(unique, out_shape=(len(unique), out_h, out_w), masked=True)
        else:
            data, n_blocks = _block_sample(dataset, unique)
    except RasterioIOError as exc:

        raise SceneError(
            f"{_name(dataset)} is damaged or incomplete: reading it to estimate the stretch failed "
            f"({gdal_reason(exc)}); copy the file again (was it still being copied?)"
        ) from exc
    return data[[unique.index(b) for b in bands]], n_blocks


def decoded_pixels(dataset: Any, band: int, out_h: int, out_w: int) -> int:
    """Pixels GDAL decodes for a nearest-neighbour read of ``out_h x out_w``:
    whole blocks of the overview level it would use, one block per sample at most."""
    factor = max(dataset.width / out_w, dataset.height / out_h)
    level = max([1, *(f for f in dataset.overviews(band) if f <= factor)])
    width, height = math.ceil(dataset.width / level), math.ceil(dataset.height / level)
    block_h, block_w = (min(b, n) for b, n in zip(dataset.block_shapes[band - 1], (height, width)))
    blocks_y = min(math.ceil(height / block_h), out_h)
    blocks_x = min(math.ceil(width / block_w), out_w)
    return int(blocks_y * block_h * blocks_x * block_w)


def _block_sample(dataset: Any, bands: tuple[int, ...]) -> tuple[np.ma.MaskedArray, int]:
    """Pixels of up to ``SAMPLE_BLOCKS`` blocks spread over the scene, decimated
    within each block so the sample stays near ``SAMPLE_SIDE`` squared."""
    block_h, block_w = dataset.block_shapes[bands[0] - 1]
    n_y, n_x = math.ceil(dataset.height / block_h), math.ceil(dataset.width / block_w)
    candidates = _written_blocks(dataset, bands[0], n_y, n_x)
    if candidates is None:
        candidates = np.arange(n_y * n_x, dtype=np.int64)
    if len(candidates) == 0:
        return np.ma.masked_all((len(bands), 1, 0), dtype=dataset.dtypes[bands[0] - 1]), 0  # type: ignore[no-untyped-call]
    picks = np.unique(np.linspace(0, len(candidates) - 1, min(SAMPLE_BLOCKS, len(candidates))).round().astype(np.int64))
    side = max(1, SAMPLE_SIDE // math.ceil(math.sqrt(len(picks))))
    parts = []
    for flat in candidates[picks]:
        j, i = divmod(int(flat), n_x)
        window = Window(i * block_w, j * block_h, min(block_w, dataset.width - i * block_w), min(block_h, dataset.height - j * block_h))
        shape = (len(bands), min(side, int(window.height)), min(side, int(window.width)))
        part = dataset.read(bands, window=window, out_shape=shape, masked=True)
        parts.append(part.reshape(len(bands), -1))
    logger.info("stretch sampled from %d of %d blocks of %s", len(picks), n_y * n_x, _name(dataset))
    return np.ma.concatenate(parts, axis=1)[:, None, :], len(picks)  # type: ignore[no-untyped-call]


def _written_blocks(dataset: Any, band: int, n_y: int, n_x: int) -> np.ndarray | None:
    """Row-major ids of the blocks a (sparse) GeoTIFF holds, or None when unknown."""
    if dataset.driver != "GTiff" or n_y * n_x > MAX_BLOCK_LOOKUPS:
        return None
    ids = [
        j * n_x + i
        for j in range(n_y)
        for i in range(n_x)
        if dataset.get_tag_item(f"BLOCK_OFFSET_{i}_{j}", "TIFF", bidx=band) is not None
    ]
    return np.asarray(ids, np.int64)
