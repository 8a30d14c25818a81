"""Running the image encoder on a Dask cluster (``--cluster``).

The driver (the ``rsgeo`` process) cuts a scene's grid into *blocks* of whole
chip rows (consecutive tile ids), sends one task per block to the cluster and
writes what comes back into the run journal, alone (one writer). Each worker
process loads the encoder once and turns a block into ``(tile_ids,
valid_fractions, embeddings)`` with the same reader and encoder as the
single-machine path, so the output is the same file. Dask reschedules the
tasks of a worker that dies; ``--resume`` skips blocks already in the journal.

Importing this package is light: Dask is imported when a cluster is used.
Why Dask, and how to run it on a real cluster: ``docs/cluster.md``.
"""

from __future__ import annotations

from rsgeo.cluster.blocks import Block, RowsGrid, plan_blocks
from rsgeo.cluster.spec import ClusterSpec, parse_cluster

__all__ = ["Block", "ClusterSpec", "RowsGrid", "encode_on_cluster", "parse_cluster", "plan_blocks", "session"]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    # Lazy: the driver imports Dask, which ``import rsgeo.cluster`` must not.
    if name in ("encode_on_cluster", "session"):
        from rsgeo.cluster import driver

        return getattr(driver, name)
    raise AttributeError(f"module 'rsgeo.cluster' has no attribute {name!r}")
