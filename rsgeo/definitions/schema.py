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
from dataclasses import dataclass, field
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
#: Labelled chips saved by ``classify``/``query`` with labels (``label`` column).
KIND_LABELS = "labels"

# -- refinement and labels (docs/refine.md) -------------------------------------------------

#: Suffix of a refined land-cover layer's default name (``landcover_refined``).
REFINED_SUFFIX = "_refined"
#: Default name of a land-cover layer learnt from labels.
PROBE_LAYER = "landcover_probe"
#: Column of a labels layer holding the label.
COL_LABEL = "label"
#: Layer-metadata keys of refined and learnt layers.
LAYER_KEY_METHOD = "method"
LAYER_KEY_SOURCE_LAYER = "source_layer"
LAYER_KEY_CV_ACCURACY = "cv_accuracy"

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
    if folded == CELLS_LAYER:
        return f"{name!r} is the layer of every encoded tile's non-overlapping cell"
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


# -- accuracy assessment (``rsgeo sample``, ``rsgeo assess``; docs/assessment.md) -----------

#: The point layer ``rsgeo sample`` writes.
SAMPLES_LAYER = "samples"
#: Its table of strata (one row per map class, no geometry).
STRATA_TABLE = "strata"
COL_SAMPLE_ID = "sample_id"
COL_MAP_CLASS = "map_class"
#: The empty field a sample's points are labelled in (``rsgeo assess``'s default reference field).
COL_LABEL = "label"
COL_STRATUM = "stratum"
COL_STRATUM_WEIGHT = "stratum_weight"
COL_MAP_AREA_M2 = "map_area_m2"
COL_MAP_PIXELS = "map_pixels"
COL_N_SAMPLES = "n_samples"
#: Files of an assessment report folder.
REPORT_JSON = "report.json"
REPORT_MARKDOWN = "report.md"
REPORT_FIGURE = "confusion_matrix.png"
#: Version of report.json's layout.
REPORT_VERSION = 1

# -- reproducibility (issue 18) -------------------------------------------------------------

#: ``read.rounding``: how a stretch turns scaled values into 8 bits (``numpy.rint``: to the
#: nearest integer, halves to the even one, after clipping to 0..255).
READ_ROUNDING = "rounding"
ROUNDING_HALF_EVEN = "half-to-even"
#: ``read.default_chip``: ``{training_extent_m, pixel_size_m, size_px}`` when no chip size was given.
READ_DEFAULT_CHIP = "default_chip"
#: ``model.checkpoint``: ``{path, sha256}`` of the local weights file a run loaded (``--checkpoint``).
MODEL_CHECKPOINT = "checkpoint"
#: ``run.argv``: the command line as given (``run.command`` is it joined, shell-quoted).
RUN_ARGV = "argv"
# -- rasters beside a result (issue 13) -----------------------------------------------------

#: Metadata key: raster name -> :class:`RasterRecord` dict (path relative to the GeoPackage, bands).
KEY_RASTERS = "rasters"
#: The non-overlapping cell of every chip (the part of the chip nearest its centre).
CELLS_LAYER = "cells"
#: Suffix of the rasters rsgeo writes (Cloud-Optimised GeoTIFF).
RASTER_SUFFIX = ".tif"
#: GDAL's sidecar (category names) is ``NAME.tif`` + this suffix.
RASTER_PAM_SUFFIX = ".aux.xml"
#: QGIS's style sidecar replaces the raster's suffix (``NAME.qml``).
RASTER_STYLE_SUFFIX = ".qml"


def raster_sidecars(raster: Path) -> list[Path]:
    """The side files rsgeo may write beside ``raster`` (category names, QGIS style)."""
    return [Path(str(raster) + RASTER_PAM_SUFFIX), raster.with_suffix(RASTER_STYLE_SUFFIX)]


def raster_file_name(output: Path, raster: str) -> str:
    """File name of raster ``raster`` of result ``output``: ``OUT_<raster>.tif`` beside it."""
    return f"{output.stem}_{raster}{RASTER_SUFFIX}"


def temporary_raster_name(raster: Path, pid: int) -> str:
    """Name of the temporary file process ``pid`` builds ``raster`` in (beside it)."""
    return f".{raster.stem}.tmp-{pid}{RASTER_SUFFIX}"


