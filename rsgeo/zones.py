"""Zones: one answer per user polygon, from a scene's own masked chips or a result's tiles.

From a scene (:func:`embed_zones`, ``rsgeo embed SCENE --zones ZONES``) each
zone is reprojected to the scene CRS and gets chips of its own
(:mod:`rsgeo.zone_chips`): one chip centred on it when it fits, else a grid of
chips over its bounding box, those it overlaps. Pixels outside the zone and
nodata pixels are set to the model's mean colour, so the zone's embedding
depends on its own pixels only. The zones and their embeddings are stored
(:mod:`rsgeo.zone_results`), so :func:`classify_zones` and :func:`query_zones`
answer later with no pixel reads.

From a tiles result (``rsgeo classify RESULT.gpkg --zones ZONES``) the stored
whole-chip embeddings of the chips a zone overlaps are combined; pixels of
those chips outside the zone are not masked.

Either way a zone's embedding is the area-weighted mean of the L2-normalised
embeddings ``e_i`` of its chips, weighted by the zone's area inside each chip
``a_i``, then re-normalised::

    z = sum_i a_i * e_i / ||e_i||  ;  zone embedding = z / ||z||

Answers are written in the scene CRS with the zones' own attributes kept. Zones
smaller than ``min_area_px`` pixels, or mostly over nodata (a valid fraction under
``min_valid``: outside the scene, or over nodata pixels or chips), get a
``status`` and no scores.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rsgeo.answers import landcover_scores, polygons, query_vector, score_columns
from rsgeo.definitions import schema
from rsgeo.errors import Cancelled, OptionError, opt
from rsgeo.options import CancelCheck, ProgressCallback, RunOptions
from rsgeo.scene import ReadOptions
from rsgeo.zone_results import ZoneResult, open_zones

__all__ = ["ZoneResult", "classify_zones", "embed_zones", "open_zones", "query_zones"]

if TYPE_CHECKING:
    from rsgeo.classsets.classset import ClassSet
    from rsgeo.encoders.base import Encoder
    from rsgeo.zone_chips import ZoneChip

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
    return _to_crs(zones, crs, repr(spec))


def _to_crs(zones: Any, crs: Any, name: str = "given") -> Any:
    if zones.crs is None:
        raise OptionError(f"zones {name} have no CRS; assign one, e.g. with `ogr2ogr -a_srs EPSG:4326`")
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


def _too_small(geom: Any, min_area_px: float, pixel_area: float) -> bool:
    return geom is None or geom.is_empty or geom.area < min_area_px * pixel_area


def _zone_answer(
    embeddings: np.ndarray, weights: np.ndarray, fractions: np.ndarray, covered: float, keep: np.ndarray,
    min_valid: float,
) -> tuple[str, float, np.ndarray | None]:
    """A zone's status, valid fraction and combined embedding (``None`` unless ok) from the chips it overlaps.

    ``weights`` are the zone's area in each chip, ``fractions`` each chip's valid share,
    ``covered`` the zone's chip-weighted area with the part outside the scene; ``keep``
    the chips that may enter the combination.
    """
    valid = float((weights * fractions).sum() / covered) if covered > 0 else 0.0
    if not keep.any() or valid < min_valid:
        return STATUS_NO_DATA, valid, None
    return STATUS_OK, valid, combine(embeddings[keep], weights[keep])


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
        if _too_small(geom, min_area_px, pixel_area):
            status.append(STATUS_TOO_SMALL)
            continue
        w = zone_weights(geom, chips)
        covered = zone_weights(geom, every).sum() + geom.area - geom.intersection(footprint).area
        s, valid[k], combined = _zone_answer(embeddings, w, fractions, covered, w > 0, min_valid)
        if combined is not None:
            out[k] = combined
        status.append(s)
    return out, status, valid


def _zones_of(
    result: Any, zones: str | Any | None, min_area_px: float, min_valid: float,
) -> tuple[Any, np.ndarray, list[str], np.ndarray]:
    if isinstance(result, ZoneResult):
        if zones is not None:
            raise OptionError(
                f"{result.name} already holds its zones' embeddings; ask it without zones (leave out {opt('zones')})"
            )
        return result.frame.copy(), result.embeddings, result.status, result.valid_fraction
    if zones is None:
        raise OptionError(f"give the zones to answer for ({opt('zones', 'ZONES.gpkg[:layer]')})")
    frame = read_zones(zones, result.grid.crs) if isinstance(zones, str) else _to_crs(zones, result.grid.crs)
    index = result.index
    emb, status, valid = zone_embeddings(
        frame, result.grid, index.tile_ids, index.embeddings.astype(np.float32), min_area_px=min_area_px,
        valid_fraction=index.valid_fraction, min_valid=min_valid,
    )
    return frame, emb, status, valid


def _query_vector(result: Any, texts: Sequence[str]) -> np.ndarray:
    if isinstance(result, ZoneResult):
        none = np.zeros((0, result.embeddings.shape[1]), np.float32)
        return query_vector(np.asarray(result.encoder.encode_texts(list(texts)), np.float32), none, none)
    from rsgeo.answers import QuerySpec

    vector: np.ndarray = result.query_vector(QuerySpec(texts=tuple(texts)))
    return vector


def query_zones(
    result: Any, zones: str | Any | None, texts: Sequence[str], *, min_area_px: float = 1.0, min_valid: float = 0.5,
) -> Any:
    """Cosine similarity of each zone's combined embedding to the text query, best first.

    ``result`` is an opened tiles result with ``zones`` to answer for, or a
    :class:`~rsgeo.zone_results.ZoneResult` with ``zones=None``. The query
    vector is built as ``rsgeo query`` builds it from texts; unscored zones
    (``status`` not ``ok``) come last with a NaN similarity.
    """
    frame, emb, status, valid = _zones_of(result, zones, min_area_px, min_valid)
    vector = _query_vector(result, texts)
    ok = np.array([s == STATUS_OK for s in status], bool)
    similarity = np.full(len(frame), np.nan, np.float32)
    if ok.any():
        similarity[ok] = emb[ok] @ np.asarray(vector, np.float32)
    if not isinstance(result, ZoneResult):  # a zones result's statuses were reported when it was embedded
        _report(int((~ok).sum()), len(frame))
    out = frame.copy()
    out["status"], out["valid_fraction"], out["similarity"] = status, valid.astype(np.float32), similarity
    return out.sort_values("similarity", ascending=False, na_position="last", kind="stable")


#: False while a caller reports the zones not scored itself (the CLI's one line, printed under -q too).
_LIBRARY_REPORTS: contextvars.ContextVar[bool] = contextvars.ContextVar("rsgeo_zones_library_reports", default=True)


@contextlib.contextmanager
def caller_reports() -> Iterator[None]:
    """Within this block the zone functions leave the "zones not scored" count to the caller."""
    token = _LIBRARY_REPORTS.set(False)
    try:
        yield
    finally:
        _LIBRARY_REPORTS.reset(token)


def _report(skipped: int, total: int) -> None:
    if skipped and _LIBRARY_REPORTS.get():
        logger.warning("%d of %d zones not scored (too small or no data): see the status column", skipped, total)


def classify_zones(
    result: Any, zones: str | Any | None, classes: Sequence[str] | None = None, *, class_set: str | ClassSet | None = None,
    templates: Sequence[str] | None = None, lang: str | None = None, unsure_below: float | None = None,
    min_area_px: float = 1.0, min_valid: float = 0.5,
) -> Any:
    """Zero-shot scores per zone, no pixels read.

    ``result`` is an opened tiles result (:func:`rsgeo.open_result`) with
    ``zones`` a ``ZONES.gpkg[:layer]`` string or a GeoDataFrame, or a
    :class:`~rsgeo.zone_results.ZoneResult` (:func:`embed_zones`,
    :func:`~rsgeo.zone_results.open_zones`) with ``zones=None``. The classes
    are ``classes`` (names) or ``class_set`` (a built-in name, a YAML/CSV file
    or a loaded class set), prompted as ``rsgeo classify`` prompts them
    (:class:`~rsgeo.questions.ClassChoice`: ``templates``, ``lang``). The answer
    has the zones' attributes, their geometry in the scene CRS, ``status``,
    one score column per class, ``top_class`` (``"unsure"`` under
    ``unsure_below``) and ``top_score``; ``attrs`` holds the class names and
    colours (a class set's legend) that :func:`zone_style` colours it by.
    """
    from rsgeo.questions import ClassChoice, class_embeddings

    choice = ClassChoice(classes=tuple(classes) if classes is not None else None, class_set=class_set,
                         templates=tuple(templates) if templates is not None else None, lang=lang)
    frame, emb, status, valid = _zones_of(result, zones, min_area_px, min_valid)
    resolved = class_embeddings(result.encoder, choice)
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
    if not isinstance(result, ZoneResult):  # a zones result's statuses were reported when it was embedded
        _report(int((~ok).sum()), len(frame))
    out = frame.copy()
    out["status"] = status
    out["valid_fraction"] = valid.astype(np.float32)
    for j, col in enumerate(score_columns(names)):
        out[col] = scores[:, j]
    out["top_class"], out["top_score"] = top_class, top_score
    out.attrs["classes"] = list(names)
    out.attrs["colours"] = resolved.colours
    out.attrs["class_set"] = resolved.meta.get("class_set")
    return out


def zone_style(answer: Any) -> str:
    """The QGIS style of a zone answer: by top class (``unsure`` grey), or graduated by similarity."""
    from rsgeo.styles import categorized_qml, category_colours, graduated_qml

    if "top_class" in answer.columns:
        names = list(answer.attrs.get("classes") or sorted({str(c) for c in answer["top_class"].dropna()} - {UNSURE}))
        colours = category_colours(names, answer.attrs.get("colours"))
        if (answer["top_class"] == UNSURE).any():
            names, colours = [*names, UNSURE], [*colours, "160,160,160"]
        return categorized_qml("top_class", names, colours)
    return graduated_qml("similarity", answer["similarity"].to_numpy(np.float64))


def embed_zones(
    scene: str | os.PathLike[str],
    zones: str | Any,
    *,
    output: str | os.PathLike[str] | None = None,
    encoder: Encoder | None = None,
    read: ReadOptions = ReadOptions(),
    options: RunOptions = RunOptions(),
    min_area_px: float = 1.0,
    min_valid: float = 0.5,
    command: str | Sequence[str] = "",
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
) -> ZoneResult:
    """Encode each zone of ``zones`` from its own masked chips of ``scene``; write it to ``output`` if given.

    ``zones`` is a ``ZONES.gpkg[:layer]`` string or a GeoDataFrame in any CRS.
    The scene is read chip window by chip window (never whole), with the read
    options of a scene run (bands, stretch, ``--gsd``, chip size); stride and
    overlap do not apply. The result is a :class:`~rsgeo.zone_results.ZoneResult`;
    with ``output`` it is also stored there (atomically, under the output's lock),
    for :func:`classify_zones` and :func:`query_zones` to answer later.
    """
    from rsgeo.gpkg import check_output
    from rsgeo.preflight import refuse_output_is_input
    from rsgeo.sources import SceneSource

    for flag, name in ((options.resume, "resume"), (options.cluster is not None, "cluster"), (options.dense, "dense")):
        if flag:
            raise OptionError(f"{opt(name)} is not available with {opt('zones')}; leave it out")
    source = SceneSource.of(scene)
    if output is None:
        return _embed_zones(source, zones, None, encoder, read, options, min_area_px, min_valid, command, progress, cancel)
    from rsgeo.locks import OutputLock

    check_output(Path(output), overwrite=options.overwrite)
    refuse_output_is_input(source, Path(output))
    with OutputLock(Path(output), command=command):  # one run at a time writes an output
        return _embed_zones(source, zones, Path(output), encoder, read, options, min_area_px, min_valid, command,
                            progress, cancel)


def _embed_zones(
    source: Any, zones: str | Any, output: Path | None, encoder: Encoder | None, read: ReadOptions,
    options: RunOptions, min_area_px: float, min_valid: float, command: str | Sequence[str],
    progress: ProgressCallback | None, cancel: CancelCheck | None,
) -> ZoneResult:
    from rsgeo.definitions.models import DEFAULT_MODEL
    from rsgeo.scene import Scene
    from rsgeo.zone_chips import plan_zone_chips, scene_footprint
    from rsgeo.zone_results import write_zone_file

    label = repr(zones) if isinstance(zones, str) else "given"
    with Scene(source, read) as opened:
        d = opened.dataset
        frame = read_zones(zones, d.crs) if isinstance(zones, str) else _to_crs(zones, d.crs)
        frame = _zone_frame(frame, label)
        footprint = scene_footprint(d.transform, d.width, d.height)
        if not frame.geometry.intersects(footprint).any():
            raise OptionError(
                f"none of the {len(frame)} zones {label} overlaps {opened.name} (zones {_bounds(frame.total_bounds)}, "
                f"scene {_bounds(footprint.bounds)} in {d.crs}); check the zones' CRS and that they cover the scene"
            )
        enc = encoder or options.load_encoder(DEFAULT_MODEL)
        size_px = opened.chip_spec(enc.image_spec.size, enc.training_extent_m).size_px
        pixel_area = abs(d.transform.determinant)
        status: list[str | None] = []
        chips: list[ZoneChip] = []
        for k, geom in enumerate(frame.geometry):
            if _too_small(geom, min_area_px, pixel_area):
                status.append(STATUS_TOO_SMALL)
                continue
            status.append(None)
            chips += plan_zone_chips(k, geom, transform=d.transform, width=d.width, height=d.height, size_px=size_px)
        chip_emb, chip_valid = _encode_zone_chips(opened, frame.geometry, chips, enc, options, progress, cancel)
        meta = _zones_metadata(opened, source, enc, read, options, command, label, size_px, min_area_px, min_valid)
    emb, final, valid = _combine_zones(frame.geometry, footprint, chips, chip_emb, chip_valid, status, min_valid)
    frame[schema.COL_STATUS], frame[schema.COL_VALID_FRACTION] = final, valid.astype(np.float32)
    frame[schema.COL_N_CHIPS] = np.bincount([c.zone for c in chips], minlength=len(frame)).astype(np.int64)
    _report(sum(s != STATUS_OK for s in final), len(frame))
    result = ZoneResult(frame, emb, meta, chips=tuple(chips), chip_embeddings=chip_emb, chip_valid=chip_valid,
                        encoder_override=enc)
    if output is not None:
        write_zone_file(result, output, overwrite=options.overwrite)
    return result


def _bounds(b: Any) -> str:
    return "(" + ", ".join(f"{v:.10g}" for v in b) + ")"


def _zone_frame(frame: Any, label: str) -> Any:
    """The zones with a fresh index and ``zone_id``; attributes clashing with rsgeo's columns refused."""
    clash = [c for c in frame.columns if str(c).casefold() in {n.casefold() for n in (*schema.ZONE_COLUMNS, "fid")}]
    if clash:
        raise OptionError(
            f"zones {label} have an attribute {clash[0]!r}, a column rsgeo writes; rename it "
            f"(in QGIS, or with `ogr2ogr -sql`) and run again"
        )
    out = frame.reset_index(drop=True)
    out.insert(0, schema.COL_ZONE_ID, np.arange(len(out), dtype=np.int64))
    return out


def _encode_zone_chips(
    scene: Any, geometries: Any, chips: Sequence[ZoneChip], encoder: Encoder, options: RunOptions,
    progress: ProgressCallback | None, cancel: CancelCheck | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of every zone chip, masked (:mod:`rsgeo.zone_chips`), and each chip's valid share of the zone."""
    from rsgeo.encoding import default_batch_size, encode_batch
    from rsgeo.preprocess import fit_chip
    from rsgeo.zone_chips import mask_colour, masked_chip, zone_mask

    spec = encoder.image_spec
    fill = mask_colour(spec)
    size = options.batch_size or default_batch_size(encoder.device)
    shape = max(1, min(size, len(chips)))  # one model batch shape for the run (rsgeo.encoding.encode_batch)
    out = np.zeros((len(chips), encoder.embedding_dim), np.float32)
    valid = np.zeros(len(chips), np.float64)
    if progress:
        progress(0, len(chips))
    for start in range(0, len(chips), size):
        part = chips[start : start + size]
        pixels = encoder.empty_batch(len(part), spec.size)
        for i, chip in enumerate(part):
            rgb, ok = scene.read_chip(chip.window)
            masked, valid[start + i] = masked_chip(rgb, ok, zone_mask(geometries.iloc[chip.zone], chip), fill)
            pixels[i] = fit_chip(masked, spec)
        if cancel is not None and cancel():
            raise Cancelled("cancelled; nothing was written")
        out[start : start + len(part)] = encode_batch(encoder, pixels, shape)
        if progress:
            progress(start + len(part), len(chips))
    return out, valid


def _combine_zones(
    geometries: Any, footprint: Any, chips: Sequence[ZoneChip], chip_emb: np.ndarray, chip_valid: np.ndarray,
    status: list[str | None], min_valid: float,
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Each zone's combined embedding, final status and valid fraction (area outside the scene counts invalid)."""
    emb = np.full((len(status), chip_emb.shape[1]), np.nan, np.float32)
    valid = np.zeros(len(status))
    zone_of = np.asarray([c.zone for c in chips], np.int64)
    area = np.asarray([c.area for c in chips], np.float64)
    final: list[str] = []
    for k, (geom, s) in enumerate(zip(geometries, status)):
        if s is not None:
            final.append(s)
            continue
        rows = np.flatnonzero(zone_of == k)
        w, f = area[rows], chip_valid[rows]
        covered = w.sum() + geom.area - geom.intersection(footprint).area
        # a chip whose zone pixels are all nodata shows only the mask colour: it does not enter the combination
        s, valid[k], combined = _zone_answer(chip_emb[rows], w, f, covered, f > 0, min_valid)
        if combined is not None:
            emb[k] = combined
        final.append(s)
    return emb, final, valid


def _zones_metadata(
    scene: Any, source: Any, encoder: Encoder, read: ReadOptions, options: RunOptions, command: str | Sequence[str],
    label: str, size_px: int, min_area_px: float, min_valid: float,
) -> dict[str, Any]:
    """A zones result's metadata: a tiles result's keys but the grid, and how the zones were embedded."""
    from rsgeo.metadata import model_metadata, reading_metadata, run_metadata, scene_metadata
    from rsgeo.sources import content_sha256, identify
    from rsgeo.zone_chips import mask_colour

    scene_meta = scene_metadata(identify(source, scene.source).metadata(), scene.source)
    scene_meta["sha256"] = content_sha256(source)
    return {
        schema.KEY_SCHEMA_VERSION: schema.SCHEMA_VERSION,
        schema.KEY_RESULT_KIND: schema.RESULT_KIND_ZONES,
        schema.KEY_RUN: run_metadata(command),
        schema.KEY_MODEL: model_metadata(encoder, options.checkpoint),
        schema.KEY_SCENE: scene_meta,
        schema.KEY_READ: reading_metadata(scene.bands, scene.stretch, min_valid=read.min_valid, gsd=read.gsd),
        schema.KEY_EMBEDDINGS: schema.EmbeddingsRecord(
            schema.ZONE_EMBEDDINGS_TABLE, options.embedding_dtype, encoder.embedding_dim
        ).to_dict(),
        schema.KEY_LAYERS: {schema.ZONES_LAYER: {"kind": schema.KIND_ZONES}},
        schema.KEY_ZONES: {
            "source": label.strip("'"), "chip_size_px": size_px, "min_area_px": min_area_px, "min_valid": min_valid,
            "mask_rgb": [int(v) for v in mask_colour(encoder.image_spec)],
            "mask_rule": "pixels outside the zone (by pixel centre) and nodata pixels set to mask_rgb, the mean colour",
            "combine": "area-weighted mean of the unit chip embeddings, re-normalised",
        },
    }
