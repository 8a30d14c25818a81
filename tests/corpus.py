"""Broken and odd inputs for the corpus tests, generated on the fly (issue 7).

Every scene here is written by a small function into a folder the test owns
(pytest's ``tmp_path``); nothing is committed. The default scene is a 3-band
``uint8`` GeoTIFF of ``WIDTH`` x ``HEIGHT`` pixels at 10 m in UTM 33N, tiled in
64-pixel blocks, so that ``--chip-size 64`` cuts it into a 4 x 3 grid of chips.

Each maker takes the folder first and returns the path it wrote; keyword
arguments override what makes the case odd only where a test needs it.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin
from rasterio.windows import Window

WIDTH, HEIGHT = 256, 192
CHIP = 64
UTM = "EPSG:32633"
TRANSFORM = from_origin(500_000.0, 4_000_000.0, 10.0, 10.0)
#: A CRS that has no EPSG code: Lambert conformal conic with made-up parallels.
CUSTOM_CRS = "+proj=lcc +lat_0=40 +lon_0=13.5 +lat_1=38.5 +lat_2=43.25 +x_0=700000 +y_0=150000 +ellps=GRS80 +units=m +no_defs"


def pattern(count: int, height: int, width: int, dtype: str = "uint8", *, seed: int = 0) -> np.ndarray:
    """A reproducible scene: gradients plus noise, spanning most of ``dtype``'s useful range."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    bands = []
    for b in range(count):
        base = 0.5 + 0.35 * np.sin(xx / (17.0 + 5 * b) + b) * np.cos(yy / (23.0 + 3 * b))
        bands.append(np.clip(base + rng.normal(0, 0.05, (height, width)), 0, 1))
    unit = np.stack(bands)
    kind = np.dtype(dtype)
    if kind == np.uint8:
        return np.rint(unit * 255).astype(kind)
    if kind == np.uint16:  # reflectance-like digital numbers
        return np.rint(unit * 8000 + 100).astype(kind)
    if kind == np.int16:  # e.g. a difference product: negative values are data
        return np.rint(unit * 6000 - 3000).astype(kind)
    return (unit * 0.4 - 0.02).astype(kind)  # floating reflectance, slightly negative in places


def write(
    path: Path,
    data: np.ndarray,
    *,
    crs: Any = UTM,
    transform: Affine | None = TRANSFORM,
    nodata: float | None = None,
    colorinterp: list[ColorInterp] | None = None,
    mask: np.ndarray | None = None,
    block: int | None = 64,
    gcps: list[GroundControlPoint] | None = None,
    **creation: Any,
) -> Path:
    """Write ``data`` ``(bands, rows, cols)`` as a GeoTIFF; ``mask`` is an internal per-dataset mask."""
    count, height, width = data.shape
    profile: dict[str, Any] = {
        "driver": "GTiff", "width": width, "height": height, "count": count, "dtype": data.dtype.name, "crs": crs, "nodata": nodata
    }
    if transform is not None:
        profile["transform"] = transform
    if block is not None and width >= 16 and height >= 16:
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    profile.update(creation)
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        warnings.catch_warnings(action="ignore", category=NotGeoreferencedWarning),
        rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
        rasterio.open(path, "w", **profile) as ds,
    ):
        ds.write(data)
        if colorinterp is not None:
            ds.colorinterp = colorinterp
        if mask is not None:
            ds.write_mask(np.where(mask, 255, 0).astype(np.uint8))
        if gcps is not None:
            ds.gcps = (gcps, crs)
    return path


# -- files that are not (complete) rasters ------------------------------------


def not_a_raster(directory: Path) -> Path:
    path = directory / "notes.tif"
    path.write_text("these are my field notes, not a GeoTIFF\n")
    return path


def empty_file(directory: Path) -> Path:
    """A download or copy that has just started: zero bytes."""
    path = directory / "empty.tif"
    path.write_bytes(b"")
    return path


def truncated_header(directory: Path) -> Path:
    """A copy cut off inside the TIFF header."""
    full = rgb(directory, "full_for_header.tif")
    path = directory / "cut_header.tif"
    path.write_bytes(full.read_bytes()[:100])
    return path


