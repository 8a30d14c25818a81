"""A GDAL VRT mosaic is one scene, and one huge scene spreads over a cluster (issue 8).

The real RGB.byte scene (nodata collar) is cut into four GeoTIFF tiles and
stitched back with a VRT written here; GDAL reads the VRT. Encoding the mosaic
on a two-worker local Dask cluster must give exactly the tiles and embedding
bytes of the whole scene encoded on one machine.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pyogrio
import pytest
import rasterio
from rasterio.windows import Window

from tests.conftest import run_cli, shared

READ = ["--chip-size", "48", "--bands", "1,2,3"]


def cut_into_tiles(scene: Path, folder: Path, parts: int = 2) -> list[tuple[Path, Window]]:
    """Write ``parts x parts`` GeoTIFF tiles of ``scene``; return them with their windows."""
    tiles = []
    with rasterio.open(scene) as src:
        xs = np.linspace(0, src.width, parts + 1).astype(int)
        ys = np.linspace(0, src.height, parts + 1).astype(int)
        for i in range(parts):
            for j in range(parts):
                window = Window(xs[j], ys[i], xs[j + 1] - xs[j], ys[i + 1] - ys[i])
                profile = {**src.profile, "width": window.width, "height": window.height,
                           "transform": src.window_transform(window), "tiled": True,
                           "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
                path = folder / f"tile_{i}_{j}.tif"
                with rasterio.open(path, "w", **profile) as dst:
                    dst.write(src.read(window=window))
                tiles.append((path, window))
    return tiles


def write_vrt(scene: Path, tiles: list[tuple[Path, Window]], path: Path) -> None:
    """A VRT mosaic of ``tiles`` on ``scene``'s grid (what ``gdalbuildvrt`` would write)."""
    with rasterio.open(scene) as src:
        t = src.transform
        bands = []
        for b in range(1, src.count + 1):
            sources = "".join(
                f"<SimpleSource><SourceFilename relativeToVRT=\"1\">{tile.name}</SourceFilename>"
                f"<SourceBand>{b}</SourceBand>"
                f"<SrcRect xOff=\"0\" yOff=\"0\" xSize=\"{w.width}\" ySize=\"{w.height}\"/>"
                f"<DstRect xOff=\"{w.col_off}\" yOff=\"{w.row_off}\" xSize=\"{w.width}\" ySize=\"{w.height}\"/>"
                "</SimpleSource>"
                for tile, w in tiles
            )
            nodata = f"<NoDataValue>{src.nodata}</NoDataValue>" if src.nodata is not None else ""
            bands.append(f"<VRTRasterBand dataType=\"Byte\" band=\"{b}\">{nodata}{sources}</VRTRasterBand>")
        path.write_text(
            f"<VRTDataset rasterXSize=\"{src.width}\" rasterYSize=\"{src.height}\">"
            f"<SRS>{escape(src.crs.to_wkt())}</SRS>"
            f"<GeoTransform>{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}</GeoTransform>"
            + "".join(bands) + "</VRTDataset>"
        )


def embeddings(path: Path) -> list[tuple[int, bytes]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT tile_id, embedding FROM rsgeo_embeddings ORDER BY tile_id").fetchall()


@pytest.mark.slow
def test_vrt_mosaic_on_a_cluster_equals_the_whole_scene(tmp_path: Path, tiny_clip_dir: Path) -> None:
    scene = shared("RGB.byte.tif")
    vrt = tmp_path / "mosaic.vrt"
    write_vrt(scene, cut_into_tiles(scene, tmp_path), vrt)
    with rasterio.open(vrt) as mosaic, rasterio.open(scene) as whole:  # GDAL sees the same raster
        assert mosaic.transform == whole.transform and mosaic.crs == whole.crs
        assert np.array_equal(mosaic.read(), whole.read())
        assert np.array_equal(mosaic.dataset_mask(), whole.dataset_mask())

    model = ["--model", f"local-dir:{tiny_clip_dir}"]
    ref = tmp_path / "whole.gpkg"
    run_cli("embed", str(scene), "-o", str(ref), *model, *READ, "--progress", "none")
    out = tmp_path / "mosaic.gpkg"
    proc = run_cli("embed", str(vrt), "-o", str(out), *model, *READ, "--cluster", "local:2", "-v",
                   "--progress", "none")
    workers = [int(n) for n in re.findall(r"blocks on (\d+) workers", proc.stderr)]
    assert workers == [2], proc.stderr  # one scene, its blocks spread over two worker processes

    assert embeddings(out) == embeddings(ref) and len(embeddings(ref)) > 100
    a = pyogrio.read_dataframe(out, layer="tiles")
    b = pyogrio.read_dataframe(ref, layer="tiles")
    assert a.drop(columns="geometry").equals(b.drop(columns="geometry"))
    assert a.geometry.geom_equals_exact(b.geometry, tolerance=0).all()
