"""The driver side of a cluster run: sessions, task submission, the journal.

Only this process writes the journal (one writer, one transaction per block),
so a worker that dies loses nothing written and a block is never stored
twice: Dask reschedules the tasks a dead worker held, and a block that did
run twice would only replace its own rows (the journal is keyed by tile id).
"""

from __future__ import annotations

import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rsgeo.cluster.blocks import Block, plan_blocks
from rsgeo.cluster.spec import ClusterSpec, parse_cluster
from rsgeo.cluster.tasks import BlockResult, BlockTask, ModelSpec, encode_block, worker_batch_size
from rsgeo.cluster.watch import WorkerWatch
from rsgeo.encoders.base import Encoder
from rsgeo.errors import Cancelled, ClusterError, MissingDependencyError, opt
from rsgeo.grid import ChipGrid
from rsgeo.journal import Journal
from rsgeo.scene import ReadOptions

logger = logging.getLogger(__name__)

#: Seconds to wait for a remote cluster's first worker.
WORKER_WAIT_S = 60.0
#: How often the driver checks the cancellation callback while tasks run.
POLL_S = 0.5

#: Dask settings for the worker processes of a local cluster. Dask's nanny sets
#: ``MALLOC_TRIM_THRESHOLD_`` in every worker; setting it switches off glibc's
#: dynamic mmap threshold, so each large tensor is mapped and unmapped afresh
#: (page faults on every batch): a ViT-B-32 block ran 20 % slower in a worker
#: than in this process (3.7-4.0 s against 3.0-3.2 s), and as fast without it.
LOCAL_WORKER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}



@dataclass
class _Session:
    """A cluster session's shared state: its client, the worker watch, the batch size per model.

    One per session, not per run: the scenes of a batch in flight at once
    share it, so a worker that leaves is one warning, whichever scene's driver
    loop reports it, and the workers are asked their batch size once.
    """

    client: Any
    watch: WorkerWatch
    batch_sizes: dict[ModelSpec, int] = field(default_factory=dict)


_SESSIONS: dict[str, _Session] = {}


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise MissingDependencyError(
            f"{opt('cluster')} needs Dask distributed: pip install 'rsgeo[cluster]' (or pip install 'dask[distributed]')"
        ) from None
    return distributed


def _close_half_started(clusters: set[Any]) -> None:
    """Close local clusters whose start was interrupted (Ctrl-C, SIGTERM).

    Dask would otherwise close them again at exit and print a traceback (a worker
    still starting fails its status check); their worker processes are ended by
    the close, or at the latest by multiprocessing's own exit handler. The
    start tasks cut short are reported by asyncio when collected ("Task exception
    was never retrieved: Nanny failed to start"): the process is exiting on the
    interruption, which the command line reports in its own line.
    """
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    for cluster in clusters:
        try:
            cluster.close(timeout=10)
        except BaseException:  # noqa: BLE001 - a second interrupt, or Dask's own check: the process is exiting
            pass
        cluster.shutdown_on_close = False  # nothing left for Dask's exit handler to do


