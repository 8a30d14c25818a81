"""A large rsgeo result GeoPackage, fast: N tiles with random unit embeddings (issue 13).

The QGIS dock test at 10^6 tiles (``tests/qgis/test_dock_million.py``) and the
benchmark ``benchmarks/dock_query.py`` need a real result file of a million
tiles. Writing one through GDAL (pyogrio, as ``benchmarks/query_speed.py``
does) takes minutes here; this script writes the same tables with bulk SQLite
inserts instead:

* the ``tiles`` layer is created empty by GDAL (so ``gpkg_contents``,
  ``gpkg_geometry_columns``, the SRS and the feature-count bookkeeping are
  GDAL's own), then filled with GeoPackage geometry blobs built with NumPy;
  it has no spatial index (nothing here reads it by area);
* ``rsgeo_embeddings``, ``rsgeo_metadata`` and ``layer_styles`` are made by
  :func:`rsgeo.gpkg.ensure_rsgeo_tables`, with random unit ``dim``-d vectors;
* the metadata is a complete result's, under the schema's keys, recording the
  deterministic test encoder ``test:hash-DIM-224-0`` so the file's texts can be
  encoded without weights.

The grid is square: ``ceil(sqrt(N))`` chips a side, ``chip`` pixels each, at
10 m, in UTM 33N; tiles ``0..N-1`` exist.

    python benchmarks/synthetic_result.py OUT.gpkg [--tiles 1000000] [--dim 512]
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Rows written per ``executemany`` (64 Ki rows of 512 float32: 128 MiB of vectors).
CHUNK = 1 << 16


def geometry_blobs(rings: np.ndarray, srs_id: int) -> np.ndarray:
    """GeoPackage geometry blobs of closed 5-point polygons ``(N, 5, 2)``, one row of bytes each.

    GeoPackage 1.2 §2.1.3: ``GP``, version 0, flags (little endian, xy envelope), the
    SRS id, the envelope ``minx, maxx, miny, maxy``, then the WKB polygon.
    """
    n = len(rings)
    rec = np.dtype([
        ("magic", "S2"), ("version", "u1"), ("flags", "u1"), ("srs", "<i4"), ("env", "<f8", (4,)),
        ("order", "u1"), ("type", "<u4"), ("rings", "<u4"), ("points", "<u4"), ("xy", "<f8", (5, 2)),
    ])
    out = np.zeros(n, rec)
    out["magic"] = b"GP"
    out["flags"] = 0b011  # envelope [minx, maxx, miny, maxy], little-endian
    out["srs"] = srs_id
    out["env"] = np.stack([rings[..., 0].min(1), rings[..., 0].max(1), rings[..., 1].min(1), rings[..., 1].max(1)], 1)
    out["order"] = 1
    out["type"] = 3  # Polygon
    out["rings"] = 1
    out["points"] = 5
    out["xy"] = rings
    return out.view(np.uint8).reshape(n, rec.itemsize)


def cluster_centres(clusters: int, dim: int, seed: int = 0) -> np.ndarray:
    """``clusters`` random unit vectors (float32), the same for the same seed (queries are drawn near them)."""
    c = np.random.default_rng([seed, 1]).standard_normal((clusters, dim)).astype(np.float32)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def cluster_bases(clusters: int, dim: int, rank: int, seed: int = 0) -> np.ndarray:
    """``(clusters, rank, dim)``: each cluster's directions of variation, random, of unit norm on average."""
    return (np.random.default_rng([seed, 2]).standard_normal((clusters, rank, dim), dtype=np.float32)
            / np.float32(math.sqrt(dim)))


