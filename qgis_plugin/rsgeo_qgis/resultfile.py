"""Read-only facts about an rsgeo result GeoPackage, with sqlite3 and the shared schema.

The plugin must not import rsgeo (QGIS's Python usually cannot), so the few
things it needs from a result -- which layers exist, which changed in a run,
the metadata -- are read here straight from the file, with the names and
decoding of :mod:`.definitions.schema` (the library's own definitions).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from .definitions.schema import (
    KEY_EMBEDDINGS,
    METADATA_TABLE,
    TILES_LAYER,
    LayerRecord,
    decode_metadata,
    layer_records,
    read_metadata_rows,
)

__all__ = [
    "KEY_EMBEDDINGS", "LayerRecord", "NotAResultError", "TILES_LAYER", "changed_layers", "check_result",
    "feature_layers", "layer_records", "layer_uri", "metadata",
]


class NotAResultError(ValueError):
    """The file is not an rsgeo result GeoPackage."""


def _connect(path: str | Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{Path(path).as_posix()}?mode=ro", uri=True, timeout=10)


def feature_layers(path: str | Path) -> dict[str, str]:
    """Feature layer name -> ``gpkg_contents.last_change`` (empty if the file is missing)."""
    if not Path(path).is_file():
        return {}
    try:
        db = _connect(path)
        try:
            rows = db.execute(
                "SELECT table_name, COALESCE(last_change, '') FROM gpkg_contents WHERE data_type = 'features'"
            ).fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return {}
    return {str(name): str(change) for name, change in rows}


def metadata(path: str | Path) -> dict[str, Any]:
    """The ``rsgeo_metadata`` table as a dict of decoded JSON values."""
    p = Path(path)
    if not p.is_file():
        raise NotAResultError(f"{p} does not exist")
    try:
        rows = read_metadata_rows(p)
    except sqlite3.DatabaseError:
        raise NotAResultError(
            f"{p.name} is not an rsgeo result (no {METADATA_TABLE} table); "
            "run 'Embed scene' first, or give the scene instead"
        ) from None
    try:
        return decode_metadata(rows)
    except ValueError as exc:
        raise NotAResultError(f"{p.name} has damaged metadata ({exc}); encode the scene again, or restore the file") from None


def check_result(path: str | Path) -> dict[str, Any]:
    """Metadata of ``path``; NotAResultError with a helpful message if it is not a usable result."""
    meta = metadata(path)
    if TILES_LAYER not in feature_layers(path):
        raise NotAResultError(f"{Path(path).name} has no '{TILES_LAYER}' layer; it is not a complete rsgeo result")
    return meta


def changed_layers(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Feature layers that are new in ``after`` or whose last change moved."""
    return [name for name, change in after.items() if before.get(name) != change]


def layer_uri(path: str | Path, layer: str) -> str:
    return f"{Path(path).as_posix()}|layername={layer}"
