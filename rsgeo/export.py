"""Results in the formats others read: GeoParquet with the embeddings (issue 21, docs/archive.md).

``rsgeo export A.gpkg B.gpkg --format geoparquet -o archive.parquet`` writes
one row per tile of every result: its ``scene``, ``tile_id``, ``row``,
``col``, ``valid_fraction``, the columns of the result's answer layers
(``<layer>_<column>``: class scores, ``top_class``, a query's ``similarity``
and ``rank``; null where a layer holds no feature for the tile), the
embedding as ``fixed_size_list<float32>[dim]`` and the tile polygon as WKB
in one CRS. The file carries GeoParquet 1.1 ``geo`` metadata (CRS as
PROJJSON, bbox) and an ``rsgeo`` key (JSON: the model, the embedding
dimension, the scenes and which layer each column comes from), so DuckDB,
GeoPandas, Arrow or Spark read it without rsgeo.

It is written a chunk of tiles at a time (memory does not grow with the
archive) into a temporary file beside the output, moved into place only when
complete.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rsgeo.collection import Member, open_collection, target_crs
from rsgeo.definitions import schema
from rsgeo.errors import Cancelled, MissingDependencyError, OptionError, OutputError, OutputExistsError, opt

logger = logging.getLogger(__name__)

#: Formats ``rsgeo export`` writes.
FORMATS = ("geoparquet",)
#: Output file endings of each format.
SUFFIXES = {"geoparquet": (".parquet", ".geoparquet")}
#: Tiles read, converted and written at a time.
CHUNK = 65536
#: Parquet key-value metadata keys.
GEO_KEY = "geo"
RSGEO_KEY = "rsgeo"
#: Columns of every row, before the layers' columns.
COL_SCENE = "scene"
COL_GEOMETRY = "geometry"
#: Layer kinds whose columns are not exported (their columns are the tile columns every row has).
_SKIPPED_KINDS = (schema.KIND_TILES, schema.KIND_CELLS)
#: SQLite declared types (as GDAL writes them) -> Arrow type names.
_SQL_TYPES = {"FLOAT": "float32", "REAL": "float64", "DOUBLE": "float64", "INTEGER": "int64", "MEDIUMINT": "int64",
              "SMALLINT": "int64", "TINYINT": "int64", "BOOLEAN": "int64", "TEXT": "string"}

Progress = Callable[[int, int], None]


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401  (the submodule ParquetWriter lives in)
    except ImportError:
        raise MissingDependencyError(
            "writing GeoParquet needs pyarrow; install it with: pip install 'rsgeo[archive]'"
        ) from None
    return pyarrow


@dataclass(frozen=True)
class LayerColumn:
    """One exported column taken from a result layer."""

    name: str  # in the Parquet file
    layer: str
    column: str  # in the layer
    kind: str
    arrow_type: str


def layer_columns(db: sqlite3.Connection, metadata: dict[str, Any]) -> list[LayerColumn]:
    """The answer layers' columns of one result (every column but the tile columns), in layer order."""
    out = []
    skip = {"fid", schema.GEOMETRY_COLUMN, *schema.TILE_COLUMNS}
    for record in schema.layer_records(metadata):
        if record.kind in _SKIPPED_KINDS:
            continue
        for _, column, decl, *_ in db.execute(f'PRAGMA table_info("{record.name}")'):
            if column in skip:
                continue
            arrow = _SQL_TYPES.get(str(decl).upper().split("(")[0], "string")
            out.append(LayerColumn(f"{record.name}_{column}", record.name, str(column), record.kind, arrow))
    return out


def union_columns(per_member: Sequence[Sequence[LayerColumn]]) -> list[LayerColumn]:
    """The columns of every result, each once (the first result's type wins), in first-seen order."""
    seen: dict[str, LayerColumn] = {}
    for columns in per_member:
        for c in columns:
            seen.setdefault(c.name, c)
    return list(seen.values())


def check_export_output(path: Path, fmt: str, *, overwrite: bool) -> None:
    """Refuse, before any work, an output that cannot or must not be written."""
    if fmt not in FORMATS:
        raise OptionError(f"{opt('format')} {fmt!r} is not one rsgeo writes; use one of {', '.join(FORMATS)}")
    if not path.parent.is_dir():
        raise OutputError(f"the folder {path.parent} does not exist; create it or choose another {opt('output')} path")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise OutputError(f"the folder {path.parent} is not writable; choose another {opt('output')} path")
    if path.suffix.lower() not in SUFFIXES[fmt]:
        raise OutputError(f"output {path.name} must end in {' or '.join(SUFFIXES[fmt])} for {opt('format', fmt)}")
    if path.is_dir():
        raise OutputError(f"output {path} is a folder; give a file path")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; pass {opt('overwrite')} to replace it, or choose another "
                                f"{opt('output')} path")


