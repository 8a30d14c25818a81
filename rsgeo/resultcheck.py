"""Is a stored result whole? Checks run when a result is opened, before any answer.

A result GeoPackage can be damaged after rsgeo wrote it: copied half, edited
by hand, a table dropped, its metadata rewritten, a page corrupted on disk.
:func:`open_checked` opens it read-only and checks, cheaply and in this order,
that SQLite finds no corrupt page (``PRAGMA quick_check``), that the tables a
result needs are there, that every metadata value is JSON and every required
key is present and well-formed, that there is one embedding per tile and each
embedding has the stored dimension, and that every layer the metadata lists
exists. Any damage is one :class:`~rsgeo.errors.DamagedResultError` line
naming the file, what is damaged and what to do; nothing is answered from a
damaged result.

The connection it returns is the one the caller reads through: it keeps the
file it checked open, so a result replaced meanwhile (``--overwrite`` by
another run, an atomic rename) is still read whole, old or new, never a mix.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.request import pathname2url

from rsgeo.definitions import schema
from rsgeo.errors import DamagedResultError, ResultError

_FIX = "re-run `rsgeo embed` on the scene to rebuild it (then classify/query again), or restore it from a backup"
#: Reads of a file that keeps being replaced before one is given up.
_READ_TRIES = 5

T = TypeVar("T")


def file_version(path: str | os.PathLike[str] | None) -> tuple[int, int, int, int] | None:
    """``(device, inode, size, mtime in ns)`` of the file now, ``None`` if there is none.

    A file replaced by another (an atomic rename) has another inode; one rewritten
    in place another size or time.
    """
    try:
        st = os.stat(path) if path is not None else None
    except OSError:
        return None
    return None if st is None else (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def file_identity(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """``(device, inode)``: which file ``path`` is (it changes when the file is replaced, not when rewritten)."""
    version = file_version(path)
    return None if version is None else version[:2]


def read_one_version(
    path: Path, read: Callable[[], T], *, identity: Callable[[Path], Any] = file_version,
    discard: Callable[[T], None] | None = None,
) -> tuple[T, Any]:
    """``read()`` of one version of ``path``, and that version's ``identity``.

    Another run may replace the file while it is read (``--overwrite``): then it
    is read again (``discard`` lets go of the read that was for nothing), so what
    is returned was read from the file the identity names.
    """
    for _ in range(_READ_TRIES):
        before = identity(path)
        value = read()
        if identity(path) == before:
            return value, before
        if discard is not None:
            discard(value)
    raise ResultError(f"{path} keeps being replaced while it is opened; open it once the run writing it has finished")


def _is_sqlite_gpkg(path: Path) -> tuple[bool, bool]:
    """``(is SQLite, has the GeoPackage application id)`` from the header."""
    try:
        with open(path, "rb") as f:
            header = f.read(72)
    except OSError:
        return False, False
    sqlite = header[:16] == b"SQLite format 3\x00"
    return sqlite, sqlite and int.from_bytes(header[68:72], "big") == 0x47504B47


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to ``path`` (any file name: the URI is escaped)."""
    return sqlite3.connect(f"file:{pathname2url(str(Path(path).absolute()))}?mode=ro", uri=True, timeout=30)


def _fix(metadata: Mapping[str, Any] | None, path: Path) -> str:
    scene = metadata.get(schema.KEY_SCENE) if metadata else None
    where = scene.get("path") if isinstance(scene, Mapping) else None
    if isinstance(where, str) and where:
        return f"re-run `rsgeo embed {where} -o {path} --overwrite` to rebuild it, or restore it from a backup"
    return _FIX


def _damaged(path: Path, what: str, metadata: Mapping[str, Any] | None = None) -> DamagedResultError:
    return DamagedResultError(f"{path} is damaged: {what}; {_fix(metadata, path)}")


def check_header(path: Path) -> None:
    """Refuse a file that is not a GeoPackage at all, before SQLite opens it."""
    sqlite, gpkg = _is_sqlite_gpkg(path)
    if not path.is_file():
        raise ResultError(f"{path} does not exist; check the path")
    if not sqlite:
        size = path.stat().st_size
        state = "is empty" if size == 0 else "is not a SQLite/GeoPackage file (its header is missing or overwritten)"
        raise _damaged(path, f"the file {state}")
    if not gpkg:
        raise ResultError(f"{path} is a SQLite file but not a GeoPackage; give a result written by rsgeo")


