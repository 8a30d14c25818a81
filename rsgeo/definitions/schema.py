"""The result GeoPackage's schema (``docs/schema.md``): one definition for rsgeo and its plugin.

Everything that names a part of a result lives here: tables, layers and their
columns, the metadata keys and how their values are stored (JSON text), the
run journal and the temporary files a write goes through, and the names a
user may not give a layer. Standard library only (the QGIS plugin imports this
module from its own copy of the folder).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Version of this schema, stored under :data:`KEY_SCHEMA_VERSION`.
SCHEMA_VERSION = 1

# -- tables and layers ----------------------------------------------------------------------

#: Geometry column of every layer rsgeo writes.
GEOMETRY_COLUMN = "geom"
#: One polygon per encoded chip; the other layers' tiles are a subset of it.
TILES_LAYER = "tiles"
#: Default name of a ``classify`` layer.
LANDCOVER_LAYER = "landcover"
#: Prefix of a ``query`` layer's default name (``query_<slug>``).
QUERY_LAYER_PREFIX = "query_"
#: The tile embeddings: ``tile_id`` and a little-endian float blob.
EMBEDDINGS_TABLE = "rsgeo_embeddings"
#: Key/value metadata, values JSON text.
METADATA_TABLE = "rsgeo_metadata"
#: QGIS's default-style table (the name QGIS reads).
STYLES_TABLE = "layer_styles"
#: Tables rsgeo keeps besides the layers (registered as ``attributes`` in ``gpkg_contents``).
RSGEO_TABLES = (EMBEDDINGS_TABLE, METADATA_TABLE, STYLES_TABLE)

# -- columns --------------------------------------------------------------------------------

COL_TILE_ID = "tile_id"
COL_ROW = "row"
COL_COL = "col"
COL_VALID_FRACTION = "valid_fraction"
COL_TOP_CLASS = "top_class"
COL_TOP_SCORE = "top_score"
COL_SIMILARITY = "similarity"
COL_RANK = "rank"
COL_EMBEDDING = "embedding"
#: Columns of every tile layer, in order.
TILE_COLUMNS = (COL_TILE_ID, COL_ROW, COL_COL, COL_VALID_FRACTION)
#: Names a class-score column may not take (it gets a ``c_`` prefix instead).
RESERVED_COLUMNS = frozenset(
    {"fid", GEOMETRY_COLUMN, *TILE_COLUMNS, COL_TOP_CLASS, COL_TOP_SCORE, COL_SIMILARITY, COL_RANK}
)

# -- layer kinds (metadata ``layers.<name>.kind``) ------------------------------------------

KIND_TILES = "tiles"
KIND_LANDCOVER = "landcover"
KIND_QUERY = "query"

# -- metadata keys --------------------------------------------------------------------------

KEY_SCHEMA_VERSION = "schema_version"
#: ``{rsgeo_version, created, command}``.
KEY_RUN = "run"
#: ``{model_id, weights_sha256, embedding_dim, logit_scale, image_spec, languages}`` and, since
#: issue 16, :data:`MODEL_ENGINE`, :data:`MODEL_ENGINE_VERSION`, :data:`MODEL_PRECISION`.
KEY_MODEL = "model"
#: The scene's identity and raster facts (path, sha256, width, height, crs, ...).
KEY_SCENE = "scene"
#: The chip grid (:class:`GridRecord`).
KEY_GRID = "grid"
#: How pixels were read: bands, stretch, min_valid, gsd.
KEY_READ = "read"
#: ``{table, dtype, dim}`` of :data:`EMBEDDINGS_TABLE`.
KEY_EMBEDDINGS = "embeddings"
#: Layer name -> ``{kind, ...}`` for every layer rsgeo wrote.
KEY_LAYERS = "layers"
#: The keys every complete result has.
REQUIRED_KEYS = (KEY_SCHEMA_VERSION, KEY_RUN, KEY_MODEL, KEY_SCENE, KEY_GRID, KEY_READ, KEY_EMBEDDINGS, KEY_LAYERS)

#: Storage types of the embedding blobs (``embeddings.dtype``) -> NumPy's little-endian codes.
EMBEDDING_DTYPES = {"float32": "<f4", "float16": "<f2"}

# -- files beside an output -----------------------------------------------------------------

#: A run's journal is ``OUT.gpkg`` + this suffix (SQLite, plus its ``-wal``/``-shm`` files).
JOURNAL_SUFFIX = ".rsgeo-partial"
#: Tables of a journal.
JOURNAL_META_TABLE = "meta"
JOURNAL_CHIPS_TABLE = "chips"
JOURNAL_NODATA_TABLE = "nodata"
#: Files SQLite may keep beside a database.
SQLITE_SIDE_SUFFIXES = ("-journal", "-wal", "-shm")


def journal_path(output: Path) -> Path:
    """The journal of a run writing ``output``."""
    return output.with_name(output.name + JOURNAL_SUFFIX)


def temporary_name(output: Path, pid: int) -> str:
    """Name of the temporary file process ``pid`` builds ``output`` in (beside it)."""
    return f".{output.stem}.tmp-{pid}.gpkg"


def temporary_pid(output: Path, name: str) -> int | None:
    """The process id in ``name`` if it is a temporary file of ``output``, else ``None``."""
    prefix, suffix = f".{output.stem}.tmp-", ".gpkg"
    if not (name.startswith(prefix) and name.endswith(suffix)):
        return None
    pid = name[len(prefix) : -len(suffix)]
    return int(pid) if pid.isdigit() else None


def temporary_files(output: Path, pid: int) -> list[Path]:
    """The temporary file of ``output`` made by ``pid`` and SQLite's side files, as far as they exist."""
    base = output.with_name(temporary_name(output, pid))
    return [p for p in (base, *(Path(str(base) + s) for s in SQLITE_SIDE_SUFFIXES)) if p.exists()]


