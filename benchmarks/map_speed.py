"""Benchmark: maps as rasters (issue 13).

Two figures, ratios within one run:

* **new text → raster on disk at 10^6 tiles**: a real result GeoPackage with N
  synthetic unit embeddings (default 1,000,000 x 512 float32, built in bulk by
  ``query_speed.build_result``) is opened with ``rsgeo.open_result``; after the
  one-off load, each repeat asks a *new* text (random ViT-B-32 text tower) and
  writes its similarity map as a COG (``Result.similarity_raster``): text
  encoding + one scan of the embedding matrix + the vectorised raster + the COG
  write. Split into those parts too. Target ≤ 1 s.
* **rasters overhead of a classify run**: the same ``classify`` of a real scene
  with a random ViT-B-32 (CPU), with and without ``--no-rasters``, in one
  process (model loaded once); time and the rasters' size vs the GeoPackage's.
  Targets ≤ 5 % time, ≤ 20 % size.

    python benchmarks/map_speed.py [--tiles 1000000] [--dim 512] [--scene PATH] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from query_speed import build_result, rss_mb  # noqa: E402  (the same synthetic result as issue 4's benchmark)


def cpu_facts() -> dict[str, str]:
    model, flags = "", ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = " ".join(sorted({w for w in line.split() if w in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")}))
    return {"cpu": model, "flags": flags, "load_average": " ".join(f"{v:.2f}" for v in os.getloadavg()), "cores": str(os.cpu_count())}


def million(args: argparse.Namespace, encoder: object, tmp: Path) -> dict[str, float]:
    import rsgeo
    from rsgeo.answers import QuerySpec
    from rsgeo.rasters import raster_cell_px, rasterise, write_similarity_raster

    path = tmp / "million.gpkg"
    t0 = time.perf_counter()
    build_result(path, args.tiles, args.dim, "float32")
    build_s = time.perf_counter() - t0
    result = rsgeo.open_result(path, encoder=encoder)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    n = len(result.index)
    load_s = time.perf_counter() - t0
    texts = iter(f"solar farm number {k}" for k in range(10**6))
    result.similarity_raster(next(texts), tmp / "warm.tif")
    total, encode, scan, raster, write = [], [], [], [], []
    for i in range(args.repeats):
        t = time.perf_counter()
        out = result.similarity_raster(next(texts), tmp / f"map{i % 2}.tif")
        total.append(time.perf_counter() - t)
        # the same steps one by one (another new text), to see where the time goes
        t = time.perf_counter()
        v = result.query_vector(QuerySpec((next(texts),)))
        t1 = time.perf_counter()
        sims = result.index.similarity(v)
        t2 = time.perf_counter()
        cell = raster_cell_px(result.grid)
        rasterise(result.grid, cell, result.index.tile_ids, sims, np.nan)
        t3 = time.perf_counter()
        write_similarity_raster(tmp / "parts.tif", result.grid, result.index.tile_ids, sims, "x")
        t4 = time.perf_counter()
        encode.append(t1 - t), scan.append(t2 - t1), raster.append(t3 - t2), write.append(t4 - t3)
    med = statistics.median
    return {
        "tiles": n, "dim": args.dim, "build_s": round(build_s, 1), "load_s": round(load_s, 2),
        "rss_mb_after_load": round(rss_mb()), "gpkg_mb": round(path.stat().st_size / 2**20),
        "new_text_to_raster_ms_median": round(1e3 * med(total), 1), "new_text_to_raster_ms_max": round(1e3 * max(total), 1),
        "text_encode_ms": round(1e3 * med(encode), 1), "scan_ms": round(1e3 * med(scan), 1),
        "rasterise_ms": round(1e3 * med(raster), 1), "rasterise_plus_cog_write_ms": round(1e3 * med(write), 1),
        "raster_mb": round(out.stat().st_size / 2**20, 2),
    }


def overhead(args: argparse.Namespace, encoder: object, tmp: Path) -> dict[str, float]:
    import rsgeo
    from rsgeo.definitions import schema
    from rsgeo.gpkg import read_metadata
    from rsgeo.options import RunOptions
    from rsgeo.scene import ReadOptions

    read = ReadOptions(chip_size=args.chip_size, overlap=args.overlap)
    classes = ["forest", "water", "urban area", "farmland", "bare soil", "grassland", "wetland", "cloud"]
    import rsgeo.pipeline

    seconds: dict[str, list[float]] = {"rasters": [], "no_rasters": []}
    writing: list[float] = []  # the rasters' own share: rsgeo.pipeline's call of update_rasters, timed
    update = rsgeo.pipeline.update_rasters

    def timed_update(*a, **kw):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        try:
            return update(*a, **kw)
        finally:
            if kw.get("write"):
                writing.append(time.perf_counter() - t)

    rsgeo.pipeline.update_rasters = timed_update  # type: ignore[assignment]
    sizes: dict[str, int] = {}
    for k in range(args.overhead_repeats):
        for kind in ("no_rasters", "rasters") if k % 2 == 0 else ("rasters", "no_rasters"):
            out = tmp / f"{kind}.gpkg"
            t = time.perf_counter()
            rsgeo.classify(args.scene, out, classes=classes, read=read,
                           options=RunOptions(encoder=encoder, overwrite=True, no_rasters=kind == "no_rasters"))  # type: ignore[arg-type]
            seconds[kind].append(time.perf_counter() - t)
            if kind == "rasters":
                recs = read_metadata(out)[schema.KEY_RASTERS]
                sizes = {"gpkg": out.stat().st_size, "rasters": sum((tmp / r["path"]).stat().st_size for r in recs.values())}
                chips = len(rsgeo.open_result(out, encoder=encoder).index)  # type: ignore[arg-type]
    with_r, without = statistics.median(seconds["rasters"]), statistics.median(seconds["no_rasters"])
    return {
        "scene": Path(args.scene).name, "chips": chips, "classify_s": round(without, 2), "classify_with_rasters_s": round(with_r, 2),
        "time_overhead_pct": round(100 * (with_r - without) / without, 1),
        "raster_writing_s": round(statistics.median(writing), 3),
        "raster_writing_pct_of_classify": round(100 * statistics.median(writing) / without, 2),
        "gpkg_kb": round(sizes["gpkg"] / 1024), "rasters_kb": round(sizes["rasters"] / 1024, 1),
        "size_pct_of_gpkg": round(100 * sizes["rasters"] / sizes["gpkg"], 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--scene", default=str(Path(os.environ.get("RSGEO_SHARED_DATA", "../shared/data")) / "RGB.byte.tif"))
    ap.add_argument("--chip-size", default="64")
    ap.add_argument("--overlap", type=float, default=0.5)
    ap.add_argument("--overhead-repeats", type=int, default=2)
    ap.add_argument("--skip-million", action="store_true")
    ap.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "map_speed.json")
    args = ap.parse_args(argv)

    import torch

    from rsgeo.encoders.openclip import OpenClipEncoder

    torch.manual_seed(0)
    encoder = OpenClipEncoder.from_name("ViT-B-32", device="cpu", model_id="arch:ViT-B-32")
    encoder.encode_texts(["warm-up"])
    figures: dict[str, object] = {"machine": cpu_facts(), "torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory(dir=os.environ.get("RSGEO_BENCH_TMP")) as tmp:
        figures["rasters_overhead"] = overhead(args, encoder, Path(tmp))
        print(json.dumps(figures["rasters_overhead"]), flush=True)
        if not args.skip_million:
            figures["million"] = million(args, encoder, Path(tmp))
            print(json.dumps(figures["million"]), flush=True)
    figures["machine"] = {**cpu_facts(), "load_average_at_start": figures["machine"]["load_average"]}  # type: ignore[index]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures["machine"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
