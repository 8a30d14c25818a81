"""Start-up: a one-chip ``rsgeo embed`` in a fresh process, against ``python -c "import torch"`` (issue 16).

    python benchmarks/startup.py                 # ViT-B-32 (random weights from a checkpoint file), 5 rounds
    python benchmarks/startup.py --arch ViT-S-32 --rounds 2   # a smaller smoke run

Every round runs, each in a fresh process and in turn (so a change of the
machine's load falls on all alike): ``import torch``; ``rsgeo embed`` with
torch fp32 (the model built and its weights loaded: what every torch run
pays); and ``rsgeo embed`` on each engine precision installed (OpenVINO int8
and bf16, ONNX Runtime int8) *warm*: the model exported and its card written
by a run before the rounds, so the run starts from the card and the cached
file without building the model (rsgeo.engines.cards). Reports the median and
the range of each, the median of each minus the median of ``import torch``,
and the peak RSS. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from scenes import make_scene  # noqa: E402

#: Warm engine runs measured when their engine is installed.
WARM = [("openvino", "int8"), ("openvino", "bf16"), ("onnxruntime", "int8")]


def timed(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of ``args`` run in a fresh process (failing loudly)."""
    code = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter(); done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "wall = time.perf_counter() - t\n"
        "sys.exit(done.stderr) if done.returncode else None\n"
        "print(wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    wall, rss = done.stdout.split()
    return float(wall), float(rss)


def checkpoint_of(arch: str, path: Path) -> Path:
    """A state-dict file of ``arch`` (seeded random weights), as published weights come."""
    if not path.is_file():
        import open_clip
        import torch

        torch.manual_seed(0)
        torch.save(open_clip.create_model(arch, pretrained=None).state_dict(), path)
    return path


def embed_args(scene: Path, out: Path, model: str, checkpoint: Path, cache: Path, engine: str, precision: str) -> list[str]:
    return [sys.executable, "-m", "rsgeo", "embed", str(scene), "-o", str(out), "--model", model, "--checkpoint",
            str(checkpoint), "--engine", engine, "--precision", precision, "--overwrite", "-q", "--cache-dir", str(cache)]


def main(argv: list[str] | None = None) -> int:
    from rsgeo.engines import extras

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="ViT-B-32")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--data-dir", type=Path, default=HERE / "data")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default: results/startup-<time>.json)")
    args = ap.parse_args(argv)

    work = args.data_dir / "startup"
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"
    scene = work / "one-chip.tif"
    make_scene(scene, 224, 224)
    checkpoint = checkpoint_of(args.arch, work / f"{args.arch}.pt")
    model = f"arch:{args.arch}"
    runs: dict[str, list[str]] = {
        "import torch": [sys.executable, "-c", "import torch"],
        "embed torch fp32": embed_args(scene, work / "torch.gpkg", model, checkpoint, cache, "torch", "fp32"),
    }
    for engine, precision in WARM:
        if extras.installed(engine) and (engine != "openvino" or precision != "int8" or extras.installed("onnxruntime")):
            name = f"embed {engine} {precision} (warm)"
            runs[name] = embed_args(scene, work / f"{engine}-{precision}.gpkg", model, checkpoint, cache, engine, precision)
            print(f"  first run of {engine} {precision}: export and card ...", file=sys.stderr, flush=True)
            timed(runs[name])
    load_before = os.getloadavg()
    walls: dict[str, list[float]] = {name: [] for name in runs}
    rss: dict[str, float] = {}
    for r in range(args.rounds):
        for name, command in runs.items():
            wall, peak = timed(command)
            walls[name].append(wall)
            rss[name] = max(rss.get(name, 0.0), peak)
        print(f"  round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    torch_median = statistics.median(walls["import torch"])
    figures = {
        name: {"median_s": statistics.median(w), "min_s": min(w), "max_s": max(w), "walls_s": w,
               "above_import_torch_s": statistics.median(w) - torch_median, "peak_rss_mb": rss[name]}
        for name, w in walls.items()
    }
    result = {"arch": args.arch, "rounds": args.rounds, "weights_mb": checkpoint.stat().st_size / 2**20,
              "load_before": load_before, "load_after": os.getloadavg(), "figures": figures}
    out = args.out or HERE / "results" / f"startup-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"{args.arch}, weights {result['weights_mb']:.0f} MB, {args.rounds} interleaved rounds, "
          f"load {load_before[0]:.1f} → {result['load_after'][0]:.1f}")
    print(f"{'run':34} {'median s':>8} {'range s':>11} {'above torch':>11} {'peak RSS MB':>11}")
    for name, fig in figures.items():
        print(f"{name:34} {fig['median_s']:8.2f} {fig['min_s']:5.2f}–{fig['max_s']:<5.2f} "
              f"{fig['above_import_torch_s']:11.2f} {fig['peak_rss_mb']:11.0f}")
    print(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