def export_results(
    results: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    format: str = "geoparquet",
    crs: Any = None,
    overwrite: bool = False,
    chunk: int = CHUNK,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Path:
    """Write ``results`` (files, patterns, folders) as one GeoParquet file; returns its path.

    ``crs``: the geometries' CRS (default: the results' common CRS, else
    EPSG:4326, as ``rsgeo batch --merge``).
    """
    out = Path(output)
    check_export_output(out, format, overwrite=overwrite)
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    members = open_collection([str(r) for r in results], exclude=[out])
    return write_geoparquet(members, out, crs=target_crs(members, crs), chunk=chunk, progress=progress, cancel=cancel)


def write_geoparquet(
    members: Sequence[Member], output: Path, *, crs: Any, chunk: int = CHUNK,
    progress: Progress | None = None, cancel: Callable[[], bool] | None = None,
) -> Path:
    """The file of :func:`export_results` for results already listed and checked for one model."""
    from rsgeo.resultcheck import connect_checked

    pa = _pyarrow()
    import pyarrow.parquet as pq

    dim = int(members[0].metadata[schema.KEY_EMBEDDINGS]["dim"])
    opened = [connect_checked(m.path) for m in members]  # each connection keeps the very file it checked
    try:
        per_member = [layer_columns(db, meta) for db, meta in opened]
        columns = union_columns(per_member)
        counts = [int(db.execute(f"SELECT count(*) FROM {schema.EMBEDDINGS_TABLE}").fetchone()[0]) for db, _ in opened]
        arrow_schema = pa.schema(
            [pa.field(COL_SCENE, pa.string(), nullable=False), pa.field(schema.COL_TILE_ID, pa.int64(), nullable=False),
             pa.field(schema.COL_ROW, pa.int64()), pa.field(schema.COL_COL, pa.int64()),
             pa.field(schema.COL_VALID_FRACTION, pa.float32()),
             *(pa.field(c.name, getattr(pa, c.arrow_type)()) for c in columns),
             pa.field(schema.COL_EMBEDDING, pa.list_(pa.float32(), dim)),
             pa.field(COL_GEOMETRY, pa.binary())],
            metadata={RSGEO_KEY: json.dumps(_rsgeo_metadata(members, opened, columns, counts, dim))},
        )
        total, done = sum(counts), 0
        bounds = [np.inf, np.inf, -np.inf, -np.inf]
        tmp = output.with_name(f".{output.stem}.tmp-{os.getpid()}{output.suffix}")
        try:
            with pq.ParquetWriter(tmp, arrow_schema, compression="zstd") as writer:
                for member, (db, meta), own in zip(members, opened, per_member):
                    for batch, box in _member_batches(pa, member, db, meta, columns, own, arrow_schema, crs, chunk):
                        if cancel is not None and cancel():
                            raise Cancelled("export cancelled; nothing was written")
                        writer.write_batch(batch)
                        bounds = [min(bounds[0], box[0]), min(bounds[1], box[1]),
                                  max(bounds[2], box[2]), max(bounds[3], box[3])]
                        done += batch.num_rows
                        if progress is not None:
                            progress(done, total)
                writer.add_key_value_metadata({GEO_KEY: json.dumps(geo_metadata(crs, bounds if done else None))})
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, output)
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        for db, _ in opened:
            db.close()
    logger.info("exported %d tiles of %d results to %s", done, len(members), output)
    return output


def geo_metadata(crs: Any, bbox: Sequence[float] | None) -> dict[str, Any]:
    """GeoParquet 1.1 file metadata: one WKB polygon column in ``crs`` (PROJJSON)."""
    column: dict[str, Any] = {"encoding": "WKB", "geometry_types": ["Polygon"], "crs": crs.to_json_dict(),
                              "edges": "planar"}
    if bbox is not None:
        column["bbox"] = [float(v) for v in bbox]
    return {"version": "1.1.0", "primary_column": COL_GEOMETRY, "columns": {COL_GEOMETRY: column}}


def _rsgeo_metadata(
    members: Sequence[Member], opened: Sequence[tuple[sqlite3.Connection, dict[str, Any]]],
    columns: Sequence[LayerColumn], counts: Sequence[int], dim: int,
) -> dict[str, Any]:
    from rsgeo.version import __version__

    return {
        "rsgeo_version": __version__,
        "model": opened[0][1][schema.KEY_MODEL],
        "embedding": {"column": schema.COL_EMBEDDING, "dim": dim, "unit_norm": True,
                      "stored_dtypes": sorted({str(meta[schema.KEY_EMBEDDINGS]["dtype"]) for _, meta in opened})},
        "scenes": [
            {"scene": m.name, "result": str(m.path.resolve()), "source": (meta.get(schema.KEY_SCENE) or {}).get("path"),
             "crs": (meta.get(schema.KEY_GRID) or {}).get("crs"), "tiles": n,
             "created": (meta.get(schema.KEY_RUN) or {}).get("created")}
            for m, (_, meta), n in zip(members, opened, counts)
        ],
        "columns": {c.name: {"layer": c.layer, "column": c.column, "kind": c.kind} for c in columns},
    }


