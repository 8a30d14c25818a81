"""Writing and reading rsgeo GeoPackages (schema: ``docs/schema.md``).

Layers go through GDAL (pyogrio); rsgeo's own tables (embeddings, metadata,
styles) through SQLite and are registered in ``gpkg_contents`` so GDAL and QGIS
list them. Outputs are built in a temporary file beside the target and moved
into place with one ``os.replace``: a failed or interrupted run leaves the
target as it was. A temporary file left by a killed run (``SIGKILL``, power
loss) is removed by the next run writing the same output.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


from rsgeo.definitions.schema import (
    EMBEDDINGS_TABLE,
    GEOMETRY_COLUMN,
    JOURNAL_CHIPS_TABLE,
    METADATA_TABLE,
    SCHEMA_VERSION,
    SQLITE_SIDE_SUFFIXES,
    STYLES_TABLE,
    ZONE_EMBEDDINGS_TABLE,
    decode_metadata,
    encode_metadata,
    temporary_name,
    temporary_pid,
)
from rsgeo.errors import OutputError, OutputExistsError, ResultError, RsgeoError, opt

logger = logging.getLogger(__name__)

__all__ = [
    "EMBEDDINGS_TABLE", "GEOMETRY_COLUMN", "METADATA_TABLE", "SCHEMA_VERSION", "STYLES_TABLE",
    "atomic_output", "check_output", "connect", "copy_journal_embeddings", "ensure_rsgeo_tables", "ensure_zone_tables", "is_disk_full",
    "is_geopackage", "read_metadata", "set_metadata", "set_style", "use_large_pages", "write_layer",
]
#: SQLite page size for files holding embeddings (the largest SQLite allows): with
#: the default 4 KiB pages every 1-2 KiB embedding row would take a page of its own.
PAGE_SIZE = 65536
_GPKG_APPLICATION_ID = 0x47504B47  # "GPKG"
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DISK_FULL_WORDS = ("disk is full", "no space left", "disk quota exceeded", "file too large")
#: A write that fails with less free space than this left is taken as "disk full".
LOW_SPACE_BYTES = 1 << 20


def is_geopackage(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a SQLite file with the GeoPackage application id."""
    try:
        with open(path, "rb") as f:
            header = f.read(72)
    except OSError:
        return False
    return header[:16] == b"SQLite format 3\x00" and int.from_bytes(header[68:72], "big") == _GPKG_APPLICATION_ID