def temporary_raster_pid(raster: Path, name: str) -> int | None:
    """The process id in ``name`` if it is a temporary file of ``raster``, else ``None``."""
    prefix = f".{raster.stem}.tmp-"
    if not (name.startswith(prefix) and name.endswith(RASTER_SUFFIX)):
        return None
    pid = name[len(prefix) : -len(RASTER_SUFFIX)]
    return int(pid) if pid.isdigit() else None


#: The keys :class:`RasterRecord` reads itself (others go to its ``extra``).
_RASTER_RECORD_KEYS = frozenset({"path", "layer", "kind", "bands", "dtype", "cell_px", "nodata", "nodata_is_nan"})


@dataclass(frozen=True)
class RasterRecord:
    """One raster of :data:`KEY_RASTERS`.

    ``path`` is relative to the GeoPackage's folder; ``bands`` is one meaning per
    band (a class name, ``top_class`` or a query text); ``layer`` the vector layer
    it maps; ``kind`` ``top_class``, ``scores`` or ``similarity``; ``cell_px``
    the raster cell in scene pixels.
    """

    name: str
    path: str
    layer: str
    kind: str
    bands: tuple[str, ...]
    dtype: str
    cell_px: int
    nodata: float | None = None
    #: Further keys of the record, kept as they are (a dense map's ``dense``, ``cell_size_px``, ``blend``).
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "path": self.path, "layer": self.layer, "kind": self.kind, "bands": list(self.bands),
            "dtype": self.dtype, "cell_px": self.cell_px,
            "nodata": None if self.nodata is None or self.nodata != self.nodata else self.nodata,
            "nodata_is_nan": self.nodata is not None and self.nodata != self.nodata,
        }

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> RasterRecord:
        nodata = float("nan") if d.get("nodata_is_nan") else d.get("nodata")
        return cls(
            name=name, path=str(d["path"]), layer=str(d.get("layer", "")), kind=str(d.get("kind", "")),
            bands=tuple(str(b) for b in d.get("bands") or ()), dtype=str(d.get("dtype", "")),
            cell_px=int(d.get("cell_px", 0)), nodata=None if nodata is None else float(nodata),
            extra={k: v for k, v in d.items() if k not in _RASTER_RECORD_KEYS},
        )


#: Raster kinds (``rasters.<name>.kind``).
RASTER_TOP_CLASS = "top_class"
RASTER_SCORES = "scores"
RASTER_SIMILARITY = "similarity"
#: Layer kind of :data:`CELLS_LAYER`.
KIND_CELLS = "cells"
#: Raster names are ``<layer>`` + one of these (files: :func:`raster_file_name`).
RASTER_NAME_SUFFIXES = {RASTER_TOP_CLASS: "_class", RASTER_SCORES: "_scores", RASTER_SIMILARITY: "_similarity"}


# -- dense sub-chip maps (issue 13, ``--dense``) ---------------------------------------------

#: Patch embeddings kept with ``--keep-patches``: ``tile_id`` and a little-endian float16 blob of
#: ``grid × grid × dim`` values (row-major patches), so dense maps of new texts need no re-encoding.
PATCHES_TABLE = "rsgeo_patches"
#: The journal's table of patch embeddings during a ``--dense`` run (same layout).
JOURNAL_PATCHES_TABLE = "patches"
#: Metadata key: ``{table, dtype, dim, grid, method}`` of :data:`PATCHES_TABLE`.
KEY_PATCHES = "patches"
#: Storage type of the patch blobs.
PATCH_DTYPE = "float16"
#: Raster names of a dense map: ``<layer>`` + one of these (files via :func:`raster_file_name`).
DENSE_CLASSES_SUFFIX = "_dense_class"
DENSE_SCORES_SUFFIX = "_dense_scores"
DENSE_SIMILARITY_SUFFIX = "_dense"
# -- concurrency and limits (issue 17) ------------------------------------------------------

#: A run writing ``OUT.gpkg`` holds the lock file ``OUT.gpkg`` + this suffix (JSON: pid, host, start time).
LOCK_SUFFIX = ".rsgeo-lock"
#: Keys of the lock file's JSON object.
LOCK_KEYS = ("pid", "host", "started", "process_start", "command")


def lock_path(output: Path) -> Path:
    """The lock file of ``output`` (beside it; ``output`` resolved, so symlinked paths share one lock)."""
    resolved = Path(output).resolve()
    return resolved.with_name(resolved.name + LOCK_SUFFIX)


