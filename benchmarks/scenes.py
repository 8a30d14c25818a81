"""Generated benchmark scenes: 8-bit RGB GeoTIFFs, deflate-compressed, tiled 512.

The pixels are a mirrored mosaic of a real 10 cm aerial orthophoto
(``../shared/data/OSBS_029.tif``, NEON via DeepForest, MIT) with a slow
brightness ramp, so blocks compress like real imagery (deflate ratio ~1.3) and
not like noise or flat colour. Without the shared data a fixed-seed textured
field stands in. Files are written block by block (memory stays small) and
cached by name: a second run reuses them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: ``RSGEO_BENCH_TEXTURE`` names another copy (a machine without ``../shared``, e.g. the GPU one).
REAL_TEXTURE = Path(os.environ.get("RSGEO_BENCH_TEXTURE")
                    or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "OSBS_029.tif")
BLOCK = 512
#: Pixel size in metres: ~10 cm like the texture, and exact in binary, so that
#: TorchGeo's sampler (which works in CRS units) sees whole chips.
PIXEL_M = 0.125


def _texture() -> tuple[np.ndarray, str]:
    """A seamless (mirrored) RGB texture and where it came from."""
    import rasterio

    if REAL_TEXTURE.is_file():
        with rasterio.open(REAL_TEXTURE) as src:
            img = src.read([1, 2, 3]).transpose(1, 2, 0)
        source = f"mirrored mosaic of {REAL_TEXTURE.name} (real 10 cm RGB orthophoto)"
    else:
        rng = np.random.default_rng(0)
        base = rng.integers(0, 255, (25, 25, 3), np.uint8).repeat(16, 0).repeat(16, 1)
        img = np.clip(base.astype(np.int16) + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        source = "fixed-seed textured field (shared data not found)"
    top = np.concatenate([img, img[:, ::-1]], axis=1)
    return np.ascontiguousarray(np.concatenate([top, top[::-1]], axis=0)), source


def make_scene(path: Path, width: int, height: int) -> str:
    """Write (or reuse) a ``width`` x ``height`` 3-band deflate-tiled GeoTIFF."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    texture, source = _texture()
    if path.is_file():
        return source
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    th, tw = texture.shape[:2]
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": 3, "dtype": "uint8",
        "crs": "EPSG:32617", "transform": from_origin(404000.0, 3290000.0, PIXEL_M, PIXEL_M),
        "tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK, "compress": "deflate",
        "interleave": "pixel", "photometric": "RGB", "BIGTIFF": "IF_SAFER", "NUM_THREADS": "ALL_CPUS",
    }
    logger.info("generating %s (%d x %d)", path, width, height)
    with rasterio.open(tmp, "w", **profile) as dst:
        for row in range(0, height, BLOCK):
            h = min(BLOCK, height - row)
            rows = (np.arange(row, row + h) + 37) % th
            ramp = (0.75 + 0.5 * (row / max(height, 1))) * np.ones((h, 1, 1), np.float32)
            for col in range(0, width, BLOCK):
                w = min(BLOCK, width - col)
                cols = (np.arange(col, col + w) * 1 + 91) % tw
                block = texture[rows][:, cols].astype(np.float32) * ramp
                block = np.clip(block, 0, 255).astype(np.uint8).transpose(2, 0, 1)
                dst.write(block, window=Window(col, row, w, h))
    tmp.rename(path)
    return source