def _member_batches(
    pa: Any, member: Member, db: sqlite3.Connection, meta: dict[str, Any], columns: Sequence[LayerColumn],
    own: Sequence[LayerColumn], arrow_schema: Any, crs: Any, chunk: int,
) -> Iterator[tuple[Any, tuple[float, float, float, float]]]:
    """Record batches of one result's tiles, in tile-id order, with the bounds of their polygons."""
    import shapely

    from rsgeo.answers import polygons
    from rsgeo.metadata import embeddings_record, grid_from_metadata
    from rsgeo.store import GpkgEmbeddings

    grid = grid_from_metadata(meta)
    record = embeddings_record(meta)
    store = GpkgEmbeddings(member.path, dim=record.dim, dtype=record.dtype, db=db)
    readers = {layer: _SortedLayer(db, layer, [c for c in own if c.layer == layer])
               for layer in dict.fromkeys(c.layer for c in own)}
    transform = _transformer(grid.crs, crs)
    mine = {c.name for c in own}
    for ids, fractions, emb in store.iter_chunks(chunk):  # float32, the stored values widened exactly
        rows, cols = np.divmod(ids, grid.n_cols)
        geoms = polygons(grid, ids)
        if transform is not None:
            geoms = shapely.transform(geoms, transform, interleaved=False)
        box = shapely.total_bounds(geoms)
        values: dict[str, Any] = {}
        for reader in readers.values():
            values.update(reader.take(ids))
        arrays = [
            pa.array(np.full(len(ids), member.name, dtype=object), pa.string()),
            pa.array(ids, pa.int64()), pa.array(rows, pa.int64()), pa.array(cols, pa.int64()),
            pa.array(fractions.astype(np.float32), pa.float32()),
        ]
        for c in columns:
            if c.name in mine:
                data, missing = values[c.name]
                arrays.append(pa.array(data, getattr(pa, c.arrow_type)(), mask=missing))
            else:
                arrays.append(pa.nulls(len(ids), getattr(pa, c.arrow_type)()))
        flat = pa.array(np.ascontiguousarray(emb, np.float32).reshape(-1), pa.float32())
        arrays.append(pa.FixedSizeListArray.from_arrays(flat, record.dim))
        arrays.append(pa.array(shapely.to_wkb(geoms), pa.binary()))
        yield pa.RecordBatch.from_arrays(arrays, schema=arrow_schema), (float(box[0]), float(box[1]), float(box[2]), float(box[3]))


def _transformer(source: Any, target: Any) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None:
    """Vertex reprojection from the grid's CRS to ``target`` (``None``: the same CRS), as the merged file does."""
    from pyproj import CRS, Transformer

    src = CRS.from_user_input(source.to_wkt() if hasattr(source, "to_wkt") else source)
    if src == target:
        return None
    t = Transformer.from_crs(src, target, always_xy=True)

    def apply(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xx, yy = t.transform(x, y)
        return np.asarray(xx), np.asarray(yy)

    return apply


class _SortedLayer:
    """A layer's columns read in tile-id order, handed out aligned to the chunks of tile ids asked.

    One cursor per layer walks the table once; rows of later chunks wait in a
    small buffer. A tile the layer has no feature for (a query's top-k) is null.
    """

    FETCH = 8192

    def __init__(self, db: sqlite3.Connection, layer: str, columns: Sequence[LayerColumn]) -> None:
        self.columns = list(columns)
        names = ", ".join(f'"{c.column}"' for c in self.columns)
        self._cursor = db.execute(f'SELECT {schema.COL_TILE_ID}, {names} FROM "{layer}" ORDER BY {schema.COL_TILE_ID}')
        self._buffer: list[tuple[Any, ...]] = []
        self._done = False

    def take(self, ids: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{column name: (values, missing mask)}`` for sorted ``ids``."""
        last = int(ids[-1]) if len(ids) else -1
        while not self._done and (not self._buffer or self._buffer[-1][0] <= last):
            more = self._cursor.fetchmany(self.FETCH)
            self._buffer.extend(more)
            self._done = not more
        split = 0
        while split < len(self._buffer) and self._buffer[split][0] <= last:
            split += 1
        rows, self._buffer = self._buffer[:split], self._buffer[split:]
        have = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        pos = np.searchsorted(have, ids)
        found = (pos < len(have)) & (have[np.minimum(pos, max(len(have) - 1, 0))] == ids) if len(have) else np.zeros(len(ids), bool)
        out = {}
        for j, c in enumerate(self.columns, start=1):
            raw = [r[j] for r in rows]
            if c.arrow_type == "string":
                strings = np.full(len(ids), None, dtype=object)
                strings[found] = np.asarray(raw, dtype=object)[pos[found]] if raw else None
                out[c.name] = (strings, np.asarray([v is None for v in strings], bool))
                continue
            numbers = np.full(len(ids), np.nan)
            if raw:
                numbers[found] = np.asarray([np.nan if v is None else v for v in raw], np.float64)[pos[found]]
            missing = np.isnan(numbers)
            out[c.name] = (np.where(missing, 0, numbers).astype(c.arrow_type), missing)
        return out
