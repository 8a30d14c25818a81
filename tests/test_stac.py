"""A STAC item as a scene (issue 19), offline: a static item written here points at
single-band COG copies of a real Sentinel-2 scene's B04/B03/B02, stored as twice the
reflectance with ``raster:bands`` scale 0.5, and embeds exactly as the file given directly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

import rsgeo
from rsgeo.errors import SceneError
from rsgeo.stac import band_assets, band_indices, read_item
from tests.conftest import run_cli, shared

SCENE = "eolearn/s2_l1c_scene2_13band.tif"


@pytest.fixture(scope="module")
def item(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stac")
    assets = {}
    with rasterio.open(shared(SCENE)) as src:
        profile = src.profile | {"driver": "COG", "count": 1, "dtype": "float32"}
        profile.pop("blockxsize", None), profile.pop("blockysize", None), profile.pop("tiled", None)
        profile.pop("interleave", None)
        for name, band, key in (("blue", 2, "B02"), ("green", 3, "B03"), ("red", 4, "B04"), ("nir", 8, "B08")):
            with rasterio.open(root / f"{key}.tif", "w", **profile) as dst:
                dst.write(src.read(band) * 2.0, 1)
            assets[key] = {"href": f"./{key}.tif", "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                           "eo:bands": [{"name": key, "common_name": name}],
                           "raster:bands": [{"scale": 0.5, "offset": 0.0}]}
    doc = {"type": "Feature", "stac_version": "1.0.0", "id": "S2_scene2",
           "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                               "https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
           "geometry": None, "properties": {"datetime": "2017-01-01T00:00:00Z"}, "links": [], "assets": assets}
    path = root / "item.json"
    path.write_text(json.dumps(doc))
    return path


def test_bands_found_by_common_name(item: Path) -> None:
    found = band_assets(read_item(item), str(item.parent))
    assert [f.name for f in found] == ["red", "green", "blue"] and all(f.scale == 0.5 for f in found)
    assert band_indices(item, ["nir", "red", "green"]) == (4, 3, 2)
    assert band_indices(item, ["B08", "red", "B03"]) == (4, 3, 2)  # eo:bands names and asset keys too
    with pytest.raises(SceneError, match="swir16"):
        band_assets(read_item(item), str(item.parent), ["swir16"])


def test_item_embeds_as_the_file_itself(item: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "direct.gpkg", tmp_path / "stac.gpkg"
    run_cli("embed", str(shared(SCENE)), "-o", str(a), "--model", "test:hash", "--chip-size", "32", "--bands", "4,3,2", "-q")
    run_cli("embed", str(item), "-o", str(b), "--model", "test:hash", "--chip-size", "32", "-q")
    ea, eb = rsgeo.open_result(a).index, rsgeo.open_result(b).index
    assert rsgeo.open_result(b).metadata["scene"]["stac_item_id"] == "S2_scene2"
    assert ea.tile_ids.tolist() == eb.tile_ids.tolist()
    assert not np.allclose(ea.embeddings[0], ea.embeddings[-1])  # the test encoder sees the pixels
    assert np.allclose(ea.embeddings.astype(np.float32), eb.embeddings.astype(np.float32), atol=1e-6)


def test_bands_by_common_name_on_the_command_line(item: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "direct.gpkg", tmp_path / "stac.gpkg"
    run_cli("embed", str(shared(SCENE)), "-o", str(a), "--model", "test:hash", "--chip-size", "32", "--bands", "8,4,3", "-q")
    run_cli("embed", str(item), "-o", str(b), "--model", "test:hash", "--chip-size", "32", "--bands", "nir,red,green", "-q")
    ea, eb = rsgeo.open_result(a).index, rsgeo.open_result(b).index
    assert np.allclose(ea.embeddings.astype(np.float32), eb.embeddings.astype(np.float32), atol=1e-6)
    bad = run_cli("embed", str(item), "-o", str(tmp_path / "x.gpkg"), "--model", "test:hash", "--bands", "swir16,red,green", check=False)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "swir16" in bad.stderr
