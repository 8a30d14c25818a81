"""What bounds rsgeo's end to end on a GPU (issue 20): the reader alone, and GDAL's decode alone.

``benchmarks/gpu.py`` measured end to end far below the model on an H200; this
separates the parts on the same generated scene:

* **decode ceiling**: every 512 x 512 block of the scene read with rasterio from
  N threads (one dataset handle per thread): what GDAL's deflate decode gives.
* **reader + pipeline, no model**: ``rsgeo.embed`` with an encoder that costs
  nothing per chip (a constant embedding) but uses the real encoder's batch
  buffers (pinned memory on CUDA), with N reader threads: rsgeo's own reading,
  cutting, batching, journal and GeoPackage writing.
* **end to end**: the same with the real ViT-B-32 encoder (bf16, batch 1024).

Usage: ``python benchmarks/gpu_reader.py --scene SCENE.tif --json OUT.json [--device cuda]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def decode_ceiling(scene: Path, threads: int) -> dict[str, Any]:
    import rasterio

    with rasterio.open(scene) as src:
        windows = [w for _, w in src.block_windows(1)]
    local = threading.local()

    def read(w: Any) -> int:
        if not hasattr(local, "src"):
            local.src = rasterio.open(scene)
        return int(local.src.read(window=w).nbytes)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        nbytes = sum(pool.map(read, windows))
    wall = time.perf_counter() - t0
    return {"threads": threads, "blocks": len(windows), "wall_s": round(wall, 2), "mb_per_s": round(nbytes / wall / 2**20, 1)}


def null_encoder(real: Any) -> Any:
    """``real``'s identity, spec and batch buffers, and a constant embedding: the model costs nothing."""

    class Null:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def encode_images(self, chips: np.ndarray) -> np.ndarray:
            out = np.zeros((len(chips), real.embedding_dim), np.float32)
            out[:, 0] = 1.0
            return out

    return Null()


def embed_rate(scene: Path, out: Path, enc: Any, workers: int, batch: int) -> dict[str, Any]:
    import rsgeo
    from rsgeo.options import RunOptions

    t0 = time.perf_counter()
    rsgeo.embed(scene, out, options=RunOptions(encoder=enc, batch_size=batch, workers=workers, overwrite=True))
    wall = time.perf_counter() - t0
    import sqlite3

    with sqlite3.connect(out) as db:
        n = int(db.execute("SELECT count(*) FROM rsgeo_embeddings").fetchone()[0])
    out.unlink()
    return {"workers": workers, "chips": n, "wall_s": round(wall, 2), "chips_per_s": round(n / wall, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scene", type=Path, required=True)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--precision", default="bf16")
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--threads", default="1,4,8,16")
    args = p.parse_args(argv)
    from rsgeo.zoo.openclip_build import build_from_arch

    threads = [int(t) for t in args.threads.split(",")]
    report: dict[str, Any] = {"scene": str(args.scene), "device": args.device, "precision": args.precision,
                              "batch": args.batch}

    def save() -> None:
        args.json.write_text(json.dumps(report, indent=2))

    report["decode_ceiling"] = [decode_ceiling(args.scene, t) for t in threads]
    for row in report["decode_ceiling"]:
        print(f"  decode {row['threads']:>2} threads: {row['mb_per_s']} MB/s ({row['wall_s']} s)", flush=True)
    save()
    real = build_from_arch("ViT-B-32", None, device=args.device, precision=args.precision)
    work = args.json.parent
    for name, enc in (("no_model", null_encoder(real)), ("end_to_end", real)):
        rows = []
        for t in threads:
            rows.append(embed_rate(args.scene, work / f"reader-{name}-{t}.gpkg", enc, t, args.batch))
            print(f"  {name} {t:>2} reader threads: {rows[-1]['chips_per_s']} chips/s ({rows[-1]['wall_s']} s)",
                  flush=True)
            report[name] = rows
            save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
