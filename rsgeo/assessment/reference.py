"""Reading reference data onto the map's grid: a categorical raster, polygons or points, any CRS.

A raster is resampled onto the map's pixel grid by nearest neighbour (exact
when the grids coincide, as they do for a reference made on the scene's
grid); polygons are burnt in on the map's grid (a pixel takes the polygon
covering its centre; where polygons overlap, the later one wins); points are
kept as points. Everything is reprojected into the map's CRS first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rsgeo.assessment.classmap import ClassMap
from rsgeo.assessment.mapcells import MapRaster
from rsgeo.errors import OptionError, ReferenceDataError, opt


@dataclass(frozen=True)
class WallToWall:
    """A reference covering the map: class index per map pixel (-1: no reference)."""

    labels: np.ndarray
    #: Every class the reference knows (its legend), indexed by ``labels``.
    classes: tuple[str, ...]
    kind: str


@dataclass(frozen=True)
class PointSample:
    """Reference points: their position in the map's CRS and their class (``classes`` index)."""

    x: np.ndarray
    y: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    #: Points without a label (an empty field): left out, counted.
    unlabelled: int


Reference = WallToWall | PointSample


def split_layer(spec: str | Path) -> tuple[Path, str | None]:
    """``PATH`` or ``PATH:LAYER`` (the part after the last colon is a layer when ``PATH`` exists)."""
    text = str(spec)
    if ":" in text and not Path(text).exists():
        path, layer = text.rsplit(":", 1)
        if Path(path).exists():
            return Path(path), layer or None
    return Path(text), None


def read_reference(spec: str | Path, target: MapRaster, *, field: str | None, class_map: ClassMap) -> Reference:
    """The reference ``spec`` (a raster, or a vector ``PATH[:LAYER]``) over ``target``'s grid."""
    path, layer = split_layer(spec)
    if not path.exists():
        raise ReferenceDataError(f"{opt('reference')} {path} does not exist; check the path")
    if layer is None and _is_raster(path):
        return _raster(path, target, class_map)
    return _vector(path, layer, target, field=field or "label", class_map=class_map)


def _is_raster(path: Path) -> bool:
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        with rasterio.open(path) as ds:
            return bool(ds.count >= 1)
    except RasterioIOError:
        return False


def _raster(path: Path, target: MapRaster, class_map: ClassMap) -> WallToWall:
    import rasterio
    from rasterio.warp import Resampling, reproject

    with rasterio.open(path) as ds:
        if ds.crs is None:
            raise ReferenceDataError(
                f"{path.name} has no CRS, so it cannot be placed over the map; assign one with "
                f"`rio edit-info --crs EPSG:<code> {path.name}`"
            )
        if ds.dtypes[0] not in ("uint8", "uint16", "int8", "int16", "int32", "uint32", "int64", "uint64"):
            raise ReferenceDataError(f"{path.name} holds {ds.dtypes[0]} values; a reference raster holds integer class codes")
        _check_overlap(path.name, _bounds_in(ds.bounds, ds.crs, target.crs), target)
        h, w = target.shape
        nodata = ds.nodata
        fill = int(nodata) if nodata is not None else -1
        out = np.full((h, w), fill, np.int32)
        reproject(
            rasterio.band(ds, 1), out, dst_transform=target.transform, dst_crs=target.crs,
            dst_nodata=fill, resampling=Resampling.nearest,
        )
    ok = out != fill
    codes = sorted({int(v) for v in np.unique(out[ok])} | set(class_map.reference_codes))
    names = [class_map.reference_name(c) for c in codes if not class_map.ignored(c)]
    classes = tuple(dict.fromkeys(names))
    index = {n: i for i, n in enumerate(classes)}
    lut_codes = np.asarray(codes, np.int64)
    lut = np.asarray([-1 if class_map.ignored(c) else index[class_map.reference_name(c)] for c in codes], np.int64)
    labels = np.full((h, w), -1, np.int32)
    labels[ok] = lut[np.searchsorted(lut_codes, out[ok])]
    if not (labels >= 0).any():
        raise ReferenceDataError(f"{path.name} has no reference class over the map {target.source} (all no data or ignored)")
    return WallToWall(labels, classes, "raster")


