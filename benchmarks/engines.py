"""Inference engines and precisions end to end: scene → GeoPackage, every engine × precision (issue 16).

One command, one run, one machine, one model (open_clip ViT-B-32, random
weights), one batch size::

    python benchmarks/engines.py                 # 96 whole 224-px chips, 3 interleaved rounds
    python benchmarks/engines.py --quick         # smoke run: 16 chips, a tiny ViT, 1 round

Each configuration (torch fp32/bf16, ONNX Runtime fp32/int8, OpenVINO
fp32/bf16/int8, and ``--engine auto --precision auto``) first encodes a small
warm-up scene at the same batch shape — that run exports and compiles
(``first_use_s``; OpenVINO int8 is calibrated on the scene it encodes, so its
first use is the benchmark scene itself) — then ``rsgeo.classify`` runs on the benchmark scene, timed
end to end (read, encode, score, write), in ``--rounds`` rounds that take every
configuration in turn (so a change of the machine's load falls on all of them
alike); a configuration's figure is its fastest round, the spread is reported. Ratios are to torch fp32 in the same
run; top-class agreement and max |Δscore| are against torch fp32's landcover
layer. Also measured: a one-chip ``rsgeo embed`` in a fresh process against
``python -c "import torch"``, with its peak RSS. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from scenes import make_scene  # noqa: E402
from startup import checkpoint_of, timed  # noqa: E402

CLASSES = ["forest", "water", "grassland", "farmland", "buildings", "road", "bare soil", "wetland", "shrubland", "sand"]
CONFIGS = [
    ("torch", "fp32"), ("torch", "bf16"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"),
    ("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8"), ("auto", "auto"),
]
#: Calibrated on the scene it runs on (rsgeo.engines.calibration): first use is on the benchmark scene.
CALIBRATED = {("openvino", "int8")}


def cpu_facts() -> dict[str, Any]:
    from rsgeo.engines.cpu import REPORTED_FLAGS, cpu_flags

    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {"cpu": model, "cores": os.cpu_count(), "flags": sorted(set(REPORTED_FLAGS) & cpu_flags())}


def classify(scene: Path, out: Path, model: str, engine: str, precision: str, batch: int, cache: Path) -> tuple[float, np.ndarray, np.ndarray, dict[str, Any]]:
    import pyogrio

    import rsgeo
    from rsgeo.answers import score_columns
    from rsgeo.definitions import schema
    from rsgeo.options import RunOptions

    options = RunOptions(model=model, engine=engine, precision=precision, batch_size=batch, cache_dir=str(cache), overwrite=True)
    start = time.perf_counter()
    rsgeo.classify(scene, out, classes=CLASSES, options=options)
    wall = time.perf_counter() - start
    frame = pyogrio.read_dataframe(out, layer="landcover").sort_values("tile_id")
    result = rsgeo.open_result(out)
    return wall, frame[score_columns(CLASSES)].to_numpy(np.float64), result.index.embeddings, result.metadata[schema.KEY_MODEL]


def one_chip_start(scene: Path, out: Path, model: str, checkpoint: Path, cache: Path) -> dict[str, float]:
    """Wall time of ``rsgeo embed`` (weights from a file, torch) on a one-chip scene and of ``import torch``,
    fresh processes; peak RSS of each. benchmarks/startup.py measures warm engine starts too."""
    env_cache = ["--cache-dir", str(cache)]
    torch_s, torch_mb = timed([sys.executable, "-c", "import torch"])
    embed_s, embed_mb = timed([sys.executable, "-m", "rsgeo", "embed", str(scene), "-o", str(out), "--model", model,
                               "--checkpoint", str(checkpoint), "--overwrite", "-q", *env_cache])
    return {"import_torch_s": torch_s, "import_torch_rss_mb": torch_mb, "embed_one_chip_s": embed_s,
            "embed_one_chip_rss_mb": embed_mb, "embed_above_import_torch_s": embed_s - torch_s}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: 16 chips, ViT-S-32")
    p.add_argument("--arch", default=None, help="open_clip architecture (default ViT-B-32; --quick: ViT-S-32)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--chips", type=int, default=96, help="whole 224-px chips in the benchmark scene (a multiple of 8)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3; --quick: 1)")
    p.add_argument("--only", default=None, help="comma-separated ENGINE/PRECISION configurations to run (default: all; "
                   "torch/fp32 always runs, the ratios' base)")
    p.add_argument("--data-dir", type=Path, default=HERE / ".data")
    p.add_argument("--out", type=Path, default=None, help="JSON file (default benchmarks/results/engines-<time>.json)")
    args = p.parse_args(argv)
    from rsgeo.engines import extras

    arch = args.arch or ("ViT-S-32" if args.quick else "ViT-B-32")
    model = f"arch:{arch}"
    cols, rows = (4, 4) if args.quick else (8, max(1, args.chips // 8))
    rounds = args.rounds or (1 if args.quick else 3)
    work = args.data_dir / "engines"
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"
    scene = work / f"scene-{cols}x{rows}.tif"
    make_scene(scene, 224 * cols, 224 * rows)
    warm = work / f"warm-{args.batch_size}.tif"
    make_scene(warm, 224 * args.batch_size, 224)  # one batch: the same model batch shape
    one = work / "one-chip.tif"
    make_scene(one, 224, 224)
    load_before = os.getloadavg()
    figures: dict[str, Any] = {}
    reference: tuple[np.ndarray, np.ndarray] | None = None
    runnable: list[tuple[str, str]] = []
    wanted = None if args.only is None else {"torch/fp32", *args.only.split(",")}
    for engine, precision in CONFIGS:
        name = f"{engine}/{precision}"
        if wanted is not None and name not in wanted:
            continue
        if engine not in ("auto", "torch") and not extras.installed(engine):
            figures[name] = {"skipped": f"not installed ({extras.pip_line(engine)})"}
            continue
        print(f"  {name}: first use ...", file=sys.stderr, flush=True)
        first_scene = scene if (engine, precision) in CALIBRATED else warm
        first, *_ = classify(first_scene, work / "warm.gpkg", model, engine, precision, args.batch_size, cache)
        figures[name] = {"first_use_s": first, "walls_s": []}
        runnable.append((engine, precision))
    for r in range(rounds):
        for engine, precision in runnable:
            name = f"{engine}/{precision}"
            print(f"  round {r + 1}/{rounds}: {name} ...", file=sys.stderr, flush=True)
            wall, scores, emb, meta = classify(scene, work / "out.gpkg", model, engine, precision, args.batch_size, cache)
            fig = figures[name]
            fig["walls_s"].append(wall)
            if r:
                continue
            fig.update({"chips": len(scores), "ran": f"{meta.get('engine')} {meta.get('engine_version')} {meta.get('precision')}"})
            if reference is None:
                reference = (scores, emb)
            ref_scores, ref_emb = reference
            fig["top_class_agreement"] = float(np.mean(scores.argmax(1) == ref_scores.argmax(1)))
            fig["max_abs_dscore"] = float(np.abs(scores - ref_scores).max())
            fig["min_cosine"] = float(np.min(np.sum(emb * ref_emb, axis=1)))
    for engine, precision in runnable:
        fig = figures[f"{engine}/{precision}"]
        fig["wall_s"] = min(fig["walls_s"])
        fig["spread"] = max(fig["walls_s"]) / fig["wall_s"]
        fig["chips_per_s"] = fig["chips"] / fig["wall_s"]
    base = figures["torch/fp32"]["chips_per_s"]
    for fig in figures.values():
        if "chips_per_s" in fig:
            fig["vs_torch_fp32"] = fig["chips_per_s"] / base
    print("  one-chip start ...", file=sys.stderr, flush=True)
    checkpoint = checkpoint_of(arch, work / f"{arch}.pt")
    start = one_chip_start(one, work / "one.gpkg", model, checkpoint, cache)
    start["weights_mb"] = checkpoint.stat().st_size / 2**20
    result = {
        "arch": arch, "batch_size": args.batch_size, "rounds": rounds, "scene": f"{224 * cols} x {224 * rows} px, {cols * rows} chips of 224 px",
        "machine": cpu_facts(), "load_before": load_before, "load_after": os.getloadavg(),
        "versions": {e: (extras.version(e) if extras.installed(e) else None) for e in ("torch", "onnxruntime", "openvino")},
        "figures": figures, "start": start,
    }
    out = args.out or HERE / "results" / f"engines-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"{arch}, {result['scene']}, batch {args.batch_size}; {result['machine']['cpu']} {result['machine']['flags']}; "
          f"load {load_before[0]:.1f} → {result['load_after'][0]:.1f}; fastest of {rounds} interleaved rounds")
    print(f"{'engine/precision':18} {'ran as':32} {'chips/s':>8} {'vs torch':>8} {'first use s':>11} {'spread':>6} {'top-1 agr':>9} {'max|Δs|':>9} {'min cos':>9}")
    for name, fig in figures.items():
        if "skipped" in fig:
            print(f"{name:18} {fig['skipped']}")
            continue
        print(f"{name:18} {fig['ran']:32} {fig['chips_per_s']:8.1f} {fig['vs_torch_fp32']:8.2f} {fig['first_use_s']:11.1f} {fig['spread']:6.2f} "
              f"{fig['top_class_agreement']:9.1%} {fig['max_abs_dscore']:9.2e} {fig['min_cosine']:9.6f}")
    print(f"one-chip rsgeo embed {start['embed_one_chip_s']:.1f} s (peak RSS {start['embed_one_chip_rss_mb']:.0f} MB); "
          f"python -c 'import torch' {start['import_torch_s']:.1f} s ({start['import_torch_rss_mb']:.0f} MB); "
          f"difference {start['embed_above_import_torch_s']:.1f} s; weights {start['weights_mb']:.0f} MB")
    print(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
