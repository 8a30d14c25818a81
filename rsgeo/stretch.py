"""Scene-wide radiometric scaling of any data type to the model's 8-bit input.

One stretch per scene, computed once from a decimated read (GDAL uses the
overviews when the file has them), never a per-chip min-max: the same surface
must look the same to the model in every chip.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rsgeo.errors import OptionError, SceneError

logger = logging.getLogger(__name__)

#: Longest side of the decimated read used to estimate percentiles.
SAMPLE_SIDE = 1024


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
        return np.rint(out).astype(np.uint8)


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
        raise OptionError(f"stretch {text!r} needs two numbers, e.g. {kind}:2,98") from None
    if len(numbers) != 2 or not numbers[0] < numbers[1]:
        raise OptionError(f"stretch {text!r} needs two increasing numbers, e.g. {kind}:2,98")
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
    sample = _decimated_sample(dataset, bands)
    lows, highs = [], []
    for i, band in enumerate(bands):
        valid = sample[i].compressed() if np.ma.isMaskedArray(sample[i]) else np.ravel(sample[i])
        valid = valid[np.isfinite(valid)]
        if valid.size == 0:
            raise SceneError(
                f"band {band} of {dataset.name} holds no valid pixel (all nodata); "
                "choose other bands with --bands or check the file's nodata value"
            )
        lo, hi = np.percentile(valid.astype(np.float64), values)
        if hi <= lo:
            hi = lo + (1.0 if np.issubdtype(dtype, np.integer) else max(abs(lo) * 1e-6, 1e-12))
        lows.append(float(lo))
        highs.append(float(hi))
    logger.info("stretch percentile %s: low=%s high=%s", values, lows, highs)
    return Stretch("percentile", tuple(lows), tuple(highs), (values[0], values[1]))


def _decimated_sample(dataset: Any, bands: tuple[int, ...]) -> np.ma.MaskedArray:
    factor = max(1.0, max(dataset.width, dataset.height) / SAMPLE_SIDE)
    out_h = max(1, int(round(dataset.height / factor)))
    out_w = max(1, int(round(dataset.width / factor)))
    unique = tuple(dict.fromkeys(bands))
    data = dataset.read(unique, out_shape=(len(unique), out_h, out_w), masked=True)
    return data[[unique.index(b) for b in bands]]
