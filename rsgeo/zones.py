"""Zones: one answer per user polygon, from the chip embeddings a result stores.

A zone covers one or more chips. Its embedding is the area-weighted mean of the
L2-normalised embeddings ``e_i`` of the chips it overlaps, weighted by the zone's
area inside each chip ``a_i``, then re-normalised::

    z = sum_i a_i * e_i / ||e_i||  ;  zone embedding = z / ||z||

Because only stored embeddings are used, a new question on a stored result costs
no pixel reads. Zones are reprojected to the scene CRS, and answers are written
in the scene CRS with the zones' own attributes kept. Zones smaller than
``min_area_px`` pixels, or mostly over nodata (a valid fraction under
``min_valid``: outside the scene, or over chips skipped as nodata), get a
``status`` and no scores.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from rsgeo.answers import landcover_scores, polygons, score_columns
from rsgeo.errors import OptionError

logger = logging.getLogger(__name__)

#: Values of the ``status`` column.
STATUS_OK = "ok"
STATUS_TOO_SMALL = "too_small"
STATUS_NO_DATA = "no_data"
#: The top class of a zone whose top score is under ``unsure_below``.
UNSURE = "unsure"


def parse_zones(spec: str) -> tuple[str, str | None]:
    """``ZONES.gpkg[:layer]`` as (path, layer); a Windows drive letter is not a layer."""
    head, sep, tail = spec.rpartition(":")
    if sep and head and len(head) > 1 and "/" not in tail and "\\" not in tail:
        return head, tail or None
    return spec, None


def read_zones(spec: str, crs: Any) -> Any:
    """The zones of ``spec`` as a GeoDataFrame reprojected to ``crs`` (the scene's)."""
    import geopandas as gpd

    path, layer = parse_zones(spec)
    try:
        zones = gpd.read_file(path, layer=layer) if layer else gpd.read_file(path)
    except Exception as exc:  # pyogrio's errors are several classes; all mean the same to the user
        raise OptionError(f"cannot read zones {spec!r}: {exc}; give a vector file, e.g. ZONES.gpkg:layer") from exc
    if zones.crs is None:
        raise OptionError(f"zones {spec!r} have no CRS; assign one, e.g. with `ogr2ogr -a_srs EPSG:4326`")
    return zones.to_crs(crs)


def zone_weights(zone: Any, chips: Any) -> np.ndarray:
    """Area of ``zone`` inside each chip polygon of ``chips`` (CRS units squared)."""
    import shapely

    return np.asarray(shapely.area(shapely.intersection(chips, zone)), np.float64)


def combine(embeddings: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Area-weighted mean of the L2-normalised rows of ``embeddings``, re-normalised (module docstring)."""
    e = np.asarray(embeddings, np.float64)
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    z = (np.asarray(weights, np.float64)[:, None] * e).sum(axis=0)
    out: np.ndarray = (z / np.linalg.norm(z)).astype(np.float32)
    return out


def zone_embeddings(
    zones: Any, grid: Any, tile_ids: np.ndarray, embeddings: np.ndarray, *, min_area_px: float = 1.0,
    valid_fraction: np.ndarray | None = None, min_valid: float = 0.5,
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """One combined embedding per zone (NaN rows where not scored), each zone's status and valid fraction.

    A zone's valid fraction is the share of its area over valid pixels: stored chips count
    with their own valid fraction, chips skipped as nodata and area outside the scene as 0
    (with overlapping chips, as the share of its chip-weighted area). Under ``min_valid``
    the zone is ``no_data``.
    """
    import shapely

    chips = polygons(grid, tile_ids)
    every = polygons(grid, np.arange(len(grid)))
    footprint = shapely.union_all(every)
    fractions = np.ones(len(tile_ids)) if valid_fraction is None else np.asarray(valid_fraction, np.float64)
    pixel_area = abs(grid.transform.a * grid.transform.e - grid.transform.b * grid.transform.d)
    out = np.full((len(zones), embeddings.shape[1]), np.nan, np.float32)
    valid = np.zeros(len(zones))
    status: list[str] = []
    for k, geom in enumerate(zones.geometry):
        if geom is None or geom.is_empty or geom.area < min_area_px * pixel_area:
            status.append(STATUS_TOO_SMALL)
            continue
        w = zone_weights(geom, chips)
        covered = zone_weights(geom, every).sum() + geom.area - geom.intersection(footprint).area
        valid[k] = float((w * fractions).sum() / covered) if covered > 0 else 0.0
        keep = w > 0
        if not keep.any() or valid[k] < min_valid:
            status.append(STATUS_NO_DATA)
            continue
        out[k] = combine(embeddings[keep], w[keep])
        status.append(STATUS_OK)
    return out, status, valid


def _zones_of(result: Any, zones: str | Any, min_area_px: float, min_valid: float) -> tuple[Any, np.ndarray, list[str], np.ndarray]:
    frame = read_zones(zones, result.grid.crs) if isinstance(zones, str) else zones.to_crs(result.grid.crs)
    index = result.index
    emb, status, valid = zone_embeddings(
        frame, result.grid, index.tile_ids, index.embeddings.astype(np.float32), min_area_px=min_area_px,
        valid_fraction=index.valid_fraction, min_valid=min_valid,
    )
    return frame, emb, status, valid


def query_zones(
    result: Any, zones: str | Any, texts: Sequence[str], *, min_area_px: float = 1.0, min_valid: float = 0.5,
) -> Any:
    """Cosine similarity of each zone's combined embedding to the text query, best first.

    The query vector is built as ``rsgeo query`` builds it from texts; unscored
    zones (``status`` not ``ok``) come last with a NaN similarity.
    """
    from rsgeo.answers import QuerySpec

    frame, emb, status, valid = _zones_of(result, zones, min_area_px, min_valid)
    vector = result.query_vector(QuerySpec(texts=tuple(texts)))
    ok = np.array([s == STATUS_OK for s in status], bool)
    similarity = np.full(len(frame), np.nan, np.float32)
    if ok.any():
        similarity[ok] = emb[ok] @ np.asarray(vector, np.float32)
    _report(int((~ok).sum()), len(frame))
    out = frame.copy()
    out["status"], out["valid_fraction"], out["similarity"] = status, valid.astype(np.float32), similarity
    return out.sort_values("similarity", ascending=False, na_position="last", kind="stable")


def _report(skipped: int, total: int) -> None:
    if skipped:
        logger.warning("%d of %d zones not scored (too small or no data): see the status column", skipped, total)


def classify_zones(
    result: Any, zones: str | Any, classes: Sequence[str], *, unsure_below: float | None = None,
    min_area_px: float = 1.0, min_valid: float = 0.5,
) -> Any:
    """Zero-shot scores per zone of an opened result (:func:`rsgeo.open_result`), no pixels read.

    ``zones`` is a ``ZONES.gpkg[:layer]`` string or a GeoDataFrame; the answer
    has the zones' attributes, their geometry in the scene CRS, ``status``,
    one score column per class, ``top_class`` (``"unsure"`` under
    ``unsure_below``) and ``top_score``.
    """
    from rsgeo.questions import ClassChoice, class_embeddings

    frame, emb, status, valid = _zones_of(result, zones, min_area_px, min_valid)
    resolved = class_embeddings(result.encoder, ClassChoice(classes=tuple(classes)))
    names = resolved.names
    ok = np.array([s == STATUS_OK for s in status], bool)
    scores = np.full((len(frame), len(names)), np.nan, np.float32)
    top_class = np.full(len(frame), None, dtype=object)
    top_score = np.full(len(frame), np.nan, np.float32)
    if ok.any():
        s, top, best = landcover_scores(emb[ok], resolved.embeddings, result.encoder.logit_scale)
        scores[ok] = s
        labels = np.asarray(names, dtype=object)[top]
        if unsure_below is not None:
            labels = np.where(best < unsure_below, UNSURE, labels)
        top_class[ok], top_score[ok] = labels, best
    _report(int((~ok).sum()), len(frame))
    out = frame.copy()
    out["status"] = status
    out["valid_fraction"] = valid.astype(np.float32)
    for j, col in enumerate(score_columns(names)):
        out[col] = scores[:, j]
    out["top_class"], out["top_score"] = top_class, top_score
    return out