@contextmanager
def session(cluster: str | ClusterSpec) -> Iterator[Any]:
    """A Dask ``Client`` for ``cluster``, shared by the runs made inside the block.

    A local cluster's worker processes (and the models they loaded) live as
    long as the outermost ``session``: a batch of scenes opens one, and each
    scene's run reuses it. Outside any session a run opens its own.
    """
    spec = parse_cluster(cluster) if isinstance(cluster, str) else cluster
    key = str(spec)
    if key in _SESSIONS:
        yield _SESSIONS[key].client
        return
    distributed = _distributed()
    local = None
    from distributed.deploy.spec import SpecCluster

    existing = set(SpecCluster._instances)
    try:
        if spec.is_local:
            import dask

            with dask.config.set(LOCAL_WORKER_CONFIG):
                local = distributed.LocalCluster(
                    n_workers=spec.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                    # Dask's own warnings (e.g. a worker slow to exit at shutdown, then killed) are
                    # not the user's business on a local cluster; errors still show.
                    silence_logs=logging.ERROR,
                )
            client = distributed.Client(local)
        else:
            try:
                client = distributed.Client(spec.address, timeout="30s")
            except OSError as exc:
                raise ClusterError(
                    f"cannot reach the Dask scheduler at {spec.address} ({exc}); start it with "
                    "`dask scheduler` on the head node, or check the address and firewall"
                ) from None
    except BaseException:
        if local is not None:
            local.close()
        else:  # interrupted while the local cluster was starting: stop what had started, quietly
            _close_half_started(set(SpecCluster._instances) - existing)
        raise
    watch = WorkerWatch(client).__enter__()
    _SESSIONS[key] = _Session(client, watch)
    logger.info("cluster %s: %s", key, client.dashboard_link if local is None else f"{spec.workers} local workers")
    try:
        yield client
    finally:
        del _SESSIONS[key]
        watch.__exit__(None, None, None)
        client.close()
        if local is not None:
            local.close()


@dataclass
class ClusterStats:
    """What a cluster run did (logged; returned for tests and benchmarks)."""

    blocks: int = 0
    blocks_skipped: int = 0
    chips: int = 0
    workers: set[str] = field(default_factory=set)
    task_seconds: list[float] = field(default_factory=list)
    wall_seconds: float = 0.0


