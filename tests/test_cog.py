"""rsgeo.cog: COGs written atomically with colour table, category names, descriptions, overviews."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rio_cogeo.cogeo import cog_validate

from rsgeo.cog import CogOptions, remove_raster, write_cog
from rsgeo.definitions.schema import RasterRecord, temporary_raster_name
from tests.conftest import shared


def _classes(shape: tuple[int, int], n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, shape).astype(np.uint8)


def test_paletted_cog_is_valid_with_colours_names_and_overviews(tmp_path: Path) -> None:
    with rasterio.open(shared("RGB.byte.tif")) as src:
        crs, transform = src.crs, src.transform * Affine.scale(4)
    data = _classes((180, 200), 3)
    data[:10, :10] = 255
    colours = {0: (31, 119, 180), 1: (255, 127, 14, 255), 2: (44, 160, 44)}
    out = write_cog(
        tmp_path / "classes.tif", data, transform=transform, crs=crs, nodata=255, colormap=colours,
        category_names=["water", "forest", "urban"], descriptions=["top_class"],
        options=CogOptions(blocksize=64, overview_count=2), qml="<qgis/>",
    )
    valid, errors, _ = cog_validate(str(out))
    assert valid, errors
    with rasterio.open(out) as ds:
        assert ds.crs == crs and ds.transform.almost_equals(transform)
        assert ds.nodata == 255 and ds.dtypes == ("uint8",)
        assert ds.overviews(1) == [2, 4]
        np.testing.assert_array_equal(ds.read(1), data)
        cmap = ds.colormap(1)
        assert cmap[0] == (31, 119, 180, 255) and cmap[1] == (255, 127, 14, 255) and cmap[2] == (44, 160, 44, 255)
        assert ds.descriptions == ("top_class",)
        assert str(out) + ".aux.xml" in ds.files  # GDAL picked up the category names' sidecar
    cats = ET.parse(str(out) + ".aux.xml").findall("./PAMRasterBand/CategoryNames/Category")
    assert [c.text for c in cats] == ["water", "forest", "urban"]
    assert out.with_suffix(".qml").read_text() == "<qgis/>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.qml", "classes.tif", "classes.tif.aux.xml"]


def test_float_bands_rotated_transform_nan_nodata(tmp_path: Path) -> None:
    rotated = Affine.translation(1000, 2000) * Affine.rotation(30) * Affine.scale(10, -10)
    data = np.random.default_rng(1).random((2, 70, 90), dtype=np.float32)
    data[:, 0, :] = np.nan
    out = write_cog(
        tmp_path / "s.tif", data, transform=rotated, crs="EPSG:32633", nodata=float("nan"),
        descriptions=["a cat", "a dog"], options=CogOptions(resampling="average"),
    )
    assert cog_validate(str(out))[0]
    with rasterio.open(out) as ds:
        assert ds.transform.almost_equals(rotated)
        assert ds.descriptions == ("a cat", "a dog") and np.isnan(ds.nodata)
        np.testing.assert_array_equal(ds.read(), data)  # NaN compares equal in assert_array_equal


def test_rewrite_replaces_stale_sidecars_and_failures_leave_target(tmp_path: Path) -> None:
    t = Affine.translation(500, 800) * Affine.scale(2, -2)
    target = tmp_path / "r.tif"
    write_cog(target, _classes((20, 20), 2), transform=t, crs=None, colormap={0: (0, 0, 0), 1: (9, 9, 9)},
              category_names=["a", "b"], qml="<qgis/>")
    write_cog(target, np.ones((20, 20), np.float32), transform=t, crs=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.tif"]  # old names and style gone
    before = target.read_bytes()
    with pytest.raises(ValueError):
        write_cog(target, np.ones((2, 3, 4, 5), np.float32), transform=t, crs=None)
    with pytest.raises(ValueError):  # colour table on a float band: refused before anything is written
        write_cog(target, np.ones((4, 4), np.float32), transform=t, crs=None, colormap={0: (1, 2, 3)})
    assert target.read_bytes() == before
    # a temporary file left by a killed process (a pid that is not running) is removed by the next write
    dead = tmp_path / temporary_raster_name(target, 2**22 + 12345)
    dead.write_bytes(b"x")
    write_cog(target, np.zeros((5, 5), np.float32), transform=t, crs=None)
    assert not dead.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    remove_raster(target)
    assert list(tmp_path.iterdir()) == []


def test_raster_record_round_trips_nan_nodata() -> None:
    rec = RasterRecord(name="x", path="a_x.tif", layer="landcover", kind="scores", bands=("w", "f"),
                       dtype="float32", cell_px=32, nodata=float("nan"))
    back = RasterRecord.from_dict("x", rec.to_dict())
    assert back.bands == rec.bands and back.nodata is not None and np.isnan(back.nodata)
    assert os.path.basename(back.path) == "a_x.tif"
