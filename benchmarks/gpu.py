"""The GPU path, measured (issue 20): model-only speed, end to end with reader threads, fidelity, resume, cluster.

Run by ``benchmarks/gpu.sh`` on a machine with an NVIDIA GPU (it installs what
is missing from wheels first); ``--device cpu --quick`` is the dry run of the
same code on any machine. Every stage writes the JSON again when it ends, so a
run cut short by its time limit still reports the stages it finished; a stage
that would start after ``--budget-s`` is skipped and says so.

Stages:

1. **model only**: ViT-B-32 (seeded random weights, logit scale 100) per
   precision (fp32, bf16, fp16) and batch size: (a) the image tower on a
   normalised batch already on the GPU; (b) ``encode_images`` on uint8 chips in
   host memory, as the pipeline calls it (copy, normalise on the device, tower,
   embeddings back). Peak GPU memory of each.
2. **end to end**: ``rsgeo.embed`` of a generated deflate-tiled 8-bit RGB scene
   (``benchmarks/scenes.py``) at the best batch and precision of stage 1, with
   1, 2, 4, 8 and 16 reader threads; chips/s and the ratio to (b).
3. **fidelity**: ``rsgeo.classify`` of a real scene on the CPU and on the GPU
   (fp32 and the low precisions): max |Δscore|, max |Δembedding| and top-class
   agreement against the CPU at fp32.
4. **resume**: an ``rsgeo embed`` on the GPU interrupted (SIGINT) once its
   journal holds chips, then ``--resume``; the result against an uninterrupted run.
5. **cluster**: ``rsgeo embed --cluster local:1`` on the GPU against the same
   run without a cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

CLASSES = ("water", "forest", "farmland", "urban area", "bare soil", "road")


def facts(device: str) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                           "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if device.startswith("cuda"):
        out["gpu"] = torch.cuda.get_device_name(0)
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=30).stdout.strip()
            out["nvidia_smi"] = smi
        except (OSError, subprocess.TimeoutExpired):
            out["nvidia_smi"] = None
    return out


def encoder(device: str, precision: str) -> Any:
    """ViT-B-32 behind rsgeo's encoder seam, random weights seeded as ``arch:ViT-B-32`` builds them."""
    from rsgeo.zoo.openclip_build import build_from_arch

    enc = build_from_arch("ViT-B-32", None, device=device, precision=precision)
    return enc


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def rate(fn: Any, per_call: int, device: str, *, min_s: float, warm: int = 2) -> float:
    """Calls of ``fn`` per second times ``per_call`` (after ``warm`` calls), timed for at least ``min_s``."""
    for _ in range(warm):
        fn()
    sync(device)
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        if n >= 3:
            sync(device)
            if time.perf_counter() - t0 >= min_s:
                break
    sync(device)
    return n * per_call / (time.perf_counter() - t0)


def model_only(device: str, precisions: list[str], batches: list[int], min_s: float) -> list[dict[str, Any]]:
    import torch

    rows = []
    rng = np.random.default_rng(0)
    for precision in precisions:
        enc = encoder(device, precision)
        for batch in batches:
            chips = rng.integers(0, 256, (batch, 224, 224, 3), dtype=np.uint8)
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            x = enc.model_input(chips)
            with torch.inference_mode(), enc._autocast():
                tower = rate(lambda: enc.model.encode_image(x), batch, device, min_s=min_s)
            pipeline = rate(lambda: enc.encode_images(chips), batch, device, min_s=min_s)
            peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
            row = {"precision": precision, "batch": batch, "tower_chips_per_s": round(tower, 1),
                   "encode_images_chips_per_s": round(pipeline, 1),
                   "peak_gpu_mb": None if peak is None else round(peak, 1)}
            print(f"  model {precision:>4} batch {batch:>4}: tower {tower:9.1f} chips/s, encode_images "
                  f"{pipeline:9.1f} chips/s, peak {row['peak_gpu_mb']} MB", flush=True)
            rows.append(row)
        del enc
    return rows


def chips_in(gpkg: Path) -> int:
    with sqlite3.connect(gpkg) as db:
        return int(db.execute("SELECT count(*) FROM rsgeo_embeddings").fetchone()[0])


def embeddings(gpkg: Path) -> np.ndarray:
    import rsgeo

    result = rsgeo.open_result(gpkg)
    order = np.argsort(result.index.tile_ids)
    return np.asarray(result.index.embeddings, np.float32)[order]