def _vector(path: Path, layer: str | None, target: MapRaster, *, field: str, class_map: ClassMap) -> Reference:
    import pyogrio

    try:
        layers = pyogrio.list_layers(path)
    except Exception as exc:  # pyogrio raises its own DataSourceError types
        raise ReferenceDataError(f"{opt('reference')} {path.name} is neither a raster nor a vector layer GDAL can read ({exc})") from None
    names = [str(n) for n, _ in layers]
    if layer is None:
        geometry_layers = [str(n) for n, g in layers if g is not None]
        if len(geometry_layers) != 1:
            raise ReferenceDataError(
                f"{path.name} has {len(geometry_layers)} geometry layers ({', '.join(geometry_layers)}); "
                f"pick one with {opt('reference')} {path.name}:LAYER"
            )
        layer = geometry_layers[0]
    elif layer not in names:
        raise ReferenceDataError(f"{path.name} has no layer {layer!r}; it has {', '.join(names)}")
    frame = pyogrio.read_dataframe(path, layer=layer)
    if field not in frame.columns:
        fields = [c for c in frame.columns if c != frame.geometry.name]
        raise OptionError(
            f"{path.name}:{layer} has no field {field!r}; pass the class field with {opt('reference_field')} "
            f"(its fields: {', '.join(fields)})"
        )
    if frame.crs is None:
        raise ReferenceDataError(f"{path.name}:{layer} has no CRS, so it cannot be placed over the map; set one (QGIS: Layer ▸ Set CRS)")
    frame = frame[~frame.geometry.is_empty & frame.geometry.notna()]
    try:
        frame = frame.to_crs(target.crs)
    except Exception as exc:  # pyproj's CRSError or a transform that fails
        raise ReferenceDataError(f"{path.name}:{layer} cannot be reprojected to the map's CRS ({exc})") from None
    _check_overlap(f"{path.name}:{layer}", tuple(frame.total_bounds) if len(frame) else None, target)
    values = list(frame[field])
    all_names = [class_map.reference_name(_plain(v)) for v in values if not class_map.ignored(_plain(v))]
    classes = tuple(dict.fromkeys(sorted(set(all_names)) + list(class_map.reference_codes.values())))
    index = {n: i for i, n in enumerate(classes)}
    labels = np.asarray([-1 if class_map.ignored(_plain(v)) else index[class_map.reference_name(_plain(v))] for v in values], np.int64)
    kinds = set(frame.geometry.geom_type)
    if len(values) and not (labels >= 0).any():
        raise ReferenceDataError(
            f"no feature of {path.name}:{layer} has a reference class in {field!r} yet (all empty or ignored); "
            "label them first (QGIS: toggle editing, type each point's class)"
        )
    if kinds <= {"Point"}:
        return PointSample(
            frame.geometry.x.to_numpy(), frame.geometry.y.to_numpy(), labels,
            classes, int((labels < 0).sum()),
        )
    if kinds <= {"Polygon", "MultiPolygon"}:
        from rasterio.features import rasterize

        shapes = [(g, int(v)) for g, v in zip(frame.geometry, labels) if v >= 0]
        h, w = target.shape
        burnt = rasterize(shapes, out_shape=(h, w), transform=target.transform, fill=-1, dtype="int32") if shapes else np.full((h, w), -1)
        return WallToWall(burnt.astype(np.int32), classes, "polygons")
    raise ReferenceDataError(f"{path.name}:{layer} holds {', '.join(sorted(kinds))} geometries; a reference is points or polygons")


def _plain(value: Any) -> Any:
    """NumPy scalars and NaN as plain Python values (NaN: no label)."""
    import pandas as pd

    if value is None or (not isinstance(value, (str, bytes)) and bool(pd.isna(value))):
        return None  # None, NaN, pandas' NA
    if hasattr(value, "item"):
        return value.item()
    return value


def _bounds_in(bounds: Any, src_crs: Any, dst_crs: Any) -> tuple[float, float, float, float] | None:
    from rasterio.warp import transform_bounds

    try:
        b = transform_bounds(src_crs, dst_crs, *bounds, densify_pts=21)
    except Exception:  # no transformation between the two CRSs (rasterio's CRSError, PROJ's)
        return None
    return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))


def _check_overlap(name: str, bounds: tuple[float, float, float, float] | None, target: MapRaster) -> None:
    if bounds is None or not all(np.isfinite(bounds)):
        raise ReferenceDataError(f"{name} cannot be reprojected to the map's CRS ({_crs_name(target.crs)}); reproject it first")
    left, bottom, right, top = target.bounds
    if bounds[0] >= right or bounds[2] <= left or bounds[1] >= top or bounds[3] <= bottom:
        raise ReferenceDataError(
            f"{name} does not overlap the map {target.source} (reference extent {_fmt(bounds)}, map extent "
            f"{_fmt(target.bounds)} in {_crs_name(target.crs)}); check that it covers the same scene"
        )


def _crs_name(crs: Any) -> str:
    try:
        epsg = crs.to_epsg()
    except Exception:  # a CRS without an EPSG code
        epsg = None
    return f"EPSG:{epsg}" if epsg else "the map's CRS"


def _fmt(b: tuple[float, float, float, float]) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in b) + ")"
