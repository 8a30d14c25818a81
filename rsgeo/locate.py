"""Map locations (points, polygons in any CRS) to the chips that cover them."""

from __future__ import annotations

from typing import Any

import numpy as np

from rsgeo.errors import OptionError
from rsgeo.grid import ChipGrid, tile_rings


def parse_location(text: str) -> tuple[Any, str | None]:
    """``"X,Y"``, ``"X,Y@EPSG:4326"`` or ``"POLYGON((...))@EPSG:32633"`` → (geometry, crs)."""
    import shapely
    from shapely import wkt

    body, _, crs = text.partition("@")
    body = body.strip()
    try:
        if body[:1].isalpha():
            geom = wkt.loads(body)
        else:
            x, y = (float(v) for v in body.split(","))
            geom = shapely.Point(x, y)
    except (ValueError, shapely.errors.ShapelyError):
        raise OptionError(
            f"cannot read location {text!r}; give X,Y or WKT, optionally with @EPSG:<code> for its CRS"
        ) from None
    if geom.is_empty or not np.isfinite(shapely.get_coordinates(geom)).all():
        raise OptionError(f"location {text!r} has no finite coordinates; give X,Y numbers such as 500120,3999870")
    crs = crs.strip()
    if crs:
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            known = CRS.from_user_input(crs)
        except CRSError:
            raise OptionError(f"unknown CRS {crs!r} in location {text!r}; use e.g. @EPSG:4326") from None
        if known.is_geographic:
            _check_degrees(shapely.get_coordinates(geom), text)
    return geom, (crs or None)


def _check_degrees(xy: np.ndarray, text: str) -> None:
    """Longitudes and latitudes of a location in a geographic CRS must be degrees on the globe."""
    lon, lat = xy[:, 0], xy[:, 1]
    if (np.abs(lat) > 90).any() or (np.abs(lon) > 360).any():
        raise OptionError(
            f"location {text!r} is not on the globe (longitude, latitude must be within ±180/360 and ±90 degrees); "
            "give X,Y as longitude,latitude, or the scene's CRS coordinates without @EPSG"
        )


def tiles_at(grid: ChipGrid, geom: Any, crs: str | None = None) -> list[int]:
    """Ids of the chips whose footprint intersects ``geom`` (given in ``crs``,
    default the grid's CRS)."""
    import shapely

    if crs is not None and grid.crs is not None:
        from pyproj import CRS, Transformer
        from pyproj.exceptions import CRSError

        try:
            transformer = Transformer.from_crs(CRS.from_user_input(crs), CRS.from_wkt(grid.crs.to_wkt()), always_xy=True)
        except CRSError:
            raise OptionError(f"unknown CRS {crs!r}; use e.g. EPSG:4326") from None
        geom = shapely.transform(geom, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))
        if not np.isfinite(shapely.get_coordinates(geom)).all():
            raise OptionError(
                f"a location given in {crs} cannot be placed in the scene's CRS (it lies outside the area that CRS "
                "covers); check its coordinates and CRS"
            )
    # Candidate chips from the pixel bounding box, then an exact test.
    inv = ~grid.transform
    xs, ys = np.asarray(geom.envelope.exterior.coords if geom.area else geom.buffer(1e-9).envelope.exterior.coords).T
    cols, rows = inv.a * xs + inv.b * ys + inv.c, inv.d * xs + inv.e * ys + inv.f
    size = min(grid.spec.size_px, grid.width), min(grid.spec.size_px, grid.height)
    col_offsets = np.asarray(grid.col_offsets)
    row_offsets = np.asarray(grid.row_offsets)
    c_hit = np.nonzero((col_offsets <= cols.max()) & (col_offsets + size[0] >= cols.min()))[0]
    r_hit = np.nonzero((row_offsets <= rows.max()) & (row_offsets + size[1] >= rows.min()))[0]
    if len(c_hit) == 0 or len(r_hit) == 0:
        return []
    ids = (r_hit[:, None] * grid.n_cols + c_hit[None, :]).ravel()
    polys = shapely.polygons(tile_rings(grid, ids))
    hit = shapely.intersects(polys, geom) if geom.area == 0 else shapely.area(shapely.intersection(polys, geom)) > 0
    return sorted(int(i) for i in ids[np.asarray(hit)])
