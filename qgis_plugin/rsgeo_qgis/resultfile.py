"""Read-only facts about an rsgeo result GeoPackage (``docs/schema.md``), with sqlite3 only.

The plugin must not import rsgeo (QGIS's Python usually cannot), so the few
things it needs from a result -- which layers exist, which changed in a run,
the metadata -- are read here straight from the file.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

METADATA_TABLE = "rsgeo_metadata"
EMBEDDINGS_TABLE = "rsgeo_embeddings"
TILES_LAYER = "tiles"


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
        db = _connect(p)
        try:
            rows = db.execute(f"SELECT key, value FROM {METADATA_TABLE}").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError:
        raise NotAResultError(
            f"{p.name} is not an rsgeo result (no {METADATA_TABLE} table); "
            "run 'Embed scene' first, or give the scene instead"
        ) from None
    out: dict[str, Any] = {}
    for key, value in rows:
        try:
            out[str(key)] = json.loads(value)
        except (TypeError, ValueError):
            out[str(key)] = value
    return out


def check_result(path: str | Path) -> dict[str, Any]:
    """Metadata of ``path``; NotAResultError with a helpful message if it is not a usable result."""
    meta = metadata(path)
    if TILES_LAYER not in feature_layers(path):
        raise NotAResultError(f"{Path(path).name} has no '{TILES_LAYER}' layer; it is not a complete rsgeo result")
    return meta


@dataclass(frozen=True)
class LayerRecord:
    """One result layer as described by the metadata key ``layers``."""

    name: str
    kind: str
    texts: tuple[str, ...]


def layer_records(meta: dict[str, Any]) -> list[LayerRecord]:
    """Result layers listed in the metadata (tolerates a list or a name-keyed dict)."""
    raw = meta.get("layers") or []
    items: list[tuple[str, dict[str, Any]]] = []
    if isinstance(raw, dict):
        items = [(str(k), v) for k, v in raw.items() if isinstance(v, dict)]
    elif isinstance(raw, list):
        items = [(str(v.get("name", v.get("layer", ""))), v) for v in raw if isinstance(v, dict)]
    out = []
    for name, rec in items:
        texts: list[str] = []
        for key in ("text", "texts", "query", "classes", "class_names"):
            value = rec.get(key)
            if isinstance(value, str):
                texts.append(value)
            elif isinstance(value, list):
                texts += [str(v) for v in value if isinstance(v, str)]
        out.append(LayerRecord(name=name or str(rec.get("name", "")), kind=str(rec.get("kind", "")), texts=tuple(texts)))
    return out


def changed_layers(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Feature layers that are new in ``after`` or whose last change moved."""
    return [name for name, change in after.items() if before.get(name) != change]


def layer_uri(path: str | Path, layer: str) -> str:
    return f"{Path(path).as_posix()}|layername={layer}"