# -- names a user may not take --------------------------------------------------------------

_RESERVED_PREFIXES = ("gpkg_", "gpkgext_", "rtree_", "sqlite_", "rsgeo_")


def reserved_layer_reason(name: str) -> str | None:
    """Why ``name`` may not be a result layer's name, or ``None`` when it may.

    The tiles layer, rsgeo's and GeoPackage's own tables (and their prefixes)
    are taken: writing a layer under one of those names would replace or break
    what the result needs.
    """
    if not name.strip():
        return "a layer name must not be blank"
    folded = name.casefold()  # SQLite compares table names case-insensitively
    if folded == TILES_LAYER:
        return f"{name!r} is the layer of every encoded tile"
    if folded in {t.casefold() for t in RSGEO_TABLES}:
        return f"{name!r} is one of rsgeo's own tables"
    for prefix in _RESERVED_PREFIXES:
        if folded.startswith(prefix):
            return f"names starting with {prefix!r} are kept for GeoPackage's and rsgeo's own tables"
    if not re.fullmatch(r"[^\x00-\x1f\"]+", name):
        return f"{name!r} holds control characters or double quotes"
    return None


# -- metadata values ------------------------------------------------------------------------


def encode_metadata(items: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(key, JSON text)`` rows for :data:`METADATA_TABLE`."""
    return [(str(key), json.dumps(value)) for key, value in items.items()]


def decode_metadata(rows: Iterable[tuple[Any, Any]]) -> dict[str, Any]:
    """The metadata dict of :data:`METADATA_TABLE`'s rows (``ValueError`` on a value that is not JSON)."""
    out: dict[str, Any] = {}
    for key, value in rows:
        try:
            out[str(key)] = json.loads(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metadata key {key!r} holds no JSON value ({exc})") from None
    return out


def read_metadata_rows(path: Path) -> list[tuple[Any, Any]]:
    """The raw rows of a file's metadata table (``sqlite3.DatabaseError`` when it has none)."""
    db = sqlite3.connect(f"file:{Path(path).as_posix()}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(f"SELECT key, value FROM {METADATA_TABLE}").fetchall()
    finally:
        db.close()


# -- records of the metadata ----------------------------------------------------------------


@dataclass(frozen=True)
class GridRecord:
    """The chip grid as stored under :data:`KEY_GRID` (pixels of the scene as read)."""

    width: int
    height: int
    #: The first six affine coefficients ``a, b, c, d, e, f``.
    transform: tuple[float, float, float, float, float, float]
    #: WKT, or ``None`` for a scene without CRS.
    crs: str | None
    size_px: int
    stride_px: int
    n_rows: int
    n_cols: int
    #: Metres per pixel the scene was resampled to (``--gsd``), or ``None``.
    gsd: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "width": self.width, "height": self.height, "transform": list(self.transform), "crs": self.crs,
            "size_px": self.size_px, "stride_px": self.stride_px, "n_rows": self.n_rows, "n_cols": self.n_cols,
            "gsd": self.gsd,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GridRecord:
        t = [float(v) for v in d["transform"]][:6]
        if len(t) != 6:
            raise ValueError(f"grid transform has {len(t)} coefficients, not 6")
        return cls(
            width=int(d["width"]), height=int(d["height"]), transform=(t[0], t[1], t[2], t[3], t[4], t[5]),
            crs=d.get("crs") or None, size_px=int(d["size_px"]), stride_px=int(d["stride_px"]),
            n_rows=int(d["n_rows"]), n_cols=int(d["n_cols"]), gsd=d.get("gsd"),
        )


@dataclass(frozen=True)
class EmbeddingsRecord:
    """How the embeddings are stored (:data:`KEY_EMBEDDINGS`)."""

    table: str
    dtype: str
    dim: int

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "dtype": self.dtype, "dim": self.dim}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EmbeddingsRecord:
        dtype = str(d["dtype"])
        if dtype not in EMBEDDING_DTYPES:
            raise ValueError(f"embeddings dtype {dtype!r} is not one of {', '.join(EMBEDDING_DTYPES)}")
        return cls(table=str(d.get("table", EMBEDDINGS_TABLE)), dtype=dtype, dim=int(d["dim"]))


@dataclass(frozen=True)
class LayerRecord:
    """One layer of :data:`KEY_LAYERS`: its name, kind and the texts that made it.

    ``texts`` are a land-cover layer's class names or a query layer's texts.
    """

    name: str
    kind: str
    texts: tuple[str, ...] = ()
    label: str = ""


def layer_records(meta: Mapping[str, Any]) -> list[LayerRecord]:
    """The layers listed in a result's metadata, in the order they were written."""
    layers = meta.get(KEY_LAYERS) or {}
    out = []
    for name, rec in layers.items() if isinstance(layers, dict) else ():
        if not isinstance(rec, dict):
            continue
        kind = str(rec.get("kind", ""))
        texts = rec.get("classes" if kind == KIND_LANDCOVER else "texts") or []
        out.append(LayerRecord(
            name=str(name), kind=kind, texts=tuple(str(t) for t in texts if isinstance(t, str)),
            label=str(rec.get("query", "")),
        ))
    return out


# -- how the image tower ran (issue 16: inference engines) ----------------------------------

#: Keys of the :data:`KEY_MODEL` record naming the engine that ran the image tower, its
#: version and the precision it ran at (``fp32``, ``bf16``, ``fp16``, ``int8``).
MODEL_ENGINE = "engine"
MODEL_ENGINE_VERSION = "engine_version"
MODEL_PRECISION = "precision"
#: Folder, inside the weights cache (``--cache-dir``, ``$RSGEO_CACHE_DIR`` or the Hugging Face
#: cache), holding exported engine files: one subfolder per export key.
ENGINE_CACHE_FOLDER = "rsgeo-engines"
#: Files of an export key's subfolder: the fp32 ONNX image tower, its int8 (dynamic
#: quantisation) derivative, the key's fields (JSON, for people), OpenVINO's compiled blobs.
ENGINE_ONNX_FILE = "image_tower.onnx"
ENGINE_INT8_FILE = "image_tower.int8.onnx"
ENGINE_KEY_FILE = "key.json"
ENGINE_OPENVINO_BLOBS = "openvino"
#: The ``--precision auto`` verdict of a model on this machine (JSON), kept per export key.
ENGINE_AUTO_VERDICT_FILE = "auto-precision.json"