def validate(db: sqlite3.Connection, path: Path) -> dict[str, Any]:
    """Check the result open in ``db`` (see the module docstring); its metadata."""
    try:
        return _validate(db, path)
    except sqlite3.DatabaseError as exc:  # a page that quick_check missed, read later
        raise _damaged(path, f"SQLite cannot read it ({exc})") from None


def _validate(db: sqlite3.Connection, path: Path) -> dict[str, Any]:
    problems = [str(r[0]) for r in db.execute("PRAGMA quick_check(3)").fetchall()]
    if problems != ["ok"]:
        raise _damaged(path, f"SQLite finds corrupt pages ({problems[0]})")
    tables = {str(r[0]).casefold(): str(r[0]) for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if schema.METADATA_TABLE not in tables and schema.EMBEDDINGS_TABLE not in tables:
        raise ResultError(
            f"{path} is a GeoPackage but not an rsgeo result (no {schema.METADATA_TABLE} table); "
            "give the scene instead, or a file written by rsgeo"
        )
    if schema.METADATA_TABLE not in tables:
        raise _damaged(path, f"its {schema.METADATA_TABLE} table is missing")
    try:
        metadata = schema.decode_metadata(db.execute(f"SELECT key, value FROM {schema.METADATA_TABLE}").fetchall())
    except ValueError as exc:
        raise _damaged(path, f"its metadata is not JSON ({exc})") from None
    if metadata.get(schema.KEY_RESULT_KIND) == schema.RESULT_KIND_ZONES:
        raise ResultError(
            f"{path} is a zones result (one embedding per zone, from `rsgeo embed --zones`), not tiles; "
            f"ask it with `rsgeo classify {path.name} --classes ...` or `rsgeo query {path.name} --text ...`, "
            "or in Python with rsgeo.zones.open_zones"
        )
    for table in schema.RESULT_TABLES:
        if table.casefold() not in tables:
            raise _damaged(path, f"its {table} table is missing", metadata)
    missing = [k for k in schema.REQUIRED_KEYS if k not in metadata]
    if missing:
        raise _damaged(path, f"its metadata has no {missing[0]!r} key", metadata)
    version = metadata[schema.KEY_SCHEMA_VERSION]
    if isinstance(version, int) and version > schema.SCHEMA_VERSION:
        raise ResultError(
            f"{path} was written by a newer rsgeo (schema version {version}, this one reads {schema.SCHEMA_VERSION}); "
            "upgrade rsgeo (pip install -U rsgeo)"
        )
    grid, emb = _records(path, metadata)
    n_tiles = _count(db, schema.TILES_LAYER)
    n_emb = _count(db, schema.EMBEDDINGS_TABLE)
    if n_emb != n_tiles:
        raise _damaged(path, f"it holds {n_emb} embeddings for {n_tiles} tiles (a table was truncated)", metadata)
    if n_tiles == 0:
        raise _damaged(path, "its tiles layer is empty", metadata)
    width = emb.dim * int(schema.EMBEDDING_DTYPES[emb.dtype][-1])
    bad = db.execute(
        f"SELECT tile_id, length({schema.COL_EMBEDDING}) FROM {schema.EMBEDDINGS_TABLE} "
        f"WHERE typeof({schema.COL_EMBEDDING}) != 'blob' OR length({schema.COL_EMBEDDING}) != ? LIMIT 1", (width,)
    ).fetchone()
    if bad is not None:
        raise _damaged(
            path, f"the embedding of tile {bad[0]} has {bad[1]} bytes, not {width} ({emb.dim} x {emb.dtype})", metadata
        )
    unmatched = db.execute(
        f"SELECT count(*) FROM {schema.EMBEDDINGS_TABLE} WHERE {schema.COL_TILE_ID} NOT IN "
        f"(SELECT {schema.COL_TILE_ID} FROM {schema.TILES_LAYER})"
    ).fetchone()[0]
    if unmatched:
        raise _damaged(path, f"{unmatched} embeddings belong to no tile of its tiles layer", metadata)
    top = db.execute(f"SELECT max({schema.COL_TILE_ID}) FROM {schema.TILES_LAYER}").fetchone()[0]
    if top is not None and not 0 <= int(top) < grid.n_rows * grid.n_cols:
        raise _damaged(path, f"tile {top} lies outside its {grid.n_rows} x {grid.n_cols} chip grid", metadata)
    _check_layers(db, path, metadata, tables, n_tiles)
    return metadata


def _records(path: Path, metadata: dict[str, Any]) -> tuple[schema.GridRecord, schema.EmbeddingsRecord]:
    for key in (schema.KEY_GRID, schema.KEY_EMBEDDINGS, schema.KEY_MODEL, schema.KEY_LAYERS):
        if not isinstance(metadata.get(key), dict):
            raise _damaged(path, f"its metadata key {key!r} holds {type(metadata.get(key)).__name__}, not an object",
                           metadata)
    try:
        grid = schema.GridRecord.from_dict(metadata[schema.KEY_GRID])
    except (KeyError, TypeError, ValueError) as exc:
        raise _damaged(path, f"its metadata key {schema.KEY_GRID!r} is incomplete ({_reason(exc)})", metadata) from None
    try:
        emb = schema.EmbeddingsRecord.from_dict(metadata[schema.KEY_EMBEDDINGS])
    except (KeyError, TypeError, ValueError) as exc:
        raise _damaged(path, f"its metadata key {schema.KEY_EMBEDDINGS!r} is incomplete ({_reason(exc)})",
                       metadata) from None
    if emb.dim < 1 or grid.n_rows < 1 or grid.n_cols < 1:
        raise _damaged(path, "its metadata gives an empty grid or embeddings of no dimension", metadata)
    if not metadata[schema.KEY_MODEL].get("model_id"):
        raise _damaged(path, f"its metadata key {schema.KEY_MODEL!r} names no model_id", metadata)
    return grid, emb


def _reason(exc: BaseException) -> str:
    return f"no {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)


def _count(db: sqlite3.Connection, table: str) -> int:
    return int(db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])


