"""What checking a stored result costs when it is opened (issue 17): ``python benchmarks/result_check.py``.

Builds a result of N tiles with the ``test:hash`` encoder (32-d float32
embeddings: the table checks scale with rows, ``quick_check`` with the file), then times, in one process and on the same warm file: the checks
of :mod:`rsgeo.resultcheck` (``PRAGMA quick_check`` and the table checks), a
plain metadata read (what opening cost before), and loading the embedding index
that any question needs. Prints the figures and the ratio check / index load.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin


def best(fn, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    import rsgeo
    from rsgeo.api import embed
    from rsgeo.gpkg import read_metadata
    from rsgeo.options import RunOptions
    from rsgeo.resultcheck import check_result
    from rsgeo.scene import ReadOptions

    parser = argparse.ArgumentParser()
    parser.add_argument("--side", type=int, default=96, help="chips per side (tiles = side squared)")
    args = parser.parse_args()
    chip = 16
    with tempfile.TemporaryDirectory() as folder:
        scene = Path(folder) / "scene.tif"
        size = args.side * chip
        data = np.random.default_rng(0).integers(0, 255, (3, size, size), dtype=np.uint8)
        with rasterio.open(scene, "w", driver="GTiff", width=size, height=size, count=3, dtype="uint8",
                           crs="EPSG:32633", transform=from_origin(500000, 4000000, 10, 10), tiled=True) as ds:
            ds.write(data)
        out = Path(folder) / "result.gpkg"
        embed(scene, out, read=ReadOptions(chip_size=chip), options=RunOptions(model="test:hash"))
        n = args.side**2
        mb = out.stat().st_size / 2**20
        t_check = best(lambda: check_result(out))
        t_meta = best(lambda: read_metadata(out))
        t_index = best(lambda: len(rsgeo.open_result(out).index), repeat=3)
    print(f"tiles {n}, file {mb:.1f} MiB")
    print(f"check_result (quick_check + tables): {1e3 * t_check:.1f} ms")
    print(f"read_metadata only (before issue 17): {1e3 * t_meta:.1f} ms")
    print(f"open_result + load the index (includes the check): {1e3 * t_index:.1f} ms")
    print(f"check / (open + index): {t_check / t_index:.2f}")


if __name__ == "__main__":
    main()