def end_to_end(device: str, scene: Path, work: Path, precision: str, batch: int, threads: list[int]) -> list[dict[str, Any]]:
    import torch

    import rsgeo
    from rsgeo.options import RunOptions

    enc = encoder(device, precision)
    rows = []
    for workers in threads:
        out = work / f"e2e-{workers}.gpkg"
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        rsgeo.embed(scene, out, options=RunOptions(encoder=enc, batch_size=batch, workers=workers, overwrite=True))
        wall = time.perf_counter() - t0
        n = chips_in(out)
        peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
        row = {"workers": workers, "chips": n, "wall_s": round(wall, 2), "chips_per_s": round(n / wall, 1),
               "peak_gpu_mb": None if peak is None else round(peak, 1)}
        print(f"  e2e {workers:>2} reader threads: {n} chips in {wall:.2f} s = {n / wall:.1f} chips/s", flush=True)
        rows.append(row)
        if workers != threads[-1]:
            out.unlink()
    return rows


def fidelity(device: str, scene: Path, work: Path, precisions: list[str]) -> list[dict[str, Any]]:
    import pyogrio

    import rsgeo
    from rsgeo.answers import score_columns
    from rsgeo.options import RunOptions
    from rsgeo.scene import ReadOptions

    read = ReadOptions(chip_size=64)
    cols = score_columns(CLASSES)

    def run(dev: str, precision: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = work / f"fid-{dev.replace(':', '')}-{precision}.gpkg"
        rsgeo.classify(scene, out, classes=CLASSES, read=read,
                       options=RunOptions(model="arch:ViT-B-32", device=dev, precision=precision, overwrite=True))
        frame = pyogrio.read_dataframe(out, layer="landcover").sort_values("tile_id")
        return frame[cols].to_numpy(np.float64), frame["top_class"].to_numpy(), embeddings(out)

    ref_scores, ref_top, ref_emb = run("cpu", "fp32")
    rows = []
    for precision in precisions:
        scores, top, emb = run(device, precision)
        row = {"device": device, "precision": precision, "tiles": int(len(top)),
               "max_abs_dscore": float(np.abs(scores - ref_scores).max()),
               "max_abs_dembedding": float(np.abs(emb - ref_emb).max()),
               "top_class_agreement": float((top == ref_top).mean())}
        print(f"  fidelity {device} {precision}: max |dscore| {row['max_abs_dscore']:.2e}, max |demb| "
              f"{row['max_abs_dembedding']:.2e}, top-class agreement {row['top_class_agreement']:.4f} "
              f"over {row['tiles']} tiles", flush=True)
        rows.append(row)
    return rows


def cli(*args: str, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "rsgeo", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen)


def journal_rows(path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.2) as db:
            return int(db.execute("SELECT count(*) FROM chips").fetchone()[0])
    except sqlite3.Error:
        return 0


def resume(device: str, scene: Path, work: Path, batch: int) -> dict[str, Any]:
    from rsgeo.journal import journal_path

    common = ["--model", "arch:ViT-B-32", "--device", device, "--batch-size", str(batch), "-q"]
    whole = work / "resume-whole.gpkg"
    t0 = time.perf_counter()
    done = cli("embed", str(scene), "-o", str(whole), "--overwrite", *common)
    done.communicate()
    whole_s = time.perf_counter() - t0
    out = work / "resume.gpkg"
    journal = journal_path(out)
    proc = cli("embed", str(scene), "-o", str(out), "--overwrite", *common)
    deadline = time.monotonic() + 300
    while proc.poll() is None and journal_rows(journal) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    interrupted = proc.poll() is None
    rows_then = journal_rows(journal)
    if interrupted:
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate()
    second = cli("embed", str(scene), "-o", str(out), "--resume", *common)
    _, err2 = second.communicate()
    a, b = embeddings(whole), embeddings(out)
    row = {"interrupted": interrupted, "exit_code": proc.returncode, "journal_chips_at_interrupt": rows_then,
           "resume_exit_code": second.returncode, "chips": int(len(b)), "whole_run_s": round(whole_s, 2),
           "max_abs_dembedding_vs_whole": float(np.abs(a - b).max()) if a.shape == b.shape else None,
           "stderr_tail": (err + err2).strip().splitlines()[-2:]}
    print(f"  resume: interrupted {interrupted} (exit {proc.returncode}) at {rows_then} chips; resumed exit "
          f"{second.returncode}; {len(b)} chips, max |demb| vs whole {row['max_abs_dembedding_vs_whole']}", flush=True)
    return row


def cluster(device: str, scene: Path, work: Path) -> dict[str, Any]:
    common = ["--model", "arch:ViT-B-32", "--device", device, "--chip-size", "64", "-q", "--overwrite"]
    plain, clustered = work / "plain.gpkg", work / "cluster.gpkg"
    outcome = {}
    for name, path, extra in (("plain", plain, []), ("cluster", clustered, ["--cluster", "local:1"])):
        t0 = time.perf_counter()
        proc = cli("embed", str(scene), "-o", str(path), *common, *extra)
        _, err = proc.communicate()
        outcome[name] = {"exit_code": proc.returncode, "wall_s": round(time.perf_counter() - t0, 2),
                         "stderr_tail": err.strip().splitlines()[-2:]}
    ok = all(v["exit_code"] == 0 for v in outcome.values())
    outcome["max_abs_dembedding"] = float(np.abs(embeddings(plain) - embeddings(clustered)).max()) if ok else None
    print(f"  cluster local:1: {outcome}", flush=True)
    return outcome


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="dry run: small batches and scene, short timings")
    p.add_argument("--work", type=Path, default=Path("/tmp/rsgeo-gpu"))
    p.add_argument("--data", type=Path, default=HERE.parent / ".gpu", help="real scenes (RGB.byte.tif, OSBS_029.tif)")
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--budget-s", type=float, default=420.0, help="start no stage after this many seconds")
    args = p.parse_args(argv)
    start = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    quick = args.quick
    precisions = ["fp32", "bf16"] if quick else ["fp32", "bf16", "fp16"]
    batches = [4, 8] if quick else [64, 128, 256, 512, 1024]
    threads = [1, 2] if quick else [1, 2, 4, 8, 16]
    side = 1024 if quick else 24576
    report: dict[str, Any] = {"facts": facts(args.device), "quick": quick, "skipped": []}

    def save() -> None:
        report["elapsed_s"] = round(time.perf_counter() - start, 1)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))

    def stage(name: str, fn: Any) -> None:
        if time.perf_counter() - start > args.budget_s:
            report["skipped"].append(name)
            print(f"{name}: skipped (budget)", flush=True)
            save()
            return
        t0 = time.perf_counter()
        print(f"{name} ...", flush=True)
        try:
            report[name] = fn()
        except Exception as exc:  # noqa: BLE001 - one failing stage must not lose the others' figures
            report[name] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"{name}: FAILED {type(exc).__name__}: {exc}", flush=True)
        report.setdefault("stage_s", {})[name] = round(time.perf_counter() - t0, 1)
        save()

    print(json.dumps(report["facts"]), flush=True)
    stage("model_only", lambda: model_only(args.device, precisions, batches, 0.3 if quick else 1.5))
    rows = [r for r in report.get("model_only", []) if isinstance(r, dict) and "encode_images_chips_per_s" in r]
    best = max(rows, key=lambda r: r["encode_images_chips_per_s"]) if rows else {"precision": "fp32", "batch": 256}
    report["best_model_only"] = best

    from scenes import make_scene

    scene = args.work / f"scene-{side}.tif"
    stage("scene", lambda: {"path": str(scene), "side_px": side, "texture": make_scene(scene, side, side),
                            "mb": round(scene.stat().st_size / 2**20, 1)})
    stage("end_to_end", lambda: end_to_end(args.device, scene, args.work, best["precision"], best["batch"], threads))
    e2e = [r for r in report.get("end_to_end", []) if isinstance(r, dict) and "chips_per_s" in r]
    if e2e and rows:
        top = max(e2e, key=lambda r: r["chips_per_s"])
        report["e2e_vs_model_only"] = {"best_workers": top["workers"], "ratio": round(
            top["chips_per_s"] / best["encode_images_chips_per_s"], 3),
            "ratio_vs_tower": round(top["chips_per_s"] / best["tower_chips_per_s"], 3)}
    real = args.data / "RGB.byte.tif"
    stage("fidelity", lambda: fidelity(args.device, real, args.work, ["fp32", "bf16", "fp16"] if not quick else ["fp32"]))
    stage("resume", lambda: resume(args.device, scene if not quick else real, args.work, best["batch"]))
    stage("cluster", lambda: cluster(args.device, real, args.work))
    save()
    print(json.dumps({k: report.get(k) for k in ("best_model_only", "e2e_vs_model_only", "skipped", "elapsed_s")}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
