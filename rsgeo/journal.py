"""The run journal: embeddings committed batch by batch, so runs can resume.

A journal is a small SQLite file next to the output (``OUT.gpkg.rsgeo-partial``)
holding the identity of the run (model, preprocessing, grid, scene), one
row per encoded chip, and the ids of the chips found to be nodata (fewer valid
pixels than ``min_valid``, which is part of the identity). Each batch is one
transaction: a killed process loses at most the batch in flight. ``--resume``
reopens a journal whose identity matches and reads neither the chips it holds
nor the nodata chips it lists; the output GeoPackage is only ever written,
whole, from a complete journal.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rsgeo.definitions.schema import (
    EMBEDDING_DTYPES as EMBEDDING_DTYPE_CODES,
    JOURNAL_CHIPS_TABLE,
    JOURNAL_META_TABLE,
    JOURNAL_NODATA_TABLE,
    JOURNAL_PATCHES_TABLE,
    journal_path,
)
from rsgeo.errors import OptionError, ResultError, opt
from rsgeo.gpkg import PAGE_SIZE

logger = logging.getLogger(__name__)

__all__ = ["EMBEDDING_DTYPES", "Journal", "PAGE_SIZE", "embedding_dtype", "journal_path"]

EMBEDDING_DTYPES: dict[str, np.dtype] = {name: np.dtype(code) for name, code in EMBEDDING_DTYPE_CODES.items()}

#: Chips read and found to have too few valid pixels: not read again on resume.
NODATA_TABLE = f"CREATE TABLE {JOURNAL_NODATA_TABLE} (tile_id INTEGER PRIMARY KEY)"


def embedding_dtype(name: str) -> np.dtype:
    try:
        return EMBEDDING_DTYPES[name]
    except KeyError:
        raise OptionError(f"unknown {opt('embedding_dtype')} {name!r}; use float32 or float16") from None


class Journal:
    """Progress store of one run (see module docstring)."""

    def __init__(self, path: Path, identity: dict[str, Any], *, dim: int, dtype: str, resume: bool) -> None:
        self.path = path
        self.dim = dim
        self.dtype = embedding_dtype(dtype)
        identity = {**identity, "embedding_dtype": dtype, "embedding_dim": dim}
        key = json.dumps(identity, sort_keys=True)
        if path.exists() and resume and not _has_identity(path):
            # A run killed while it created the journal: nothing was stored yet.
            logger.info("the journal %s was never completed; starting over", path)
            resume = False
        if path.exists() and not resume:
            logger.info("starting over: removing the journal of an earlier run %s", path)
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
        fresh = not path.exists()
        self.db = sqlite3.connect(path, isolation_level=None)
        if fresh:
            # Embedding rows are 1-2 KiB: with SQLite's default 4 KiB pages each
            # row would take a page of its own, doubling the file.
            self.db.execute(f"PRAGMA page_size={PAGE_SIZE}")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        if fresh:
            self.db.execute("BEGIN")
            self.db.execute(f"CREATE TABLE {JOURNAL_META_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self.db.execute(
                f"CREATE TABLE {JOURNAL_CHIPS_TABLE} (tile_id INTEGER PRIMARY KEY, valid_fraction REAL NOT NULL, "
                "embedding BLOB NOT NULL)"
            )
            self.db.execute(NODATA_TABLE)
            self.db.execute(f"INSERT INTO {JOURNAL_META_TABLE} VALUES ('identity', ?)", (key,))
            self.db.execute("COMMIT")
        else:
            try:
                row = self.db.execute(f"SELECT value FROM {JOURNAL_META_TABLE} WHERE key='identity'").fetchone()
            except sqlite3.DatabaseError:
                row = None
            if row is None:
                self.db.close()
                raise ResultError(f"{path} is not an rsgeo journal; delete it and run again without {opt('resume')}")
            if row[0] != key:
                self.db.close()
                diff = _first_difference(json.loads(row[0]), identity)
                raise ResultError(
                    f"cannot resume: the unfinished run in {path.name} used different settings ({diff}); "
                    f"rerun with the same options, or without {opt('resume')} to start over"
                )
            self.db.execute(NODATA_TABLE.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))  # older journals
            logger.info("resuming from %s: %d chips already encoded, %d found to be nodata", path, self.count(),
                        self.nodata_count())

    def keep_patches(self) -> None:
        """Store the patch embeddings of ``--dense`` runs too (:mod:`rsgeo.patches`)."""
        from rsgeo.patches import create_table

        create_table(self.db, JOURNAL_PATCHES_TABLE)

    def done_ids(self) -> set[int]:
        """Tile ids that need no reading: encoded, or found to be nodata."""
        return {r[0] for r in self.db.execute(f"SELECT tile_id FROM {JOURNAL_CHIPS_TABLE} UNION ALL SELECT tile_id FROM {JOURNAL_NODATA_TABLE}")}

    def count(self) -> int:
        """Encoded chips."""
        return int(self.db.execute(f"SELECT count(*) FROM {JOURNAL_CHIPS_TABLE}").fetchone()[0])

    def nodata_count(self) -> int:
        return int(self.db.execute(f"SELECT count(*) FROM {JOURNAL_NODATA_TABLE}").fetchone()[0])

    def add(
        self, tile_ids: np.ndarray, fractions: np.ndarray, embeddings: np.ndarray, *, nodata: Sequence[int] | np.ndarray = (),
        patches: np.ndarray | None = None,
    ) -> None:
        """Commit one batch, and the ids of chips found to be nodata since the last (one transaction).

        ``patches``: the batch's ``(N, g, g, D)`` patch embeddings (after :meth:`keep_patches`).
        """
        if len(tile_ids) == 0 and len(nodata) == 0:
            return
        blobs = embeddings.astype(self.dtype, copy=False)
        rows = [
            (int(t), float(f), blobs[i].tobytes()) for i, (t, f) in enumerate(zip(tile_ids, fractions))
        ]
        self.db.execute("BEGIN")
        self.db.executemany(f"INSERT OR REPLACE INTO {JOURNAL_CHIPS_TABLE} VALUES (?, ?, ?)", rows)
        self.db.executemany(f"INSERT OR IGNORE INTO {JOURNAL_NODATA_TABLE} VALUES (?)", [(int(t),) for t in nodata])
        if patches is not None:
            from rsgeo.patches import insert

            insert(self.db, JOURNAL_PATCHES_TABLE, tile_ids, patches)
        self.db.execute("COMMIT")

    def iter_chunks(self, chunk: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(tile_ids, valid_fractions, float32 embeddings)`` in tile-id order."""
        cursor = self.db.execute(f"SELECT tile_id, valid_fraction, embedding FROM {JOURNAL_CHIPS_TABLE} ORDER BY tile_id")
        while rows := cursor.fetchmany(chunk):
            ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
            fractions = np.fromiter((r[1] for r in rows), np.float32, len(rows))
            emb = np.frombuffer(b"".join(r[2] for r in rows), self.dtype).reshape(len(rows), self.dim)
            yield ids, fractions, emb.astype(np.float32)

    def get(self, tile_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings of the given tiles, in tile-id order."""
        wanted = sorted({int(t) for t in tile_ids})
        rows = []
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            marks = ",".join("?" * len(part))
            rows += self.db.execute(
                f"SELECT tile_id, embedding FROM {JOURNAL_CHIPS_TABLE} WHERE tile_id IN ({marks}) ORDER BY tile_id", part
            ).fetchall()
        missing = sorted(set(wanted) - {r[0] for r in rows})
        if missing:
            raise ResultError(f"tile {missing[0]} has no embedding (skipped as nodata, or outside the grid)")
        ids = np.asarray([r[0] for r in rows], np.int64)
        emb = np.frombuffer(b"".join(r[1] for r in rows), self.dtype).reshape(len(rows), self.dim)
        return ids, emb.astype(np.float32)

    def stored(self, tile_ids: Sequence[int]) -> list[int]:
        """The subset of ``tile_ids`` that has an embedding."""
        wanted = sorted({int(t) for t in tile_ids})
        marks = ",".join("?" * len(wanted))
        rows = self.db.execute(f"SELECT tile_id FROM {JOURNAL_CHIPS_TABLE} WHERE tile_id IN ({marks})", wanted)
        return sorted(r[0] for r in rows)

    def close(self) -> None:
        self.db.close()

    def delete(self) -> None:
        self.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)


def _has_identity(path: Path) -> bool:
    """Whether ``path`` is a journal whose identity was committed."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        return db.execute(f"SELECT value FROM {JOURNAL_META_TABLE} WHERE key='identity'").fetchone() is not None
    except sqlite3.Error:
        return False
    finally:
        db.close()


def _first_difference(a: Any, b: Any, prefix: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{prefix}{k}.")
    return f"{prefix.rstrip('.')}: {a!r} then, {b!r} now"