def _check_layers(
    db: sqlite3.Connection, path: Path, metadata: dict[str, Any], tables: dict[str, str], n_tiles: int
) -> None:
    for record in schema.layer_records(metadata):
        if record.name.casefold() not in tables:
            raise _damaged(path, f"its layer {record.name!r} (listed in the metadata) is missing", metadata)
        if record.kind == schema.KIND_TILES:
            continue
        n = _count(db, tables[record.name.casefold()])
        if record.kind == schema.KIND_LANDCOVER and n != n_tiles:
            raise _damaged(path, f"its layer {record.name!r} has {n} of {n_tiles} tiles (truncated)", metadata)
        if n > n_tiles:
            raise _damaged(path, f"its layer {record.name!r} has {n} features for {n_tiles} tiles", metadata)


def connect_checked(path: str | Path) -> tuple[sqlite3.Connection, dict[str, Any]]:
    """A read-only connection to a checked result and its metadata (the caller closes it).

    The connection keeps the checked file open: read through it, a result
    replaced on disk meanwhile is still the one that was checked.
    """
    path = Path(path)
    check_header(path)
    try:
        db = connect_read_only(path)
    except sqlite3.Error as exc:
        raise _damaged(path, f"SQLite cannot open it ({exc})") from None
    try:
        try:
            db.execute("BEGIN")
        except sqlite3.DatabaseError as exc:
            raise _damaged(path, f"SQLite cannot read it ({exc})") from None
        metadata = validate(db, path)
    except BaseException:
        db.close()
        raise
    return db, metadata


@contextmanager
def open_checked(path: str | Path) -> Iterator[tuple[sqlite3.Connection, dict[str, Any]]]:
    """``(connection, metadata)`` of a checked result, inside one read transaction.

    Everything read through the connection inside the block comes from the one
    file checked, even if the path is replaced meanwhile.
    """
    db, metadata = connect_checked(path)
    try:
        yield db, metadata
    finally:
        db.close()


def check_result(path: str | Path) -> dict[str, Any]:
    """The metadata of a result that passes every check (else one error line)."""
    with open_checked(path) as (_, metadata):
        return metadata
