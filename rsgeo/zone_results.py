"""Zones results: one embedding per zone, stored so that new questions read no pixels.

A zones result is a GeoPackage like a tiles result (``docs/schema.md``), with
the same metadata keys but the grid, and ``result_kind: "zones"``:

* layer ``zones``: the zones in the scene CRS, their own attributes, and
  ``zone_id``, ``status``, ``valid_fraction``, ``n_chips``;
* table ``rsgeo_zone_embeddings``: ``zone_id`` and the embedding blob of every
  zone whose status is ``ok`` (the dtype and dimension under ``embeddings``);
* ``rsgeo_metadata``: run, model, scene, read as for tiles, and ``zones``
  (where the zones came from, the chip size, the mask colour, the thresholds).

It is written like every output: under the output's lock, into a temporary file
moved into place at the end, so an interrupted run leaves nothing half-written.
Code that reads tiles results refuses a zones result with one line
(:mod:`rsgeo.resultcheck`); :func:`open_zones` reads it.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rsgeo.definitions import schema
from rsgeo.encoders.base import Encoder
from rsgeo.errors import DamagedResultError, ResultError
from rsgeo.zone_chips import ZoneChip


@dataclass
class ZoneResult:
    """Zones with their embeddings, in memory (from :func:`rsgeo.zones.embed_zones` or :func:`open_zones`).

    Attributes:
        frame: the zones layer (GeoDataFrame, scene CRS).
        embeddings: ``float32`` ``(n_zones, dim)``; NaN rows for zones not scored.
        metadata: the ``rsgeo_metadata`` record.
        path: the GeoPackage it was read from or written to (``None``: in memory only).
        chips: after embedding only, every zone chip encoded, with ``chip_embeddings``
            and ``chip_valid`` (the valid share of the zone's pixels in each chip) row for row.
    """

    frame: Any
    embeddings: np.ndarray
    metadata: dict[str, Any]
    path: Path | None = None
    chips: tuple[ZoneChip, ...] = ()
    chip_embeddings: np.ndarray | None = None
    chip_valid: np.ndarray | None = None
    encoder_override: Encoder | None = field(default=None, repr=False)
    device: str | None = None
    checkpoint: str | None = None
    cache_dir: str | None = None

    @property
    def name(self) -> str:
        return self.path.name if self.path is not None else str(self.metadata[schema.KEY_SCENE].get("path", "zones"))

    @property
    def model_id(self) -> str:
        return str(self.metadata[schema.KEY_MODEL]["model_id"])

    @property
    def status(self) -> list[str]:
        return [str(s) for s in self.frame[schema.COL_STATUS]]

    @property
    def valid_fraction(self) -> np.ndarray:
        return np.asarray(self.frame[schema.COL_VALID_FRACTION], np.float64)

    @property
    def encoder(self) -> Encoder:
        """The model that made the embeddings (its text side answers; loaded on first use)."""
        if self.encoder_override is None:
            from rsgeo.metadata import recorded_checkpoint
            from rsgeo.zoo import load_encoder

            model = self.metadata[schema.KEY_MODEL]
            self.encoder_override = load_encoder(
                self.model_id, device=self.device, checkpoint=self.checkpoint or recorded_checkpoint(model, self.name),
                cache_dir=self.cache_dir,
            )
        elif self.encoder_override.identity.model_id != self.model_id:
            raise ResultError(
                f"{self.name} was encoded with {self.model_id!r}, not {self.encoder_override.identity.model_id!r}"
            )
        return self.encoder_override


def write_zone_result(result: ZoneResult, output: str | os.PathLike[str], *, overwrite: bool = False,
                      command: str = "") -> Path:
    """Write ``result`` to ``output`` under its lock, atomically; ``result.path`` becomes ``output``."""
    from rsgeo.gpkg import check_output
    from rsgeo.locks import OutputLock

    out = Path(output)
    check_output(out, overwrite=overwrite)
    with OutputLock(out, command=command):
        return write_zone_file(result, out, overwrite=overwrite)


def write_zone_file(result: ZoneResult, output: Path, *, overwrite: bool) -> Path:
    """:func:`write_zone_result` for a caller already holding the output's lock."""
    import pyogrio

    from rsgeo.gpkg import atomic_output, check_output, connect, ensure_zone_tables, set_metadata

    check_output(output, overwrite=overwrite)  # again: another run may have written it meanwhile
    record = schema.EmbeddingsRecord.from_dict(result.metadata[schema.KEY_EMBEDDINGS])
    dtype = np.dtype(schema.EMBEDDING_DTYPES[record.dtype])
    ok = [k for k, s in enumerate(result.status) if s == "ok"]
    ids = np.asarray(result.frame[schema.COL_ZONE_ID], np.int64)
    with atomic_output(output) as tmp:
        pyogrio.write_dataframe(result.frame, tmp, layer=schema.ZONES_LAYER, driver="GPKG",
                                dataset_options={"VERSION": "1.2"})
        with connect(tmp) as db:
            ensure_zone_tables(db)
            db.executemany(
                f"INSERT INTO {schema.ZONE_EMBEDDINGS_TABLE} (zone_id, embedding) VALUES (?, ?)",
                [(int(ids[k]), result.embeddings[k].astype(dtype).tobytes()) for k in ok],
            )
            set_metadata(db, result.metadata)
    result.path = output
    return output


def is_zone_result(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a GeoPackage whose metadata says it is a zones result (no error otherwise)."""
    from rsgeo.gpkg import is_geopackage
    from rsgeo.resultcheck import connect_read_only

    if not is_geopackage(path):
        return False
    try:
        db = connect_read_only(Path(path))
        try:
            row = db.execute(
                f"SELECT value FROM {schema.METADATA_TABLE} WHERE key = ?", (schema.KEY_RESULT_KIND,)
            ).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return False
    return row is not None and row[0] == f'"{schema.RESULT_KIND_ZONES}"'


def _damaged(path: Path, what: str) -> DamagedResultError:
    return DamagedResultError(
        f"{path} is damaged: {what}; re-run `rsgeo embed SCENE --zones ZONES -o {path} --overwrite`, "
        "or restore it from a backup"
    )


def open_zones(path: str | os.PathLike[str], *, encoder: Encoder | None = None, device: str | None = None,
               checkpoint: str | None = None, cache_dir: str | None = None) -> ZoneResult:
    """Open a zones result (``rsgeo embed SCENE --zones ZONES -o OUT.gpkg``), checked, for new questions.

    The file is read whole (zones and embeddings, one version of it even if
    another run replaces it meanwhile); the encoder is loaded on the first question.
    """
    from rsgeo.resultcheck import read_one_version

    path = Path(path)
    (frame, embeddings, metadata), _ = read_one_version(path, lambda: _read(path))
    return ZoneResult(frame, embeddings, metadata, path, encoder_override=encoder, device=device,
                      checkpoint=checkpoint, cache_dir=cache_dir)


def _read(path: Path) -> tuple[Any, np.ndarray, dict[str, Any]]:
    import pyogrio

    from rsgeo.resultcheck import check_header, connect_read_only

    check_header(path)
    db = connect_read_only(path)
    try:
        metadata, rows = _read_tables(db, path)
    except sqlite3.DatabaseError as exc:
        raise _damaged(path, f"SQLite cannot read it ({exc})") from None
    finally:
        db.close()
    record = schema.EmbeddingsRecord.from_dict(metadata[schema.KEY_EMBEDDINGS])
    frame = pyogrio.read_dataframe(path, layer=schema.ZONES_LAYER)
    missing = [c for c in schema.ZONE_COLUMNS if c not in frame.columns]
    if missing:
        raise _damaged(path, f"its zones layer has no {missing[0]!r} column")
    where = {int(z): k for k, z in enumerate(frame[schema.COL_ZONE_ID])}
    ok = int((frame[schema.COL_STATUS] == "ok").sum())
    if len(rows) != ok:
        raise _damaged(path, f"it holds {len(rows)} zone embeddings for {ok} zones scored (a table was truncated)")
    width = record.dim * np.dtype(schema.EMBEDDING_DTYPES[record.dtype]).itemsize
    embeddings = np.full((len(frame), record.dim), np.nan, np.float32)
    for zone_id, blob in rows:
        if int(zone_id) not in where or not isinstance(blob, bytes) or len(blob) != width:
            raise _damaged(path, f"the embedding of zone {zone_id} has no zone or not {record.dim} x {record.dtype}")
        embeddings[where[int(zone_id)]] = np.frombuffer(blob, schema.EMBEDDING_DTYPES[record.dtype])
    return frame, embeddings, metadata


def _read_tables(db: sqlite3.Connection, path: Path) -> tuple[dict[str, Any], list[tuple[Any, Any]]]:
    tables = {str(r[0]).casefold() for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if schema.METADATA_TABLE not in tables:
        raise ResultError(f"{path} is a GeoPackage but not an rsgeo result (no {schema.METADATA_TABLE} table)")
    try:
        metadata = schema.decode_metadata(db.execute(f"SELECT key, value FROM {schema.METADATA_TABLE}").fetchall())
    except ValueError as exc:
        raise _damaged(path, f"its metadata is not JSON ({exc})") from None
    if metadata.get(schema.KEY_RESULT_KIND) != schema.RESULT_KIND_ZONES:
        raise ResultError(
            f"{path} is a tiles result, not a zones result; open it with rsgeo.open_result, or answer per zone "
            "from its tiles with classify_zones(result, ZONES, ...)"
        )
    for table in schema.ZONE_RESULT_TABLES:
        if table.casefold() not in tables:
            raise _damaged(path, f"its {table} table is missing")
    absent = [k for k in schema.ZONE_REQUIRED_KEYS if not metadata.get(k)]
    if absent:
        raise _damaged(path, f"its metadata has no {absent[0]!r} key")
    try:
        schema.EmbeddingsRecord.from_dict(metadata[schema.KEY_EMBEDDINGS])
    except (KeyError, TypeError, ValueError) as exc:
        raise _damaged(path, f"its metadata key {schema.KEY_EMBEDDINGS!r} is incomplete ({exc})") from None
    if not metadata[schema.KEY_MODEL].get("model_id"):
        raise _damaged(path, f"its metadata key {schema.KEY_MODEL!r} names no model_id")
    rows = db.execute(f"SELECT zone_id, embedding FROM {schema.ZONE_EMBEDDINGS_TABLE} ORDER BY zone_id").fetchall()
    return metadata, rows