def truncated_tiles(directory: Path, *, keep: float = 0.6) -> Path:
    """A cloud-optimised GeoTIFF cut off partway: its header (written first in a
    COG) is complete, so GDAL opens it, but the last tiles are missing."""
    src = rgb(directory, "cog_source.tif")
    cog = directory / "cog_full.tif"
    rasterio.shutil.copy(src, cog, driver="COG", blocksize=64, compress="deflate", overviews="NONE")
    data = cog.read_bytes()
    path = directory / "copying.tif"
    path.write_bytes(data[: int(len(data) * keep)])
    return path


# -- georeferencing ------------------------------------------------------------


def rgb(directory: Path, name: str = "rgb.tif", **kw: Any) -> Path:
    """The default, well-formed scene (see module docstring)."""
    data = kw.pop("data", None)
    if data is None:
        data = pattern(3, kw.pop("height", HEIGHT), kw.pop("width", WIDTH), "uint8", seed=kw.pop("seed", 0))
    return write(directory / name, data, **kw)


def stac_item(directory: Path, names: tuple[str, ...] = ("red", "green", "blue")) -> Path:
    """A STAC item JSON over single-band GeoTIFFs of the default scene, one asset per common name in ``names``."""
    import json

    data = pattern(3, HEIGHT, WIDTH, "uint8")
    assets = {}
    for i, name in enumerate(names):
        write(directory / f"{name}.tif", data[i % 3][None])
        assets[name] = {"href": f"{name}.tif", "type": "image/tiff; application=geotiff",
                        "eo:bands": [{"name": name, "common_name": name}]}
    path = directory / "item.json"
    path.write_text(json.dumps({"type": "Feature", "stac_version": "1.0.0", "id": "corpus-item", "geometry": None,
                                "properties": {"datetime": "2024-01-01T00:00:00Z"}, "links": [], "assets": assets}))
    return path


def no_crs(directory: Path) -> Path:
    return rgb(directory, "no_crs.tif", crs=None)


def no_transform(directory: Path) -> Path:
    return rgb(directory, "no_transform.tif", transform=None)


def gcps_only(directory: Path) -> Path:
    """Georeferenced by ground control points, without a geotransform."""
    gcps = [
        GroundControlPoint(row=0, col=0, x=500_000, y=4_000_000),
        GroundControlPoint(row=0, col=WIDTH, x=502_560, y=4_000_000),
        GroundControlPoint(row=HEIGHT, col=0, x=500_000, y=3_998_080),
    ]
    return rgb(directory, "gcps.tif", transform=None, gcps=gcps)


#: 30 degrees rotation, 10 m pixels.
ROTATED = Affine.translation(500_000.0, 4_000_000.0) * Affine.rotation(30.0) * Affine.scale(10.0, -10.0)
#: A sheared grid (non-orthogonal pixel axes).
SHEARED = Affine(10.0, 3.0, 500_000.0, 2.0, -10.0, 4_000_000.0)


def rotated(directory: Path) -> Path:
    return rgb(directory, "rotated.tif", transform=ROTATED)


def sheared(directory: Path) -> Path:
    return rgb(directory, "sheared.tif", transform=SHEARED)


def geographic(directory: Path) -> Path:
    """EPSG:4326, about 10 m pixels at 52 degrees north."""
    return rgb(directory, "wgs84.tif", crs="EPSG:4326", transform=from_origin(13.0, 52.5, 0.0001, 0.0001))


def crs_without_epsg(directory: Path) -> Path:
    return rgb(directory, "custom_crs.tif", crs=CUSTOM_CRS)


# -- bands and data types -------------------------------------------------------


def bands(directory: Path, count: int, dtype: str = "uint8") -> Path:
    """``count`` bands; colour interpretation is what GDAL gives by default
    (grey + undefined, except 3 and 4 bands of uint8: RGB and RGBA)."""
    return write(directory / f"bands{count}_{dtype}.tif", pattern(count, HEIGHT, WIDTH, dtype))


def sentinel2_like(directory: Path) -> Path:
    """13 uint16 bands in Sentinel-2 order (B1..B12 with B8A), no colour interpretation."""
    return write(directory / "s2_13bands.tif", pattern(13, HEIGHT, WIDTH, "uint16"), nodata=0)


