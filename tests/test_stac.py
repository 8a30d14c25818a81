"""A STAC item as a scene (issue 19), offline.

A static item written here points at single-band COG copies of a real Sentinel-2
scene's B04/B03/B02/B08, stored as twice the reflectance with ``raster:bands`` scale
0.5, plus its B11 (swir16) averaged to 20 m pixels; it embeds exactly as the file
given directly. The same folder is served over HTTP by a real server in another
process (range requests, as GDAL's /vsicurl/ needs, from :mod:`tests.test_remote`),
which also answers as a minimal STAC API (``/api``: a landing page and ``/search``,
GET and POST, paged one item a page) over three items of the same pixels with
different cloud cover: the item URL and ``--stac-search`` are checked against it.
Earth Search itself cannot be reached here.
"""

from __future__ import annotations

import copy
import functools
import http.server
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling

import rsgeo
from rsgeo.errors import OptionError, SceneError
from rsgeo.stac import band_assets, band_indices, read_item
from tests.conftest import ROOT, run_cli, shared
from tests.test_remote import RangeRequestHandler

SCENE = "eolearn/s2_l1c_scene2_13band.tif"
MODEL = ["--model", "test:hash", "--chip-size", "32", "--progress", "none"]
#: The search's items: id -> eo:cloud_cover.
CLOUDS = {"S2_clear": 5.0, "S2_hazy": 30.0, "S2_cloudy": 80.0}
COG = "image/tiff; application=geotiff; profile=cloud-optimized"


