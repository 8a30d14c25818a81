"""Cluster throughput (issue 8): chips/s with 1 vs 2 Dask workers, and per-task overhead.

    python benchmarks/cluster.py                 # ViT-B-32 (random weights), 224-px chips
    python benchmarks/cluster.py --chips 64      # shorter

Prints one line per configuration. Chips/s are for the encoding alone: the
local cluster is started and every worker has loaded the model before the
clock starts (a cluster run pays both once, not per scene). Overheads:

* Dask round trip: a no-op task submitted and gathered, one at a time
  (the scheduler's and the comms' cost per task);
* rsgeo per block: a block whose chips are all in the journal (the worker
  opens the scene and plans the read, reads and encodes nothing).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from scenes import make_scene  # noqa: E402


def _noop(x: int) -> int:
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="arch:ViT-B-32")
    parser.add_argument("--chips", type=int, default=128, help="chips in the scene (a square number works best)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--scenes", type=int, default=6, help="scenes of the batch measured with 1, 2, ... in flight")
    parser.add_argument("--in-flight", default="1,2,3", help="scenes in flight to measure that batch with (default 1,2,3)")
    parser.add_argument("--scene-chips", type=int, default=20, help="chips per scene of that batch")
    args = parser.parse_args()

    from rsgeo.api import embed
    from rsgeo.cluster import session
    from rsgeo.cluster.tasks import BlockTask, ModelSpec, encode_block
    from rsgeo.cluster.blocks import plan_blocks
    from rsgeo.pipeline import RunOptions
    from rsgeo.scene import ReadOptions, Scene

    import distributed  # noqa: F401  (sets its loggers up on import; only the figures are wanted here)

    logging.getLogger("distributed").setLevel(logging.ERROR)

    side = max(1, round(args.chips ** 0.5))
    work = Path(tempfile.mkdtemp(prefix="rsgeo-cluster-bench-"))
    scene = work / f"scene-{side}.tif"
    make_scene(scene, 224 * side, 224 * (args.chips // side))
    n = side * (args.chips // side)
    print(f"# {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; {args.model}, {n} chips of 224 px, "
          f"batch {args.batch_size}")

    def timed(options: RunOptions, tag: str) -> float:
        out = work / f"{tag}.gpkg"
        start = time.perf_counter()
        embed(scene, out, options=options)
        return time.perf_counter() - start

    base = RunOptions(model=args.model, batch_size=args.batch_size, overwrite=True)
    timed(RunOptions(model=args.model, batch_size=args.batch_size, overwrite=True), "warm")
    wall = timed(base, "single")
    print(f"no cluster (this process)  {n / wall:6.1f} chips/s  ({wall:.1f} s)")
    for workers in (1, 2):
        spec = f"local:{workers}"
        with session(spec) as client:
            opts = RunOptions(model=args.model, batch_size=args.batch_size, overwrite=True, cluster=spec)
            timed(opts, f"warm-{workers}")  # every worker loads the model once
            wall = timed(opts, f"c{workers}")
            print(f"--cluster {spec:<15} {n / wall:6.1f} chips/s  ({wall:.1f} s, "
                  f"{len(plan_blocks(_grid(scene), workers=workers, batch_size=args.batch_size))} blocks)")
            if workers == 2:
                rtt = []
                for i in range(200):
                    t = time.perf_counter()
                    client.submit(_noop, i, pure=False).result()
                    rtt.append(time.perf_counter() - t)
                print(f"Dask round trip per task   {1e3 * statistics.median(rtt):6.2f} ms (median of 200 no-op tasks)")
                with Scene(scene, ReadOptions()) as s:
                    grid, stretch = s.grid(224), s.stretch
                block = plan_blocks(grid, workers=workers, batch_size=args.batch_size)[0]
                task = BlockTask(str(scene), ReadOptions(), stretch, grid, block, tuple(range(block.start, block.stop)),
                                 ModelSpec(args.model, threads=1), batch_size=args.batch_size)
                times = []
                for _ in range(20):
                    t = time.perf_counter()
                    client.submit(encode_block, task, pure=False).result()
                    times.append(time.perf_counter() - t)
                print(f"rsgeo per block, no chips  {1e3 * statistics.median(times):6.2f} ms (open scene + plan, "
                      "round trip included; median of 20)")
                batch_of_scenes(work, args, spec)
    journal_rate(work)


def journal_rate(work: Path, blocks: int = 20, block_chips: int = 2048, dim: int = 512) -> None:
    """The driver's one writer: embeddings stored per second, one transaction per block (as results arrive)."""
    import numpy as np

    from rsgeo.journal import Journal

    rng = np.random.default_rng(0)
    emb = rng.standard_normal((block_chips, dim)).astype(np.float32)
    fractions = np.ones(block_chips, np.float32)
    journal = Journal(work / "rate.gpkg.rsgeo-partial", {"bench": 1}, dim=dim, dtype="float32", resume=False)
    try:
        start = time.perf_counter()
        for b in range(blocks):
            journal.add(np.arange(b * block_chips, (b + 1) * block_chips, dtype=np.int64), fractions, emb)
        wall = time.perf_counter() - start
    finally:
        journal.delete()
    print(f"journal writes               {blocks * block_chips / wall:8.0f} embeddings/s ({block_chips}-chip blocks, "
          f"{dim}-d float32, one transaction each)")


def batch_of_scenes(work: Path, args: argparse.Namespace, spec: str) -> None:
    """Many small scenes on ``spec``: one scene in flight at a time vs two (``rsgeo batch``'s default) or more."""
    import dataclasses

    from rsgeo.api import embed
    from rsgeo.batch import plan_batch, run_batch
    from rsgeo.pipeline import RunOptions
    from rsgeo.scene import ReadOptions

    folder = work / "many"
    folder.mkdir(exist_ok=True)
    w = max(1, round(args.scene_chips ** 0.5))
    h = max(1, args.scene_chips // w)
    scenes = []
    for i in range(args.scenes):
        scenes.append(folder / f"s{i}.tif")
        make_scene(scenes[-1], 224 * w, 224 * h)
    n = args.scenes * w * h
    from rsgeo.zoo import load_encoder

    # As `rsgeo batch` does: one model in the driver for every scene (texts, identity).
    encoder = load_encoder(args.model)
    options = RunOptions(model=args.model, encoder=encoder, batch_size=args.batch_size, overwrite=True, cluster=spec)
    for in_flight in (int(k) for k in args.in_flight.split(",")):
        out = work / f"many-out-{in_flight}"
        out.mkdir(exist_ok=True)
        plans = plan_batch(scenes, out, read=ReadOptions(), image_size=224, overwrite=True)

        def encode(plan, progress, cancel):  # type: ignore[no-untyped-def]
            opts = dataclasses.replace(options, cluster_priority=-plan.index)
            return embed(plan.scene, plan.output, options=opts, progress=progress, cancel=cancel)

        start = time.perf_counter()
        run_batch(plans, encode, in_flight=in_flight)
        wall = time.perf_counter() - start
        print(f"batch of {args.scenes} x {w * h} chips, {in_flight} scene(s) in flight  {n / wall:6.1f} chips/s  ({wall:.1f} s)")


def _grid(scene: Path):  # type: ignore[no-untyped-def]
    from rsgeo.scene import ReadOptions, Scene

    with Scene(scene, ReadOptions()) as s:
        return s.grid(224)


if __name__ == "__main__":
    main()