def typed(directory: Path, dtype: str, *, nan_block: bool = False) -> Path:
    """3 bands of ``dtype`` (RGB order). ``nan_block`` fills the chip at grid
    position row 1, col 2 with NaN (no nodata value is set: NaN is invalid by itself)."""
    data = pattern(3, HEIGHT, WIDTH, dtype)
    if nan_block:
        data[:, CHIP : 2 * CHIP, 2 * CHIP : 3 * CHIP] = np.nan
    return write(directory / f"{dtype}{'_nan' if nan_block else ''}.tif", data)


# -- validity: nodata, masks, alpha ---------------------------------------------------


def all_nodata(directory: Path, dtype: str = "uint8") -> Path:
    """Every pixel equals the nodata value (or NaN for floats, without a nodata tag)."""
    if np.dtype(dtype).kind == "f":
        data = np.full((3, HEIGHT, WIDTH), np.nan, dtype)
        return write(directory / f"all_nan_{dtype}.tif", data)
    data = np.zeros((3, HEIGHT, WIDTH), dtype)
    return write(directory / f"all_nodata_{dtype}.tif", data, nodata=0)


EDGE = 40  # width of the nodata border of ``nodata_edges``


def nodata_edges(directory: Path, dtype: str = "uint16") -> Path:
    """Valid data inside a nodata frame ``EDGE`` pixels wide (like a reprojected scene)."""
    data = pattern(3, HEIGHT, WIDTH, dtype)
    data = np.maximum(data, 1)  # nodata 0 appears only where we put it
    data[:, :EDGE] = 0
    data[:, -EDGE:] = 0
    data[:, :, :EDGE] = 0
    data[:, :, -EDGE:] = 0
    return write(directory / f"nodata_edges_{dtype}.tif", data, nodata=0)


def edge_valid_mask() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[EDGE:-EDGE, EDGE:-EDGE] = True
    return mask


def left_half_invalid() -> np.ndarray:
    """Validity of ``internal_mask`` and ``alpha_band``: the left 96 columns are invalid."""
    mask = np.ones((HEIGHT, WIDTH), bool)
    mask[:, :96] = False
    return mask


def internal_mask(directory: Path) -> Path:
    """RGB with a GDAL internal (per-dataset) mask hiding the left 96 columns."""
    return write(directory / "masked.tif", pattern(3, HEIGHT, WIDTH), mask=left_half_invalid())


def alpha_band(directory: Path) -> Path:
    """RGBA, alpha 0 on the left 96 columns."""
    data = np.concatenate([pattern(3, HEIGHT, WIDTH), np.where(left_half_invalid(), 255, 0)[None].astype(np.uint8)])
    return write(directory / "rgba.tif", data, photometric="RGB", alpha="YES")


# -- sizes ------------------------------------------------------------------------


def small(directory: Path, width: int = 40, height: int = 30) -> Path:
    """A scene smaller than one chip of any model."""
    return rgb(directory, f"small_{width}x{height}.tif", width=width, height=height)


def one_pixel_wide(directory: Path, length: int = 300) -> Path:
    return rgb(directory, f"column_1x{length}.tif", width=1, height=length, block=None)


def one_pixel_tall(directory: Path, length: int = 300) -> Path:
    return rgb(directory, f"row_{length}x1.tif", width=length, height=1, block=None)


def sparse(
    directory: Path,
    size: int,
    *,
    block: int = 512,
    data_windows: list[Window],
    dtype: str = "uint16",
    value: int = 1000,
) -> Path:
    """A huge declared size with data only in ``data_windows`` (a sparse tiled
    BigTIFF: unwritten tiles take no space and read as nodata 0)."""
    path = directory / f"sparse_{size}.tif"
    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": 3, "dtype": dtype, "crs": UTM,
        "transform": from_origin(500_000.0, 4_000_000.0, 1.0, 1.0), "nodata": 0, "tiled": True,
        "blockxsize": block, "blockysize": block, "sparse_ok": True, "bigtiff": "YES", "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as ds:
        for k, window in enumerate(data_windows):
            h, w = int(window.height), int(window.width)
            yy, xx = np.mgrid[0:h, 0:w]
            band = (value + (xx + yy + 37 * k) % 150).astype(dtype)
            ds.write(np.stack([band, band + 10, band + 20]), window=window)
    return path


# -- paths ---------------------------------------------------------------------------

ODD_DIR = "my scenes – été 2024"
ODD_NAME = "Zürich Ωmega 東京 scene.tif"