def item_doc(item_id: str, prefix: str, *, cloud: float | None = None) -> dict[str, Any]:
    """A STAC item over the COGs of the fixture, their hrefs relative (``prefix`` + file name)."""
    assets: dict[str, Any] = {}
    for name, key in (("blue", "B02"), ("green", "B03"), ("red", "B04"), ("nir", "B08"), ("swir16", "B11")):
        assets[key] = {"href": f"{prefix}{key}.tif", "type": COG, "eo:bands": [{"name": key, "common_name": name}],
                       "raster:bands": [{"scale": 0.5, "offset": 0.0}]}
    assets["B04-jp2"] = {**assets["B04"], "href": f"{prefix}missing.jp2", "type": "image/jp2"}  # the same band again
    assets["thumbnail"] = {"href": f"{prefix}thumb.png", "type": "image/png"}
    props: dict[str, Any] = {"datetime": "2017-01-01T00:00:00Z"}
    if cloud is not None:
        props["eo:cloud_cover"] = cloud
    return {"type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": "s2-test",
            "stac_extensions": ["https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                                "https://stac-extensions.github.io/raster/v1.1.0/schema.json"],
            "bbox": [14.5, 45.8, 14.6, 45.9], "geometry": None, "properties": props, "links": [], "assets": assets}


@pytest.fixture(scope="module")
def item(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stac")
    with rasterio.open(shared(SCENE)) as src:
        profile = src.profile | {"driver": "COG", "count": 1, "dtype": "float32"}
        for key in ("blockxsize", "blockysize", "tiled", "interleave"):
            profile.pop(key, None)
        for band, key in ((2, "B02"), (3, "B03"), (4, "B04"), (8, "B08")):
            with rasterio.open(root / f"{key}.tif", "w", **profile) as dst:
                dst.write(src.read(band) * 2.0, 1)
        width, height = src.width // 2, (src.height + 1) // 2  # 20 m pixels, as Sentinel-2's B11
        coarse = src.read(12, out_shape=(height, width), resampling=Resampling.average) * 2.0
        transform = src.transform * src.transform.scale(src.width / width, src.height / height)
        with rasterio.open(root / "B11.tif", "w", **(profile | {"width": width, "height": height, "transform": transform})) as dst:
            dst.write(coarse, 1)
    path = root / "item.json"
    path.write_text(json.dumps(item_doc("S2_scene2", "./")))
    (root / "items").mkdir()
    for item_id, cloud in CLOUDS.items():
        (root / "items" / f"{item_id}.json").write_text(json.dumps(item_doc(item_id, "../", cloud=cloud)))
    return path


# -- a minimal STAC API over the fixture's folder --------------------------------------


class StacApiHandler(RangeRequestHandler):
    """The folder's files (range requests), and a STAC API at ``/api`` over ``items/*.json``.

    ``/api/search`` takes ``collections``, ``limit`` and ``query`` (``eo:cloud_cover`` ``lte``)
    by GET or POST, and pages ``limit`` items at a time, one without it (``next`` links, as
    pystac-client follows them).
    """

    def do_GET(self) -> None:  # noqa: N802  (http.server's name)
        url = urlsplit(self.path)
        if url.path.rstrip("/") == "/api":
            return self._json(self._landing())
        if url.path == "/api/search":
            params = {k: v[0] for k, v in parse_qs(url.query).items()}
            body: dict[str, Any] = {"collections": params["collections"].split(",")} if "collections" in params else {}
            for key in ("limit", "page"):
                if key in params:
                    body[key] = int(params[key])
            if "query" in params:
                body["query"] = json.loads(params["query"])
            return self._json(self._search(body, "GET"))
        return super().do_GET()

    def do_POST(self) -> None:  # noqa: N802
        self._record()
        if urlsplit(self.path).path != "/api/search":
            return self.send_error(404, "No such endpoint")
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        return self._json(self._search(body, "POST"))

    def _base(self) -> str:
        return f"http://{self.headers['Host']}"

    def _landing(self) -> dict[str, Any]:
        api = f"{self._base()}/api"
        return {
            "type": "Catalog", "id": "test-api", "stac_version": "1.0.0", "description": "rsgeo's test STAC API",
            "conformsTo": ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search",
                           "https://api.stacspec.org/v1.0.0/item-search#query"],
            "links": [{"rel": "self", "href": api, "type": "application/json"},
                      {"rel": "root", "href": api, "type": "application/json"},
                      {"rel": "search", "href": f"{api}/search", "type": "application/geo+json", "method": "GET"},
                      {"rel": "search", "href": f"{api}/search", "type": "application/geo+json", "method": "POST"}],
        }

    def _search(self, body: dict[str, Any], method: str) -> dict[str, Any]:
        folder = Path(self.directory) / "items"
        items = []
        for path in sorted(folder.glob("*.json"), key=lambda p: list(CLOUDS).index(p.stem)):
            doc = json.loads(path.read_text())
            doc["links"] = [{"rel": "self", "href": f"{self._base()}/items/{path.name}"}]
            items.append(doc)
        if body.get("collections"):
            items = [i for i in items if i["collection"] in body["collections"]]
        most = (body.get("query") or {}).get("eo:cloud_cover", {}).get("lte")
        if most is not None:
            items = [i for i in items if i["properties"]["eo:cloud_cover"] <= most]
        page, per_page = int(body.get("page", 0)), int(body.get("limit") or 1)  # by default one a page: next links
        shown = items[page * per_page:(page + 1) * per_page]
        links = []
        if (page + 1) * per_page < len(items):
            nxt = {**body, "page": page + 1}
            if method == "POST":
                links.append({"rel": "next", "href": f"{self._base()}/api/search", "method": "POST", "body": nxt})
            else:
                query = urlencode({k: json.dumps(v) if isinstance(v, dict) else ",".join(v) if isinstance(v, list) else v
                                   for k, v in nxt.items()})
                links.append({"rel": "next", "href": f"{self._base()}/api/search?{query}", "method": "GET"})
        return {"type": "FeatureCollection", "features": shown, "links": links, "numberMatched": len(items)}

    def _json(self, doc: dict[str, Any]) -> None:
        data = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/geo+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve(folder: str) -> None:
    """Serve ``folder`` and its STAC API on 127.0.0.1 (port from the OS, printed first) until killed."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(StacApiHandler, directory=folder))
    print(server.server_address[1], flush=True)
    server.serve_forever()


@pytest.fixture(scope="module")
def www(item: Path) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` serving the fixture's folder; in another process, as rasterio holds the GIL."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.test_stac", str(item.parent)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield f"http://127.0.0.1:{int(proc.stdout.readline())}"
    finally:
        proc.kill()
        proc.wait()


def one_error_line(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("rsgeo: error: ") and "internal error" not in lines[0], lines[0]
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]}"
    return lines[0]


def embeddings(path: Path) -> np.ndarray:
    return rsgeo.open_result(path).index.embeddings.astype(np.float32)


def test_bands_found_by_common_name(item: Path) -> None:
    found = band_assets(read_item(item), str(item.parent))
    assert [f.name for f in found] == ["red", "green", "blue"] and all(f.scale == 0.5 for f in found)
    assert found[0].key == "B04"  # the COG, not the JP2 copy of the same band
    assert band_indices(item, ["nir", "red", "green"]) == (4, 3, 2)
    assert band_indices(item, ["B08", "red", "B03"]) == (4, 3, 2)  # eo:bands names and asset keys too
    with pytest.raises(SceneError, match="swir22"):
        band_assets(read_item(item), str(item.parent), ["swir22"])


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
    bad = run_cli("embed", str(item), "-o", str(tmp_path / "x.gpkg"), "--model", "test:hash", "--bands", "swir22,red,green", check=False)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "swir22" in bad.stderr


def test_assets_on_a_coarser_grid_are_resampled_onto_the_red_band(item: Path, tmp_path: Path) -> None:
    from rsgeo.scene import open_dataset

    assert band_indices(item, ["swir16", "red", "green"]) == (5, 3, 2)
    with open_dataset(item) as ds, rasterio.open(item.parent / "B11.tif") as b11, rasterio.open(shared(SCENE)) as src:
        assert (ds.width, ds.height, ds.count) == (src.width, src.height, 5) and ds.transform == src.transform
        swir = ds.read(5)
        expected = b11.read(1, out_shape=(src.height, src.width), resampling=Resampling.bilinear) * 0.5
        assert np.allclose(swir, expected, rtol=1e-5, atol=1e-6)
        original = src.read(12)  # 10 m: the 20 m average brought back is close, not equal
        assert np.corrcoef(swir.ravel(), original.ravel())[0, 1] > 0.9
    run_cli("embed", str(item), "-o", str(tmp_path / "swir.gpkg"), *MODEL, "--bands", "swir16,red,green", "-q")
    assert rsgeo.open_result(tmp_path / "swir.gpkg").metadata["read"]["bands"] == [5, 3, 2]


def test_an_asset_in_another_crs_is_warped_onto_the_red_band(item: Path, tmp_path: Path) -> None:
    """B08 reprojected here to Web Mercator (EPSG:3857), an asset beside the UTM red band: warped back, bilinear."""
    from rasterio.warp import calculate_default_transform, reproject

    from rsgeo.scene import open_dataset

    with rasterio.open(shared(SCENE)) as src:
        transform, width, height = calculate_default_transform(src.crs, "EPSG:3857", src.width, src.height, *src.bounds)
        mercator = np.full((height, width), np.nan, np.float32)
        reproject(src.read(8) * 2.0, mercator, src_transform=src.transform, src_crs=src.crs, dst_transform=transform,
                  dst_crs="EPSG:3857", resampling=Resampling.bilinear, dst_nodata=np.nan)
        profile = {"driver": "COG", "count": 1, "dtype": "float32", "nodata": np.nan, "width": width, "height": height,
                   "crs": "EPSG:3857", "transform": transform}
        with rasterio.open(item.parent / "B08_3857.tif", "w", **profile) as dst:
            dst.write(mercator, 1)
        doc = item_doc("S2_warped", "./")
        doc["assets"]["B08"]["href"] = "./B08_3857.tif"
        path = item.parent / "warped.json"
        path.write_text(json.dumps(doc))
        assert band_indices(path, ["nir", "red", "green"]) == (4, 3, 2)  # no longer left out
        with open_dataset(path) as ds:
            assert (ds.width, ds.height, ds.count) == (src.width, src.height, 5) and ds.transform == src.transform
            nir = ds.read(4)
            assert np.isnan(ds.nodatavals[3])  # outside the asset: nodata
        back = np.full((src.height, src.width), np.nan, np.float32)  # the same warp, by rasterio.warp
        reproject(mercator, back, src_transform=transform, src_crs="EPSG:3857", dst_transform=src.transform,
                  dst_crs=src.crs, resampling=Resampling.bilinear, src_nodata=np.nan, dst_nodata=np.nan)
        valid = np.isfinite(nir) & np.isfinite(back)
        assert valid.mean() > 0.95
        assert np.allclose(nir[valid], back[valid] * 0.5, rtol=1e-5, atol=1e-6)
        assert np.corrcoef(nir[valid], src.read(8)[valid])[0, 1] > 0.95  # there and back again: close to B08
    out = tmp_path / "warped.gpkg"
    run_cli("embed", str(path), "-o", str(out), *MODEL, "--bands", "nir,red,green", "-q")
    assert rsgeo.open_result(out).metadata["read"]["bands"] == [4, 3, 2] and len(embeddings(out)) > 1


def visual_cog(folder: Path) -> Path:
    """``folder/visual.tif``: a true-colour 3-band uint8 COG of the scene's B04, B03, B02, as Sentinel-2's TCI is
    (reflectance 0 to 0.3 as 1 to 255, nodata 0)."""
    path = folder / "visual.tif"
    if not path.exists():
        with rasterio.open(shared(SCENE)) as src:
            tci = np.clip(np.rint(src.read([4, 3, 2]) / 0.3 * 255), 1, 255).astype(np.uint8)
            profile = {"driver": "COG", "count": 3, "dtype": "uint8", "nodata": 0, "width": src.width,
                       "height": src.height, "crs": src.crs, "transform": src.transform}
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(tci)
    return path


def visual_asset(*, key: str = "visual", eo_bands: bool = True) -> dict[str, Any]:
    """The visual asset as Earth Search describes it (roles visual; eo:bands red, green, blue)."""
    asset: dict[str, Any] = {"href": "./visual.tif", "type": COG, "roles": ["visual"]}
    if eo_bands:
        asset["eo:bands"] = [{"name": c, "common_name": c} for c in ("red", "green", "blue")]
    return {key: asset, f"{key}-jp2": {**asset, "href": "./missing.jp2", "type": "image/jp2"}}


def test_an_item_whose_only_rgb_is_its_visual_asset_embeds_as_that_file(item: Path, tmp_path: Path) -> None:
    from rsgeo.scene import open_dataset

    direct = tmp_path / "direct.gpkg"
    run_cli("embed", str(visual_cog(item.parent)), "-o", str(direct), *MODEL, "-q")
    for name, assets in (("visual", visual_asset()), ("tci", visual_asset(key="TCI", eo_bands=False))):
        doc = item_doc(f"S2_{name}", "./")
        doc["assets"] = {"B08": doc["assets"]["B08"], **assets}  # no single-band red, green or blue
        path = item.parent / f"{name}.json"
        path.write_text(json.dumps(doc))
        assert band_indices(path, ["visual"]) == band_indices(path, ["red", "green", "blue"]) == (2, 3, 4)
        assert band_indices(path, ["nir", "red", "green"]) == (1, 2, 3)
        with open_dataset(path) as ds, rasterio.open(item.parent / "visual.tif") as tci:
            assert ds.dtypes[1:] == ("uint8",) * 3 and ds.transform == tci.transform  # 8-bit: no stretch, as the file
            assert [c.name for c in ds.colorinterp] == ["gray", "red", "green", "blue"]
            assert np.array_equal(ds.read([2, 3, 4]), tci.read())
        out = tmp_path / f"{name}.gpkg"
        run_cli("embed", str(path), "-o", str(out), *MODEL, "-q")
        assert rsgeo.open_result(out).metadata["read"]["bands"] == [2, 3, 4]
        assert np.array_equal(embeddings(out), embeddings(direct)) and len(embeddings(out)) > 1


def test_single_band_assets_are_the_default_and_bands_visual_picks_the_visual_asset(item: Path, tmp_path: Path) -> None:
    visual_cog(item.parent)
    doc = item_doc("S2_both", "./")
    doc["assets"] |= visual_asset()
    path = item.parent / "both.json"
    path.write_text(json.dumps(doc))
    assert band_indices(path, ["red", "green", "blue"]) == (3, 2, 1)  # the single-band assets first
    assert band_indices(path, ["visual"]) == (6, 7, 8)
    scene, tci = tmp_path / "scene.gpkg", tmp_path / "tci.gpkg"
    run_cli("embed", str(shared(SCENE)), "-o", str(scene), *MODEL, "--bands", "4,3,2", "-q")
    run_cli("embed", str(item.parent / "visual.tif"), "-o", str(tci), *MODEL, "-q")
    assert not np.allclose(embeddings(scene), embeddings(tci), atol=1e-3)  # the TCI's 8 bits tell them apart
    default, visual = tmp_path / "default.gpkg", tmp_path / "visual.gpkg"
    run_cli("embed", str(path), "-o", str(default), *MODEL, "-q")
    run_cli("embed", str(path), "-o", str(visual), *MODEL, "--bands", "visual", "-q")
    assert np.allclose(embeddings(default), embeddings(scene), atol=1e-6)
    assert np.array_equal(embeddings(visual), embeddings(tci))
    assert rsgeo.open_result(visual).metadata["read"]["bands"] == [6, 7, 8]
    bad = run_cli("embed", str(item), "-o", str(tmp_path / "x.gpkg"), *MODEL, "--bands", "visual", check=False)
    one_error_line(bad, "STAC item 'S2_scene2' has no visual asset", "--bands red,green,blue")


def test_an_item_url_embeds_as_the_local_item(item: Path, www: str, tmp_path: Path) -> None:
    a, b = tmp_path / "local.gpkg", tmp_path / "url.gpkg"
    run_cli("embed", str(item), "-o", str(a), *MODEL, "--bands", "nir,red,green")
    run_cli("embed", f"{www}/item.json", "-o", str(b), *MODEL, "--bands", "nir,red,green")
    assert np.allclose(embeddings(a), embeddings(b), atol=1e-6) and len(embeddings(a)) > 1
    scene = rsgeo.open_result(b).metadata["scene"]
    assert scene["stac_item_id"] == "S2_scene2" and scene["path"] == f"{www}/item.json" and "fingerprint" in scene


def test_stac_search_writes_one_result_per_item_within_the_cloud_cover(item: Path, www: str, tmp_path: Path) -> None:
    ref = tmp_path / "local.gpkg"
    run_cli("embed", str(item), "-o", str(ref), *MODEL)
    out = tmp_path / "found"
    out.mkdir()
    done = run_cli("classify", "--stac-search", f"{www}/api", "--collection", "s2-test", "--max-cloud", "50",
                   "--bbox", "14,45,15,46", "-o", str(out), *MODEL, "--classes", "forest,water,urban area")
    assert done.stderr.strip().splitlines()[-1] == f"rsgeo: wrote 2 results to {out} (one per STAC item)"
    assert sorted(p.name for p in out.glob("*.gpkg")) == ["S2_clear.gpkg", "S2_hazy.gpkg"]
    for name in ("S2_clear", "S2_hazy"):
        result = rsgeo.open_result(out / f"{name}.gpkg")
        assert result.metadata["scene"]["stac_item_id"] == name
        assert "landcover" in result.metadata["layers"]
        assert np.allclose(embeddings(out / f"{name}.gpkg"), embeddings(ref), atol=1e-6)
    kept = out / ".stac-items" / "S2_clear.json"
    assert json.loads(kept.read_text())["assets"]["B04"]["href"] == f"{www}/B04.tif"  # resolved against the self link
    before = kept.stat().st_mtime_ns
    run_cli("classify", "--stac-search", f"{www}/api", "--collection", "s2-test", "--max-cloud", "50",
            "-o", str(out), *MODEL, "--classes", "forest,water,urban area", "--resume")
    assert kept.stat().st_mtime_ns == before  # the same item, the same scene file: --resume knows it
    finished = (out / "S2_clear.gpkg").stat().st_mtime_ns
    (out / "S2_hazy.gpkg").unlink()  # as if the run had stopped before this item
    run_cli("classify", "--stac-search", f"{www}/api", "--collection", "s2-test", "--max-cloud", "50",
            "-o", str(out), *MODEL, "--classes", "forest,water,urban area", "--resume")
    assert (out / "S2_hazy.gpkg").is_file() and (out / "S2_clear.gpkg").stat().st_mtime_ns == finished


def test_stac_search_merges_the_items_when_asked(item: Path, www: str, tmp_path: Path) -> None:
    """``--merge``: every item's layers also in one GeoPackage, with the scene (item) of each row."""
    import pyogrio

    out = tmp_path / "found"
    out.mkdir()
    merged = tmp_path / "merged.gpkg"
    run_cli("classify", "--stac-search", f"{www}/api", "--collection", "s2-test", "--max-cloud", "50",
            "-o", str(out), "--merge", str(merged), *MODEL, "--classes", "forest,water")
    frame = pyogrio.read_dataframe(merged, layer="landcover")
    per_item = {n: len(pyogrio.read_dataframe(out / f"{n}.gpkg", layer="landcover")) for n in ("S2_clear", "S2_hazy")}
    assert frame["scene"].value_counts().to_dict() == per_item
    for args, words in ((["--mosaic", "-o", str(tmp_path / "m.gpkg"), "--merge", str(merged)], ("--mosaic", "--merge")),
                        (["-o", str(out), "--merge-crs", "EPSG:3857"], ("--merge-crs", "--merge"))):
        proc = run_cli("embed", "--stac-search", f"{www}/api", *args, *MODEL, check=False)
        one_error_line(proc, *words)


def test_stac_search_by_get_takes_max_items(item: Path, www: str, tmp_path: Path) -> None:
    import pystac_client

    api = pystac_client.Client.open(f"{www}/api")
    found = api.search(collections=["s2-test"], method="GET", max_items=3)
    assert [i["id"] for i in found.items_as_dicts()] == list(CLOUDS)  # GET paging, one item a page
    pages = list(api.search(collections=["s2-test"], method="GET", limit=2).pages_as_dicts())
    assert [[i["id"] for i in p["features"]] for p in pages] == [["S2_clear", "S2_hazy"], ["S2_cloudy"]]
    out = tmp_path / "found"
    out.mkdir()
    run_cli("query", "--stac-search", f"{www}/api", "--max-items", "1", "-o", str(out), *MODEL, "--text", "a river", "-q")
    assert [p.name for p in out.glob("*.gpkg")] == ["S2_clear.gpkg"]
    assert "query_a_river" in rsgeo.open_result(out / "S2_clear.gpkg").metadata["layers"]


def test_bbox_in_another_crs_is_searched_in_degrees() -> None:
    from pyproj import Transformer

    from rsgeo.stac_search import parse_bbox

    assert parse_bbox("14,45,15,46") == (14.0, 45.0, 15.0, 46.0)
    west, south, east, north = parse_bbox("500000,5000000,510000,5010000", "EPSG:32633")
    assert west == pytest.approx(15.0)  # x = 500000 is UTM 33N's central meridian, 15° E
    to_lonlat = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    for x in (500000, 505000, 510000):
        for y in (5000000, 5010000):
            lon, lat = to_lonlat.transform(x, y)
            assert west - 1e-9 <= lon <= east + 1e-9 and south - 1e-9 <= lat <= north + 1e-9


@pytest.mark.parametrize("case", ["no-items", "missing-band", "unreachable-item", "unreachable-api"])
def test_stac_mistakes_are_one_line_and_write_nothing(item: Path, www: str, tmp_path: Path, case: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    search = ["--stac-search", f"{www}/api", "-o", str(out), *MODEL]
    if case == "no-items":
        proc = run_cli("embed", *search, "--collection", "no-such-collection", check=False)
        one_error_line(proc, "found no items", "collections no-such-collection", "--collection")
    elif case == "missing-band":
        proc = run_cli("embed", *search, "--bands", "swir22,red,green", check=False)
        one_error_line(proc, "S2_clear", "no band swir22", "swir16")
    elif case == "unreachable-item":
        proc = run_cli("embed", "http://127.0.0.1:9/item.json", "-o", str(out / "x.gpkg"), *MODEL, check=False)
        one_error_line(proc, "cannot fetch the STAC item http://127.0.0.1:9/item.json", "check the URL")
    else:
        proc = run_cli("query", "--stac-search", "http://127.0.0.1:9/api", "-o", str(out), *MODEL, "--text", "a", check=False)
        one_error_line(proc, "the STAC search at http://127.0.0.1:9/api failed", "check the URL")
    assert list(out.iterdir()) == []


def test_a_mosaic_of_two_halves_is_the_whole_scene(tmp_path: Path) -> None:
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    from rsgeo.scene import open_dataset
    from rsgeo.stac_mosaic import mosaic_item

    paths = []
    with rasterio.open(shared(SCENE)) as src:
        full = src.read([2, 3, 4])
        for side, window in (("left", Window(0, 0, 50, src.height)), ("right", Window(50, 0, src.width - 50, src.height))):
            (tmp_path / side).mkdir()
            profile = src.profile | {"driver": "GTiff", "count": 1, "width": int(window.width),
                                     "height": int(window.height), "transform": window_transform(window, src.transform)}
            for band, key in ((2, "B02"), (3, "B03"), (4, "B04")):
                with rasterio.open(tmp_path / side / f"{key}.tif", "w", **profile) as dst:
                    dst.write(src.read(band, window=window) * 2.0, 1)
            doc = item_doc(f"S2_{side}", "./")
            doc["assets"] = {k: v for k, v in doc["assets"].items() if k in ("B02", "B03", "B04")}
            (tmp_path / side / "item.json").write_text(json.dumps(doc))
            paths.append(tmp_path / side / "item.json")
        mosaic, written = mosaic_item(paths, tmp_path / "mosaic", "both")
        assert mosaic in written and read_item(mosaic)["id"] == "mosaic of S2_left, S2_right"
        with open_dataset(mosaic) as ds:
            assert (ds.width, ds.height, ds.count) == (src.width, src.height, 3)
            assert ds.transform.almost_equals(src.transform)
            assert np.allclose(ds.read(), full, rtol=1e-6)
    assert mosaic_item(paths, tmp_path / "mosaic", "both")[1] == []  # unchanged: nothing rewritten (--resume)
    with pytest.raises(OptionError, match="no nodata value"):  # a gap between the halves, and no nodata to mark it
        with rasterio.open(tmp_path / "right" / "B04.tif", "r+") as f:
            f.transform = f.transform * f.transform.translation(5, 0)
        mosaic_item(paths, tmp_path / "mosaic", "gap")


def test_stac_search_mosaic_is_one_result_naming_its_items(item: Path, www: str, tmp_path: Path) -> None:
    ref = tmp_path / "local.gpkg"
    run_cli("embed", str(item), "-o", str(ref), *MODEL, "--bands", "swir16,red,green")
    out = tmp_path / "mosaic.gpkg"
    done = run_cli("embed", "--stac-search", f"{www}/api", "--mosaic", "-o", str(out), *MODEL, "--bands", "swir16,red,green")
    assert done.stderr.strip().splitlines()[-1] == f"rsgeo: wrote {out} (a mosaic of 3 STAC items)"
    assert rsgeo.open_result(out).metadata["scene"]["stac_item_id"] == "mosaic of S2_clear, S2_hazy, S2_cloudy"
    assert np.allclose(embeddings(out), embeddings(ref), atol=1e-6)  # three items of the same pixels
    assert sorted(p.name for p in tmp_path.glob("*.gpkg")) == ["local.gpkg", "mosaic.gpkg"]


def test_a_visual_asset_in_another_crs_is_warped_band_by_band(item: Path) -> None:
    """The 8-bit TCI reprojected to Web Mercator beside UTM single-band assets: its three bands warped, still 8-bit."""
    from rasterio.warp import calculate_default_transform, reproject

    from rsgeo.scene import open_dataset

    with rasterio.open(visual_cog(item.parent)) as tci:
        transform, width, height = calculate_default_transform(tci.crs, "EPSG:3857", tci.width, tci.height, *tci.bounds)
        mercator = np.zeros((3, height, width), np.uint8)
        reproject(tci.read(), mercator, src_transform=tci.transform, src_crs=tci.crs, dst_transform=transform,
                  dst_crs="EPSG:3857", resampling=Resampling.nearest, src_nodata=0, dst_nodata=0)
        profile = {"driver": "GTiff", "count": 3, "dtype": "uint8", "nodata": 0, "width": width, "height": height,
                   "crs": "EPSG:3857", "transform": transform}
        with rasterio.open(item.parent / "visual_3857.tif", "w", **profile) as dst:
            dst.write(mercator)
        doc = item_doc("S2_visual_3857", "./")
        doc["assets"] |= visual_asset()
        doc["assets"]["visual"]["href"] = "./visual_3857.tif"
        path = item.parent / "visual_3857.json"
        path.write_text(json.dumps(doc))
        assert band_indices(path, ["visual"]) == (6, 7, 8)
        with open_dataset(path) as ds:
            assert ds.transform == tci.transform and ds.dtypes[5:] == ("uint8",) * 3
            got = ds.read([6, 7, 8])
        back = np.zeros((3, tci.height, tci.width), np.uint8)
        reproject(mercator, back, src_transform=transform, src_crs="EPSG:3857", dst_transform=tci.transform,
                  dst_crs=tci.crs, resampling=Resampling.bilinear, src_nodata=0, dst_nodata=0)
        assert np.array_equal(got, back) and (got > 0).mean() > 0.95

if __name__ == "__main__":
    serve(sys.argv[1])
