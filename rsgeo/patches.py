"""Patch embeddings of ``--dense`` runs, in SQLite: the run journal and a result GeoPackage.

One row per chip: ``tile_id`` and the chip's ``g × g × D`` unit patch
embeddings as one little-endian float16 blob (row-major patches,
:data:`~rsgeo.definitions.schema.PATCH_DTYPE`). The journal holds them while a
run encodes (so a resumed run has every chip's patches); ``--keep-patches``
copies them into the result's :data:`~rsgeo.definitions.schema.PATCHES_TABLE`,
from which a dense map of new texts is made without reading a pixel.
Size: ``g² × D × 2`` bytes a chip — 49 × 512 × 2 = 50,176 bytes for ViT-B/32,
about 50 GB per million chips.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rsgeo.definitions import schema

DTYPE = np.dtype("<f2")


def create_table(db: sqlite3.Connection, table: str) -> None:
    db.execute(f"CREATE TABLE IF NOT EXISTS {table} (tile_id INTEGER PRIMARY KEY NOT NULL, patches BLOB NOT NULL)")


def insert(db: sqlite3.Connection, table: str, tile_ids: np.ndarray, patches: np.ndarray) -> None:
    """Insert the ``(N, g, g, D)`` patches of chips ``tile_ids`` (inside the caller's transaction)."""
    blobs = patches.astype(DTYPE, copy=False)
    db.executemany(
        f"INSERT OR REPLACE INTO {table} VALUES (?, ?)",
        [(int(t), blobs[i].tobytes()) for i, t in enumerate(tile_ids)],
    )


def copy_journal_patches(db: sqlite3.Connection, journal: Path) -> None:
    """Copy a journal's patches into the result open in ``db`` (the journal attached as ``journal``)."""
    create_table(db, schema.PATCHES_TABLE)
    names = {r[1] for r in db.execute("PRAGMA database_list")}
    if "journal" not in names:
        db.execute("ATTACH DATABASE ? AS journal", (str(journal),))
    db.execute(
        f"INSERT INTO {schema.PATCHES_TABLE} (tile_id, patches) "
        f"SELECT tile_id, patches FROM journal.{schema.JOURNAL_PATCHES_TABLE} ORDER BY tile_id"
    )


def patches_record(grid_size: int, dim: int, method: str) -> dict[str, Any]:
    """The :data:`~rsgeo.definitions.schema.KEY_PATCHES` metadata of a kept patch table."""
    return {"table": schema.PATCHES_TABLE, "dtype": schema.PATCH_DTYPE, "dim": dim, "grid": grid_size, "method": method}


class PatchSource:
    """Reads the patches of a SQLite table: ``iter_chunks`` gives ``(tile_ids, float32 (n, g, g, D))``."""

    def __init__(self, path: Path, table: str, *, grid_size: int, dim: int) -> None:
        self.path = path
        self.table = table
        self.grid_size = grid_size
        self.dim = dim

    def iter_chunks(self, chunk: int = 512) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            cursor = db.execute(f"SELECT tile_id, patches FROM {self.table} ORDER BY tile_id")
            g, d = self.grid_size, self.dim
            while rows := cursor.fetchmany(chunk):
                ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
                raw = np.frombuffer(b"".join(r[1] for r in rows), DTYPE).reshape(len(rows), g, g, d)
                yield ids, raw.astype(np.float32)
        finally:
            db.close()