#: The most columns a SQLite table (hence a GeoPackage layer) may have (SQLite's default SQLITE_MAX_COLUMN).
MAX_LAYER_COLUMNS = 2000
#: Columns of a land-cover layer besides one score per class: fid, geometry, the tile columns, top class and score.
LANDCOVER_FIXED_COLUMNS = ("fid", GEOMETRY_COLUMN, *TILE_COLUMNS, COL_TOP_CLASS, COL_TOP_SCORE)
#: The most classes one land-cover layer holds.
MAX_CLASSES = MAX_LAYER_COLUMNS - len(LANDCOVER_FIXED_COLUMNS)

#: Tables every complete result holds (the tiles layer and rsgeo's two own tables; styles are optional).
RESULT_TABLES = (TILES_LAYER, EMBEDDINGS_TABLE, METADATA_TABLE)

# -- zones results (issue 19: ``rsgeo embed SCENE --zones ZONES``; docs/inputs.md) ----------

#: Metadata key naming what kind of result a file is; absent in a tiles result (the original kind).
KEY_RESULT_KIND = "result_kind"
#: :data:`KEY_RESULT_KIND` of a result holding one embedding per zone instead of per tile.
RESULT_KIND_ZONES = "zones"
#: The zones layer: the zones in the scene CRS, their own attributes and the columns below.
ZONES_LAYER = "zones"
#: One embedding per scored zone: ``zone_id`` and a little-endian float blob.
ZONE_EMBEDDINGS_TABLE = "rsgeo_zone_embeddings"
#: How the zones were embedded: the zones' source, chip size, masking, thresholds.
KEY_ZONES = "zones"
#: Layer kind of :data:`ZONES_LAYER`.
KIND_ZONES = "zones"
COL_ZONE_ID = "zone_id"
COL_STATUS = "status"
COL_N_CHIPS = "n_chips"
#: Columns rsgeo adds to the zones layer (a zones file with an attribute of one of these names is refused).
ZONE_COLUMNS = (COL_ZONE_ID, COL_STATUS, COL_VALID_FRACTION, COL_N_CHIPS)
#: Tables every complete zones result holds.
ZONE_RESULT_TABLES = (ZONES_LAYER, ZONE_EMBEDDINGS_TABLE, METADATA_TABLE)
#: The keys every complete zones result has (no grid: each zone has chips of its own).
ZONE_REQUIRED_KEYS = (
    KEY_SCHEMA_VERSION, KEY_RUN, KEY_MODEL, KEY_SCENE, KEY_READ, KEY_EMBEDDINGS, KEY_LAYERS, KEY_RESULT_KIND, KEY_ZONES,
)


def reserved_table_names() -> frozenset[str]:
    """Every exact table name the schema keeps (case-folded as SQLite compares them)."""
    return frozenset(n.casefold() for n in (TILES_LAYER, CELLS_LAYER, *RSGEO_TABLES))
# -- how the image tower ran (issue 16: inference engines) ----------------------------------

#: Keys of the :data:`KEY_MODEL` record naming the engine that ran the image tower, its
#: version and the precision it ran at (``fp32``, ``bf16``, ``fp16``, ``int8``).
MODEL_ENGINE = "engine"
MODEL_ENGINE_VERSION = "engine_version"
MODEL_PRECISION = "precision"
#: How a static int8 tower was calibrated (``{scheme, chips, sha256}``: the chips of the scene it was
#: calibrated on, :mod:`rsgeo.engines.calibration`); only in results made at static int8.
MODEL_CALIBRATION = "calibration"
#: Folder, inside the weights cache (``--cache-dir``, ``$RSGEO_CACHE_DIR`` or the Hugging Face
#: cache), holding exported engine files: one subfolder per export key.
ENGINE_CACHE_FOLDER = "rsgeo-engines"
#: Files of an export key's subfolder: the fp32 ONNX image tower, its int8 derivatives (dynamic
#: quantisation; static, calibrated on a scene's chips), the key's fields (JSON, for people),
#: OpenVINO's compiled blobs.
ENGINE_ONNX_FILE = "image_tower.onnx"
ENGINE_INT8_FILE = "image_tower.int8.onnx"
ENGINE_INT8_STATIC_FILE = "image_tower.int8-static.onnx"
ENGINE_KEY_FILE = "key.json"
ENGINE_OPENVINO_BLOBS = "openvino"
#: The ``--precision auto`` verdict of a model on this machine (JSON), kept per export key.
ENGINE_AUTO_VERDICT_FILE = "auto-precision.json"