def odd_path(directory: Path) -> Path:
    """A scene whose folder and name hold spaces and non-ASCII characters."""
    return rgb(directory / ODD_DIR, ODD_NAME)


def pixel_corners(transform: Affine, col_off: float, row_off: float, width: float, height: float) -> list[tuple[float, float]]:
    """Corners of a pixel window mapped through ``transform`` (ring order)."""
    return [
        transform * (col_off, row_off),
        transform * (col_off + width, row_off),
        transform * (col_off + width, row_off + height),
        transform * (col_off, row_off + height),
    ]


def grid_shape(length: int, size: int) -> int:
    """Chips along one axis for stride == size (shift rule of ``rsgeo.grid``)."""
    return 1 if length <= size else math.ceil((length - size) / size) + 1


# -- issue 17: odd rasters that read wrong silently, CRSs without metres ----------------------------


def paletted(directory: Path) -> Path:
    """One band of colour-table indices (0..15) with a 16-colour table."""
    indices = (pattern(1, HEIGHT, WIDTH, "uint8")[0] // 16).astype(np.uint8)
    table = palette_table()
    path = write(directory / "paletted.tif", indices[None], photometric="palette")
    with rasterio.open(path, "r+") as ds:
        ds.write_colormap(1, table)
    return path


def palette_table() -> dict[int, tuple[int, int, int, int]]:
    """The 16 colours of :func:`paletted`: far from grey, so indices read as grey would differ."""
    return {i: ((37 * i + 11) % 256, (91 * i + 200) % 256, (53 * i + 90) % 256, 255) for i in range(16)}


def palette_expanded(directory: Path) -> Path:
    """The RGB GeoTIFF :func:`paletted` stands for (its indices looked up in the table)."""
    indices = (pattern(1, HEIGHT, WIDTH, "uint8")[0] // 16).astype(np.uint8)
    lut = np.asarray([palette_table()[i][:3] for i in range(16)], np.uint8).T
    return write(directory / "paletted_as_rgb.tif", lut[:, indices])


def complex_scene(directory: Path, dtype: str = "complex64") -> Path:
    """A SAR-like single-look complex scene: real and imaginary parts."""
    real = pattern(1, HEIGHT, WIDTH, "float32")[0]
    data = (real + 1j * real[::-1]).astype(dtype)[None]
    return write(directory / f"slc_{dtype}.tif", data)


#: Mars 2000, geographic (IAU: radius 3,396,190 m, not Earth's 6,378,137 m).
MARS_CRS = (
    'GEOGCS["Mars 2000",DATUM["D_Mars_2000",SPHEROID["Mars_2000_IAU_IAG",3396190,169.894447223612]],'
    'PRIMEM["Reference_Meridian",0],UNIT["degree",0.0174532925199433]]'
)


def mars(directory: Path) -> Path:
    """A scene on Mars in a geographic CRS, 0.0002 degree pixels near 20 degrees north."""
    return rgb(directory, "mars.tif", crs=MARS_CRS, transform=from_origin(77.0, 20.0, 0.0002, 0.0002))


#: A local CRS whose unit is unknown: GDAL keeps it in a VRT (a GeoTIFF would get metres).
UNKNOWN_UNIT_CRS = 'LOCAL_CS["site grid",UNIT["unknown",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]'


def unknown_units(directory: Path) -> Path:
    """A VRT over the default scene whose CRS is a local grid with no known linear unit."""
    tif = rgb(directory, "site.tif", crs='LOCAL_CS["site grid",UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]')
    with rasterio.open(tif) as ds:
        bands = "".join(
            f'<VRTRasterBand dataType="Byte" band="{b}"><SimpleSource><SourceFilename relativeToVRT="1">{tif.name}'
            f"</SourceFilename><SourceBand>{b}</SourceBand></SimpleSource></VRTRasterBand>"
            for b in (1, 2, 3)
        )
        gt = ", ".join(repr(v) for v in ds.transform.to_gdal())
    srs = UNKNOWN_UNIT_CRS.replace('"', "&quot;")
    path = directory / "site_unknown_units.vrt"
    path.write_text(
        f'<VRTDataset rasterXSize="{WIDTH}" rasterYSize="{HEIGHT}"><SRS dataAxisToSRSAxisMapping="1,2">{srs}</SRS>'
        f"<GeoTransform>{gt}</GeoTransform>{bands}</VRTDataset>"
    )
    return path


def local_metres(directory: Path) -> Path:
    """A local (engineering) CRS in metres: not projected, but lengths in metres are well defined."""
    return rgb(directory, "local_m.tif", crs='LOCAL_CS["site grid",UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]')


# -- issue 17: damaged results (each maker damages the result at ``path`` in place) ---------------


def _sql(path: Path, *statements: str) -> None:
    import sqlite3

    db = sqlite3.connect(path)
    try:
        for statement in statements:
            db.execute(statement)
        db.commit()
    finally:
        db.close()


def drop_table(path: Path, table: str) -> None:
    _sql(path, f'DROP TABLE "{table}"')


def truncate_table(path: Path, table: str, keep: int) -> None:
    """Delete all but the first ``keep`` rows (a copy cut short, an edit gone wrong)."""
    _sql(path, f'DELETE FROM "{table}" WHERE rowid NOT IN (SELECT rowid FROM "{table}" ORDER BY rowid LIMIT {keep})')


def set_metadata_text(path: Path, key: str, text: str) -> None:
    """Replace a metadata value by ``text`` as stored (not JSON-encoded)."""
    escaped = text.replace("'", "''")
    _sql(path, f"UPDATE rsgeo_metadata SET value = '{escaped}' WHERE key = '{key}'")


def delete_metadata_key(path: Path, key: str) -> None:
    _sql(path, f"DELETE FROM rsgeo_metadata WHERE key = '{key}'")


def short_embedding(path: Path) -> None:
    """One embedding blob cut to half its bytes."""
    _sql(path, "UPDATE rsgeo_embeddings SET embedding = substr(embedding, 1, length(embedding) / 2) "
               "WHERE tile_id = (SELECT min(tile_id) FROM rsgeo_embeddings)")


def corrupt_page(path: Path, page: int = 3) -> None:
    """Overwrite one page of the file (not the header page) with garbage, as a bad disk block would."""
    import sqlite3

    db = sqlite3.connect(path)
    size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    with open(path, "r+b") as f:
        f.seek(size * (page - 1))
        f.write(bytes((i * 7 + 3) % 256 for i in range(size)))


def truncate_file(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def zero_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[:100] = bytes(100)
    path.write_bytes(bytes(data))


# -- zones (issue 19): vector layers of polygons to answer for ---------------------------------


def _zones(path: Path, polygons: list[Any], crs: Any, **columns: list[Any]) -> Path:
    import geopandas as gpd

    frame = gpd.GeoDataFrame({"name": [f"zone {i}" for i in range(len(polygons))], **columns}, geometry=polygons, crs=crs)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(action="ignore", category=UserWarning):  # "crs was not provided": the point
        frame.to_file(path, layer="zones", driver="GPKG")
    return path


def _inside_boxes() -> list[Any]:
    """Two fields inside the default scene (UTM 33N): one within a chip, one over four chips."""
    import shapely

    x0, y0 = TRANSFORM.c, TRANSFORM.f
    return [shapely.box(x0 + 200, y0 - 500, x0 + 500, y0 - 200), shapely.box(x0 + 400, y0 - 1400, x0 + 1400, y0 - 400)]


def zones(directory: Path) -> Path:
    """Good zones, in EPSG:4326 (the scene is in UTM 33N)."""
    import geopandas as gpd

    return _zones(directory / "zones.gpkg", list(gpd.GeoSeries(_inside_boxes(), crs=UTM).to_crs("EPSG:4326")), "EPSG:4326")


def zones_without_crs(directory: Path) -> Path:
    """Zones drawn in the scene's coordinates but saved without a CRS."""
    return _zones(directory / "no_crs_zones.gpkg", _inside_boxes(), None)


def zones_elsewhere(directory: Path) -> Path:
    """Zones that miss the scene: valid polygons, on another continent (EPSG:4326, in Brazil)."""
    import shapely

    return _zones(directory / "far_zones.gpkg", [shapely.box(-47.9, -15.8, -47.8, -15.7)], "EPSG:4326")


def zones_with_status(directory: Path) -> Path:
    """Zones whose attributes include ``status``, a column rsgeo writes."""
    return _zones(directory / "status_zones.gpkg", _inside_boxes(), UTM, status=["planted", "fallow"])
