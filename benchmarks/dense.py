"""What ``--dense`` costs: a dense classify against a plain embed of the same scene (issue 13).

One process, one model (open_clip ViT-B-32, random weights, CPU, loaded once and
passed to every run), one scene (RGB.byte.tif from the shared data, 160 px chips
resized to 224: 25 chips, 18 with enough valid pixels), runs interleaved so load drifts hit all alike::

    python benchmarks/dense.py [--repeats 3] [--chip-size 160]

Prints, as medians of ``--repeats`` runs:

1. the encoder alone: ``encode_images`` against ``DenseViT.encode_dense`` on one
   batch of 32 chips;
2. end to end (scene → GeoPackage): ``rsgeo.embed``, ``rsgeo.classify`` and
   ``rsgeo.classify(..., dense=True)`` (rasters included), and the ratios of the
   dense run to the other two. Target: dense ≤ 1.15 × embed.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLASSES = ["dense forest", "open water", "urban area", "farmland", "bare soil", "road"]


def _scene() -> Path:
    shared = Path(os.environ.get("RSGEO_SHARED_DATA", ROOT.parent / "shared" / "data"))
    return shared / "RGB.byte.tif"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chip-size", default="160")
    args = parser.parse_args()

    import torch

    import rsgeo
    from rsgeo.encoders.dense import dense_encoder
    from rsgeo.encoders.openclip import OpenClipEncoder
    from rsgeo.options import RunOptions
    from rsgeo.scene import ReadOptions

    torch.manual_seed(0)
    encoder = OpenClipEncoder.from_name("ViT-B-32", device="cpu")
    dense = dense_encoder(encoder)
    chips = np.random.default_rng(0).integers(0, 256, (32, 224, 224, 3), dtype=np.uint8)
    encoder.encode_images(chips)  # warm-up
    dense.encode_dense(chips)
    plain_s, dense_s = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        encoder.encode_images(chips)
        plain_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        dense.encode_dense(chips)
        dense_s.append(time.perf_counter() - t)
    p, d = statistics.median(plain_s), statistics.median(dense_s)
    print(f"encoder, batch of 32: encode_images {p:.2f} s, encode_dense {d:.2f} s, ratio {d / p:.3f}")

    scene = _scene()
    read = ReadOptions(chip_size=args.chip_size)
    runs: dict[str, list[float]] = {"embed": [], "classify": [], "classify --dense": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for name in runs:
                out = Path(tmp) / f"{name.replace(' ', '').replace('-', '')}{i}.gpkg"
                options = RunOptions(encoder=encoder, dense=name.endswith("--dense"), workers=1)
                t = time.perf_counter()
                if name == "embed":
                    rsgeo.embed(scene, out, read=read, options=options)
                else:
                    rsgeo.classify(scene, out, classes=CLASSES, read=read, options=options)
                runs[name].append(time.perf_counter() - t)
        with sqlite3.connect(out) as db:
            n = db.execute("SELECT count(*) FROM rsgeo_embeddings").fetchone()[0]
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"scene {scene.name}, {args.chip_size} px chips resized to 224: {n} chips, medians of {args.repeats}")
    for k, v in med.items():
        print(f"  {k:18s} {v:6.2f} s  ({n / v:5.1f} chips/s)   runs: {', '.join(f'{x:.2f}' for x in runs[k])}")
    print(f"ratio dense / embed    {med['classify --dense'] / med['embed']:.3f}  (target <= 1.15)")
    print(f"ratio dense / classify {med['classify --dense'] / med['classify']:.3f}")


if __name__ == "__main__":
    main()