def check_output(path: Path, *, overwrite: bool, in_place: bool = False) -> None:
    """Refuse, before any work, outputs that cannot or must not be written."""
    parent = path.parent
    if not parent.is_dir():
        raise OutputError(f"the folder {parent} does not exist; create it or choose another -o path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"the folder {parent} is not writable; choose another -o path")
    if path.suffix.lower() != ".gpkg":
        raise OutputError(f"output {path.name} must end in .gpkg (rsgeo writes GeoPackages)")
    if path.exists() and not in_place:
        if path.is_dir():
            raise OutputError(f"output {path} is a folder; give a .gpkg file path")
        if not overwrite:
            raise OutputExistsError(
                f"{path} already exists; pass {opt('overwrite')} to replace it, or choose another {opt('output')} path"
            )


def is_disk_full(exc: BaseException, folder: Path | None = None) -> bool:
    """Whether ``exc``, or an error it was raised from, means the disk is full.

    SQLite and GDAL say so in their own words ("database or disk is full"), or,
    when the failed write broke the file's structure, only in a later error
    ("no such table"); so with ``folder`` a filesystem left with almost no free
    space counts as full too.
    """
    seen: set[int] = set()
    err: BaseException | None = exc
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _DISK_FULL_ERRNOS:
            return True
        if any(word in str(err).lower() for word in _DISK_FULL_WORDS):
            return True
        err = err.__cause__ or err.__context__
    if folder is not None:
        try:
            st = os.statvfs(folder)
        except OSError:
            return False
        return st.f_bavail * st.f_frsize < LOW_SPACE_BYTES
    return False


def _remove_stale_temporaries(path: Path) -> None:
    """Remove temporary outputs of ``path`` left by runs that were killed."""
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for name in names:
        pid = temporary_pid(path, name)
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        logger.info("removing %s, left by a run that was killed", name)
        _remove_sqlite_files(path.parent / name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


@contextmanager
def atomic_output(path: Path, *, start_from: Path | sqlite3.Connection | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path``.

    With ``start_from`` the temporary file begins as a copy of that file (to add
    layers to an existing result), or of the database open in that connection
    (SQLite's backup: the very file the connection checked and read, even if
    its path was replaced meanwhile). On any error the temporary file is removed
    and ``path`` is untouched; a full disk or an unwritable folder becomes one
    :class:`OutputError`.
    """
    tmp = path.with_name(temporary_name(path, os.getpid()))
    _remove_sqlite_files(tmp)
    _remove_stale_temporaries(path)
    try:
        if isinstance(start_from, sqlite3.Connection):
            _backup(start_from, tmp)
        elif start_from is not None:
            shutil.copyfile(start_from, tmp)
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except Exception as exc:
        full = not isinstance(exc, RsgeoError) and is_disk_full(exc, path.parent)
        _remove_sqlite_files(tmp)
        kept = f"{path.name} was left as it was" if path.exists() else f"nothing was written to {path.name}"
        if full:
            raise OutputError(
                f"the disk is full while writing {path}; {kept}: free some space and run again "
                f"(with {opt('resume')}, the chips already encoded are not encoded again)"
            ) from exc
        if isinstance(exc, OSError) and not isinstance(exc, RsgeoError) and exc.errno is not None:
            raise OutputError(
                f"cannot write {path} ({exc.strerror or exc}); {kept}: check the folder's permissions, "
                "or choose another -o path"
            ) from exc
        raise
    except BaseException:
        _remove_sqlite_files(tmp)
        raise


def _backup(source: sqlite3.Connection, target: Path) -> None:
    dest = sqlite3.connect(target)
    try:
        source.backup(dest)
    finally:
        dest.close()


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (best effort: not every platform opens folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_sqlite_files(path: Path) -> None:
    for suffix in ("", *SQLITE_SIDE_SUFFIXES):
        Path(str(path) + suffix).unlink(missing_ok=True)


def write_layer(
    path: Path,
    name: str,
    chunks: Iterator[Any],
    *,
    crs: Any,
    empty: Callable[[], Any],
) -> int:
    """Write GeoDataFrame chunks as layer ``name`` (replacing a layer of that name).

    Returns the number of features written. ``empty`` builds a zero-row frame
    with the layer's columns, used when there are no chunks.
    """
    import pyogrio

    n = 0
    first = True
    for gdf in chunks:
        if first:
            pyogrio.write_dataframe(
                gdf, path, layer=name, driver="GPKG", geometry_type="Polygon",
                dataset_options={"VERSION": "1.2"} if not path.exists() else None,
                layer_options={"OVERWRITE": "YES"},
            )
            first = False
        else:
            pyogrio.write_dataframe(gdf, path, layer=name, driver="GPKG", append=True, geometry_type="Polygon")
        n += len(gdf)
    if first:
        pyogrio.write_dataframe(
            empty(), path, layer=name, driver="GPKG", geometry_type="Polygon",
            dataset_options={"VERSION": "1.2"} if not path.exists() else None,
            layer_options={"OVERWRITE": "YES"},
        )
    return n


def _register_attributes(db: sqlite3.Connection, table: str, description: str) -> None:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    db.execute(
        "INSERT OR REPLACE INTO gpkg_contents (table_name, data_type, identifier, description, last_change) "
        "VALUES (?, 'attributes', ?, ?, ?)",
        (table, table, description, now),
    )


def ensure_rsgeo_tables(db: sqlite3.Connection) -> None:
    """Create (if missing) the embeddings, metadata and style tables."""
    _ensure_result_tables(db, EMBEDDINGS_TABLE, "tile_id", "rsgeo tile embeddings (see rsgeo_metadata.embeddings)")


def ensure_zone_tables(db: sqlite3.Connection) -> None:
    """Create (if missing) a zones result's own tables: zone embeddings, metadata, styles."""
    _ensure_result_tables(db, ZONE_EMBEDDINGS_TABLE, "zone_id", "rsgeo zone embeddings (see rsgeo_metadata.embeddings)")


def _ensure_result_tables(db: sqlite3.Connection, embeddings: str, key: str, description: str) -> None:
    db.execute(f"CREATE TABLE IF NOT EXISTS {embeddings} ({key} INTEGER PRIMARY KEY NOT NULL, embedding BLOB NOT NULL)")
    db.execute(f"CREATE TABLE IF NOT EXISTS {METADATA_TABLE} (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)")
    _register_attributes(db, embeddings, description)
    _register_attributes(db, METADATA_TABLE, "rsgeo run metadata (JSON values)")
    ensure_styles_table(db)


def ensure_styles_table(db: sqlite3.Connection) -> None:
    """Create (if missing) QGIS's default-style table, registered in ``gpkg_contents``."""
    db.execute(
        f"""CREATE TABLE IF NOT EXISTS {STYLES_TABLE} (
            id INTEGER PRIMARY KEY AUTOINCREMENT, f_table_catalog TEXT(256), f_table_schema TEXT(256),
            f_table_name TEXT(256), f_geometry_column TEXT(256), styleName TEXT(30), styleQML TEXT,
            styleSLD TEXT, useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30),
            update_time DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"""
    )
    _register_attributes(db, STYLES_TABLE, "QGIS layer styles")


def set_style(db: sqlite3.Connection, layer: str, qml: str) -> None:
    """Make ``qml`` the default QGIS style of ``layer`` (replacing earlier ones)."""
    db.execute(f"DELETE FROM {STYLES_TABLE} WHERE f_table_name = ?", (layer,))
    db.execute(
        f"INSERT INTO {STYLES_TABLE} (f_table_catalog, f_table_schema, f_table_name, f_geometry_column, "
        "styleName, styleQML, styleSLD, useAsDefault, description, owner, ui) "
        "VALUES ('', '', ?, ?, ?, ?, '', 1, 'rsgeo default style', '', NULL)",
        (layer, GEOMETRY_COLUMN, layer, qml),
    )


def set_metadata(db: sqlite3.Connection, items: dict[str, Any]) -> None:
    """Store ``items`` under their keys (replacing what was there)."""
    db.executemany(f"INSERT OR REPLACE INTO {METADATA_TABLE} (key, value) VALUES (?, ?)", encode_metadata(items))


def read_metadata(path: Path) -> dict[str, Any]:
    """All metadata of an rsgeo result, or ResultError if it is not one."""
    if not is_geopackage(path):
        raise ResultError(f"{path} is not a GeoPackage")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute(f"SELECT key, value FROM {METADATA_TABLE}").fetchall()
    except sqlite3.DatabaseError:
        raise ResultError(
            f"{path} is a GeoPackage but not an rsgeo result (no {METADATA_TABLE} table); "
            "give the scene instead, or a file written by rsgeo"
        ) from None
    finally:
        db.close()
    try:
        return decode_metadata(rows)
    except ValueError as exc:
        raise ResultError(f"{path} has damaged metadata ({exc}); encode the scene again, or restore the file") from None


def use_large_pages(path: Path) -> None:
    """Rewrite ``path`` with :data:`PAGE_SIZE` pages before the embeddings go in.

    GDAL creates GeoPackages with 4 KiB pages, on which every 2 KiB embedding
    row would take a page of its own; the layers are small, so this is cheap.
    """
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute(f"PRAGMA page_size={PAGE_SIZE}")
        db.execute("VACUUM")
    finally:
        db.close()


def copy_journal_embeddings(db: sqlite3.Connection, journal: Path) -> None:
    """Copy every embedding of a run journal into the result open in ``db``, in tile-id order."""
    db.execute("ATTACH DATABASE ? AS journal", (str(journal),))
    db.execute(
        f"INSERT INTO {EMBEDDINGS_TABLE} (tile_id, embedding) "
        f"SELECT tile_id, embedding FROM journal.{JOURNAL_CHIPS_TABLE} ORDER BY tile_id"
    )


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A SQLite connection in one transaction, committed on success."""
    db = sqlite3.connect(path)
    try:
        with db:
            yield db
    finally:
        db.close()