def encode_on_cluster(
    scene_path: str,
    read: ReadOptions,
    stretch: Any,
    grid: ChipGrid,
    encoder: Encoder,
    journal: Journal,
    options: Any,
    progress: Callable[[int, int], None] | None,
    cancel: Callable[[], bool] | None,
    *,
    block_chips: int | None = None,
) -> ClusterStats:
    """Encode the chips of ``grid`` not yet in ``journal`` on ``options.cluster``.

    ``scene_path`` is what every worker hands to GDAL: a local path (the same
    on every worker) or a remote GDAL path or URL (:mod:`rsgeo.sources`),
    carried as a ``str`` so that a URL's ``//`` survives.
    """
    from rsgeo.definitions.models import canonical_model_id

    # Workers load the model by name; the driver's encoder must be the same (checked per block).
    model = canonical_model_id(options.model or encoder.identity.model_id)
    spec = parse_cluster(options.cluster)
    stats = ClusterStats()
    start = time.perf_counter()
    with session(spec) as client:
        shared = _SESSIONS[str(spec)]
        n_workers = _wait_for_workers(client, spec)
        threads = max(1, (os.cpu_count() or 1) // n_workers) if spec.is_local else None
        model_spec = ModelSpec(
            model, options.device, options.precision, options.checkpoint, options.cache_dir, threads, engine=options.engine
        )
        done_ids = journal.done_ids()
        total = len(grid)
        scanned = 0
        tasks: list[BlockTask] = []
        if options.batch_size is None and model_spec not in shared.batch_sizes:
            shared.batch_sizes[model_spec] = _workers_batch_size(client, model_spec)
        batch_size = options.batch_size or shared.batch_sizes[model_spec]
        for block in plan_blocks(grid, workers=n_workers, block_chips=block_chips, batch_size=batch_size):
            skip = tuple(sorted(t for t in range(block.start, block.stop) if t in done_ids)) if done_ids else ()
            if len(skip) == len(block):
                scanned += len(block)
                stats.blocks_skipped += 1
                continue
            tasks.append(BlockTask(
                str(scene_path), read, stretch, grid, block, skip, model_spec,
                batch_size=options.batch_size, reader_threads=options.workers,
            ))
        stats.blocks = len(tasks)
        if progress:
            progress(scanned, total)
        for result in _run(client, tasks, n_workers, cancel, shared.watch, priority=options.cluster_priority):
            _check_identity(result, encoder)
            journal.add(result.tile_ids, result.valid_fraction, result.embeddings, nodata=result.nodata)
            scanned += len(result.block)
            stats.chips += len(result.tile_ids)
            stats.workers.add(result.worker)
            stats.task_seconds.append(result.seconds)
            if progress:
                progress(scanned, total)
    stats.wall_seconds = time.perf_counter() - start
    logger.info(
        "cluster %s: encoded %d chips in %d blocks on %d workers in %.1f s (%d blocks were already in the journal)",
        spec, stats.chips, stats.blocks, len(stats.workers), stats.wall_seconds, stats.blocks_skipped,
    )
    return stats


def _workers_batch_size(client: Any, model: ModelSpec) -> int:
    """The batch size blocks are sized in: what every worker picks for itself, their least common multiple.

    Each worker is asked (one probe task each, which also loads its model;
    once per session and model);
    GPU workers pick 256 and CPU workers 32, so a mixed cluster gets blocks of
    whole GPU batches, which are whole CPU batches too.
    """
    probe = uuid.uuid4().hex[:8]
    workers = list(client.scheduler_info()["workers"])
    futures = [
        client.submit(worker_batch_size, model, key=f"rsgeo-probe-{probe}-{i}", workers=[w], allow_other_workers=True,
                      pure=False)
        for i, w in enumerate(workers)
    ]
    return math.lcm(*client.gather(futures))


def _wait_for_workers(client: Any, spec: ClusterSpec) -> int:
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except TimeoutError:
        raise ClusterError(
            f"the Dask scheduler at {spec} has no workers after {WORKER_WAIT_S:.0f} s; start some with "
            f"`dask worker {spec} --nthreads 1`"
        ) from None
    return max(1, len(client.scheduler_info()["workers"]))


def _run(
    client: Any,
    tasks: list[BlockTask],
    n_workers: int,
    cancel: Callable[[], bool] | None,
    watch: WorkerWatch | None = None,
    *,
    priority: int = 0,
) -> Iterator[BlockResult]:
    """Results of ``tasks`` as they complete, with a bounded number in flight.

    At most two tasks per worker (plus one) are submitted at a time, so the
    driver holds few results in memory whatever the scene size, and every
    worker has its next block ready when it finishes one. Workers that left
    or joined (``watch``) are reported between results.
    """
    distributed = _distributed()
    pending = iter(tasks)
    run_id = uuid.uuid4().hex[:8]
    limit = 2 * n_workers + 1
    running: dict[Any, Block] = {}

    def submit() -> None:
        for task in pending:
            key = f"rsgeo-block-{run_id}-{task.block.start}"
            running[client.submit(encode_block, task, key=key, pure=False, priority=priority)] = task.block
            if len(running) >= limit:
                return

    try:
        submit()
        while running:
            if watch is not None:
                watch.report()
            if cancel is not None and cancel():
                raise Cancelled(f"cancelled; rerun with {opt('resume')} to continue from the chips already encoded")
            try:
                finished, _ = distributed.wait(list(running), timeout=POLL_S, return_when="FIRST_COMPLETED")
            except TimeoutError:  # nothing finished yet: check the cancellation again
                continue
            for future in finished:
                block = running.pop(future)
                yield _result(future, block)
            submit()
    finally:
        if running:
            client.cancel(list(running))


def _result(future: Any, block: Block) -> BlockResult:
    from distributed.scheduler import KilledWorker

    try:
        result: BlockResult = future.result()
        return result
    except KilledWorker:
        raise ClusterError(
            f"{block} killed every worker that ran it (out of memory? lower {opt('batch_size')}); "
            f"the blocks already encoded are kept: rerun with {opt('resume')}"
        ) from None


def _check_identity(result: BlockResult, encoder: Encoder) -> None:
    ours = (encoder.identity.model_id, encoder.identity.weights_sha256)
    theirs = (result.model_id, result.weights_sha256)
    if theirs != ours:
        raise ClusterError(
            f"worker {result.worker} loaded {theirs[0]} (weights sha256 {str(theirs[1])[:12]}) but this run uses "
            f"{ours[0]} (sha256 {str(ours[1])[:12]}); give every worker the same model files"
        )