def build_result(
    path: Path, n_tiles: int, *, dim: int = 512, chip: int = 224, seed: int = 0, clusters: int = 0,
    spread: float = 0.75, rank: int = 0, noise: float = 0.0, dtype: str = "float32",
    model: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Write the result at ``path``; returns seconds per step.

    ``clusters`` > 0 draws the vectors around that many random unit centres (noise of norm about
    ``spread``), as real embeddings cluster by land cover; results of any ``seed`` share the centres.
    ``rank`` > 0 keeps that spread within a random ``rank``-dimensional subspace of each cluster
    (real embeddings vary along few directions within a land cover), plus isotropic noise of
    norm about ``noise``; ``rank`` 0: isotropic noise of norm ``spread``.
    ``dtype``: how the embeddings are stored (``float32`` or ``float16``, as ``rsgeo embed --dtype``).
    ``model``: the model record stored (default: the test encoder's), e.g. a random-weights
    architecture's, so that its text tower may ask the file.
    """
    import pyogrio
    from affine import Affine
    from rasterio.crs import CRS

    from rsgeo.answers import tiles_plan
    from rsgeo.definitions import schema
    from rsgeo.encoders.testing import HashEncoder
    from rsgeo.gpkg import connect, ensure_rsgeo_tables, set_metadata, set_style, use_large_pages
    from rsgeo.grid import ChipGrid, ChipSpec, tile_rings
    from rsgeo.metadata import grid_record, model_metadata, run_metadata

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    side = max(1, math.ceil(math.sqrt(n_tiles)))
    crs = CRS.from_epsg(32633)
    grid = ChipGrid(side * chip, side * chip, Affine(10, 0, 300000, 0, -10, 7000000), ChipSpec(chip, chip), crs=crs)
    encoder = HashEncoder(dim=dim, size=chip)

    class _NoTiles:
        def iter_chunks(self, chunk: int = CHUNK):  # type: ignore[no-untyped-def]
            return iter(())

    plan = tiles_plan(grid, _NoTiles())  # type: ignore[arg-type]
    path.unlink(missing_ok=True)
    pyogrio.write_dataframe(plan.empty(), path, layer=schema.TILES_LAYER, driver="GPKG", geometry_type="Polygon",
                            dataset_options={"VERSION": "1.2"}, layer_options={"SPATIAL_INDEX": "NO"})
    use_large_pages(path)
    seconds["skeleton"] = time.perf_counter() - t0

    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    srs_id = int(db.execute("SELECT srs_id FROM gpkg_geometry_columns WHERE table_name = ?",
                            (schema.TILES_LAYER,)).fetchone()[0])
    t0 = time.perf_counter()
    bounds = [math.inf, math.inf, -math.inf, -math.inf]
    cols = ", ".join((schema.GEOMETRY_COLUMN, *schema.TILE_COLUMNS))
    insert_tile = f"INSERT INTO {schema.TILES_LAYER} (fid, {cols}) VALUES (?, ?, ?, ?, ?, ?)"
    # GDAL's feature-count trigger would update gpkg_ogr_contents once per row: set aside, put back after.
    triggers = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? "
                          "AND sql LIKE '%INSERT%'", (schema.TILES_LAYER,)).fetchall()
    for name, _sql in triggers:
        db.execute(f'DROP TRIGGER "{name}"')
    for start in range(0, n_tiles, CHUNK):
        ids = np.arange(start, min(start + CHUNK, n_tiles), dtype=np.int64)
        rings = tile_rings(grid, ids)
        blobs = geometry_blobs(rings, srs_id)
        rows, cols_ = np.divmod(ids, grid.n_cols)
        bounds = [min(bounds[0], rings[..., 0].min()), min(bounds[1], rings[..., 1].min()),
                  max(bounds[2], rings[..., 0].max()), max(bounds[3], rings[..., 1].max())]
        db.executemany(insert_tile, zip((ids + 1).tolist(), blobs, ids.tolist(), rows.tolist(), cols_.tolist(),
                                        [1.0] * len(ids)))
    db.execute("UPDATE gpkg_contents SET min_x = ?, min_y = ?, max_x = ?, max_y = ? WHERE table_name = ?",
               (*bounds, schema.TILES_LAYER))
    db.execute("UPDATE gpkg_ogr_contents SET feature_count = ? WHERE lower(table_name) = lower(?)",
               (n_tiles, schema.TILES_LAYER))
    for _name, sql in triggers:
        db.execute(sql)
    db.commit()
    seconds["tiles"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if dtype not in schema.EMBEDDING_DTYPES:
        raise ValueError(f"dtype {dtype!r}: use one of {sorted(schema.EMBEDDING_DTYPES)}")
    rng = np.random.default_rng(seed)
    centres = cluster_centres(clusters, dim) if clusters > 0 else None  # shared by every seed: one archive
    bases = cluster_bases(clusters, dim, rank) if clusters > 0 and rank > 0 else None
    ensure_rsgeo_tables(db)
    insert_embedding = f"INSERT INTO {schema.EMBEDDINGS_TABLE} ({schema.COL_TILE_ID}, {schema.COL_EMBEDDING}) VALUES (?, ?)"
    for start in range(0, n_tiles, CHUNK):
        k = min(CHUNK, n_tiles - start)
        emb = rng.standard_normal((k, dim), dtype=np.float32)
        if centres is not None and bases is not None:
            which = rng.integers(0, len(centres), k)
            emb = centres[which] + emb * np.float32(noise / math.sqrt(dim))
            z = rng.standard_normal((k, rank), dtype=np.float32) * np.float32(spread / math.sqrt(rank))
            order = np.argsort(which, kind="stable")
            edges = np.searchsorted(which[order], np.arange(len(centres) + 1))
            for c in range(len(centres)):  # each cluster's tiles vary within its own subspace
                rows = order[edges[c] : edges[c + 1]]
                emb[rows] += z[rows] @ bases[c]
        elif centres is not None:
            emb = centres[rng.integers(0, len(centres), k)] + emb * np.float32(spread / math.sqrt(dim))
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        emb = emb.astype(schema.EMBEDDING_DTYPES[dtype], copy=False)
        db.executemany(insert_embedding, zip(range(start, start + k), emb.view(np.uint8).reshape(k, -1)))
    db.commit()
    seconds["embeddings"] = time.perf_counter() - t0

    with connect(path) as meta_db:
        set_style(meta_db, schema.TILES_LAYER, plan.style())
        set_metadata(meta_db, {
            schema.KEY_SCHEMA_VERSION: schema.SCHEMA_VERSION,
            schema.KEY_RUN: run_metadata(f"benchmarks/synthetic_result.py --tiles {n_tiles} --dim {dim}"),
            schema.KEY_MODEL: model if model is not None else model_metadata(encoder),
            schema.KEY_SCENE: {"path": None, "bytes": None, "sha256": None, "width": grid.width,
                               "height": grid.height, "count": 3, "dtypes": ["uint8"] * 3, "nodata": None,
                               "crs": crs.to_wkt(), "transform": list(grid.transform)[:6], "synthetic": True},
            schema.KEY_GRID: grid_record(grid, None).to_dict(),
            schema.KEY_READ: {"bands": [1, 2, 3], "stretch": None, "min_valid": 0.0, "gsd": None},
            schema.KEY_EMBEDDINGS: schema.EmbeddingsRecord(schema.EMBEDDINGS_TABLE, dtype, dim).to_dict(),
            schema.KEY_LAYERS: {schema.TILES_LAYER: plan.meta},
        })
    db.close()
    return seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output", type=Path)
    ap.add_argument("--tiles", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--chip", type=int, default=224, help="chip size in pixels (10 m pixels)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    args = ap.parse_args(argv)
    seconds = build_result(args.output, args.tiles, dim=args.dim, chip=args.chip, dtype=args.dtype)
    size_mb = args.output.stat().st_size / 2**20
    print(f"synthetic_result: {args.tiles} tiles x {args.dim}-d, {size_mb:.0f} MiB, "
          + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
