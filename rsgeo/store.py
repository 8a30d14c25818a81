"""Stored tile embeddings: reading them back from a result GeoPackage.

Both the run journal (:mod:`rsgeo.journal`) and a finished result offer the
same two calls, so answering a question never depends on where the
embeddings live: ``iter_chunks()`` streams ``(tile_ids, valid_fractions,
embeddings)`` in tile-id order, ``get(tile_ids)`` fetches some rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from rsgeo.errors import ResultError
from rsgeo.gpkg import EMBEDDINGS_TABLE


class EmbeddingSource(Protocol):
    dim: int

    def iter_chunks(self, chunk: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]: ...

    def get(self, tile_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]: ...

    def stored(self, tile_ids: Sequence[int]) -> list[int]: ...


def _decode(
    rows: list[tuple[int, float, bytes]], dtype: np.dtype, dim: int, *, raw: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    fractions = np.fromiter((r[1] for r in rows), np.float32, len(rows))
    emb = np.frombuffer(b"".join(r[2] for r in rows), dtype).reshape(len(rows), dim)
    return ids, fractions, (emb if raw else emb.astype(np.float32))


class GpkgEmbeddings:
    """The ``rsgeo_embeddings`` table of a result, joined to its ``tiles`` layer."""

    def __init__(self, path: Path, *, dim: int, dtype: str, db: sqlite3.Connection | None = None) -> None:
        """``db``: read through this open connection (one already checked, :mod:`rsgeo.resultcheck`),
        left open by :meth:`close`; else a read-only connection of its own."""
        self.path = path
        self.dim = dim
        self.dtype = np.dtype({"float32": "<f4", "float16": "<f2"}[dtype])
        self._owned = db is None
        self.db = db if db is not None else sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def _query(self, where: str = "", params: Sequence[int] = (), *, join: str = "JOIN") -> sqlite3.Cursor:
        return self.db.execute(
            f"SELECT e.tile_id, t.valid_fraction, e.embedding FROM {EMBEDDINGS_TABLE} e "
            f"{join} tiles t ON t.tile_id = e.tile_id {where} ORDER BY e.tile_id",
            tuple(params),
        )

    def iter_chunks(self, chunk: int = 65536, *, raw: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Chunks in tile-id order; ``raw`` keeps the stored dtype (else float32).

        ``CROSS JOIN`` keeps the embeddings the outer loop, read in their primary-key
        order: SQLite's own choice (scan ``tiles``, then sort every row, blobs
        included, in a temporary B-tree for the ORDER BY) took 40 s instead of 17 s
        for 10^6 512-d rows here (docs/benchmarks.md, "dock at 10^6 tiles").
        """
        cursor = self._query(join="CROSS JOIN")
        while rows := cursor.fetchmany(chunk):
            yield _decode(rows, self.dtype, self.dim, raw=raw)

    def iter_stored(self, chunk: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(tile ids, embeddings in the stored dtype)`` chunks, in tile-id order, from the embeddings alone.

        No join to ``tiles`` (:meth:`iter_chunks` joins for the valid fractions): a
        checked result (:mod:`rsgeo.resultcheck`) has one embedding per tile, so
        the rows are the same. With block-wise widening
        (:func:`rsgeo.scoring.cosine_similarities`) it took the exact archive
        search of 10^6 tiles from 4.5 to 3.6 s (docs/benchmarks.md).
        """
        cursor = self.db.execute(f"SELECT tile_id, embedding FROM {EMBEDDINGS_TABLE} ORDER BY tile_id")
        while rows := cursor.fetchmany(chunk):
            ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
            emb = np.frombuffer(b"".join(r[1] for r in rows), self.dtype).reshape(len(rows), self.dim)
            yield ids, emb

    def count(self) -> int:
        return int(self.db.execute(f"SELECT count(*) FROM {EMBEDDINGS_TABLE}").fetchone()[0])

    def get(self, tile_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        wanted = sorted({int(t) for t in tile_ids})
        if not wanted:
            return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
        marks = ",".join("?" * len(wanted))
        rows = self._query(f"WHERE e.tile_id IN ({marks})", wanted).fetchall()
        ids, _, emb = _decode(rows, self.dtype, self.dim)
        missing = sorted(set(wanted) - set(ids.tolist()))
        if missing:
            raise ResultError(f"tile {missing[0]} is not in {self.path.name} (skipped as nodata, or outside the grid)")
        return ids, emb

    def stored(self, tile_ids: Sequence[int]) -> list[int]:
        """The subset of ``tile_ids`` that has an embedding."""
        wanted = sorted({int(t) for t in tile_ids})
        marks = ",".join("?" * len(wanted))
        rows = self.db.execute(f"SELECT tile_id FROM {EMBEDDINGS_TABLE} WHERE tile_id IN ({marks})", wanted)
        return sorted(r[0] for r in rows)

    def close(self) -> None:
        if self._owned:
            self.db.close()
