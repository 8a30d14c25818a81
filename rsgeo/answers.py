"""Answering questions from embeddings: land-cover and query layers.

Everything here works on an :class:`~rsgeo.store.EmbeddingSource` and the chip
grid, never on pixels, so the same code answers a fresh run and a stored
result (and the two agree exactly).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from rsgeo.definitions import schema
from rsgeo.definitions.schema import RESERVED_COLUMNS
from rsgeo.errors import OptionError, opt
from rsgeo.grid import ChipGrid, tile_rings
from rsgeo.prompts import slug
from rsgeo.scoring import cosine_similarity, ranks, zero_shot_scores
from rsgeo.store import EmbeddingSource
from rsgeo.styles import categorized_qml, category_colours, graduated_qml

logger = logging.getLogger(__name__)

#: Features per GeoDataFrame written at a time: bounds the memory of writing a layer.
WRITE_CHUNK = 8192


class EmbeddingLookup(Protocol):
    """Embeddings of given tiles: what query vectors need (a store, a journal, an in-memory index)."""

    def get(self, tile_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """``(sorted unique ids, float32 embeddings)``; an error for a tile without one."""
        ...

    def stored(self, tile_ids: Sequence[int]) -> list[int]:
        """The subset of ``tile_ids`` that has an embedding."""
        ...


@dataclass(frozen=True)
class TileValues:
    """The numbers of a layer that its rasters map (:mod:`rsgeo.rasters`), per scored tile.

    ``chunks()`` yields ``(tile_ids, values (N, len(bands)) float32, top (N,) or None)``
    in tile-id order, computed by the same code as the layer's columns;
    ``classes``/``colours`` (``"r,g,b"``) are set for a land-cover layer, whose
    ``top`` is the index of the best class.
    """

    bands: tuple[str, ...]
    chunks: Callable[[], Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]]
    classes: tuple[str, ...] = ()
    colours: tuple[str, ...] = ()


@dataclass(frozen=True)
class DenseAsk:
    """What a layer asks of patch embeddings for its dense map (``--dense``).

    The class embeddings or the query vector the layer itself was scored with,
    so a dense map answers the very same question per patch: softmax class
    scores at ``logit_scale`` (land cover), or cosine similarity (a query,
    ``logit_scale`` ``None``).
    """

    kind: str
    #: One name per band: the class names, or the query's label.
    bands: tuple[str, ...]
    #: ``(K, D)`` unit class embeddings, or ``(1, D)``: the query vector.
    vectors: np.ndarray
    logit_scale: float | None = None
    #: ``"r,g,b"`` per class (land cover).
    colours: tuple[str, ...] = ()


def dense_values(ask: DenseAsk, patches: np.ndarray) -> np.ndarray:
    """Per-patch answers ``(N, g, g, K)`` of ``(N, g, g, D)`` unit patch embeddings."""
    n, g, _, d = patches.shape
    flat = patches.reshape(n * g * g, d)
    if ask.logit_scale is not None:
        values, _, _ = landcover_scores(flat, ask.vectors, ask.logit_scale)
    else:
        values = cosine_similarity(flat, ask.vectors[0])[:, None]
    return values.reshape(n, g, g, -1)


@dataclass
class LayerPlan:
    """A layer ready to be written: its frames, an empty frame, style and metadata."""

    name: str
    kind: str
    frames: Callable[[], Iterator[Any]]
    empty: Callable[[], Any]
    style: Callable[[], str]
    meta: dict[str, Any] = field(default_factory=dict)
    #: What the layer's rasters map (``None``: the layer has no raster, e.g. ``tiles``).
    values: TileValues | None = None
    #: The question per patch, for a dense map (``None``: the layer has none, e.g. tiles).
    dense: DenseAsk | None = None


def polygons(grid: ChipGrid, tile_ids: np.ndarray) -> Any:
    import shapely

    rings = tile_rings(grid, tile_ids)
    return shapely.polygons(rings)


def _frame(grid: ChipGrid, tile_ids: np.ndarray, columns: dict[str, Any]) -> Any:
    import geopandas as gpd

    return gpd.GeoDataFrame(columns, geometry=polygons(grid, tile_ids), crs=grid.crs)


def score_columns(class_names: Sequence[str]) -> list[str]:
    """Safe, unique column names for class scores."""
    out: list[str] = []
    for name in class_names:
        base = slug(name, limit=48)
        if base in RESERVED_COLUMNS or base[0].isdigit():
            base = f"c_{base}"
        col, k = base, 2
        while col in out:
            col, k = f"{base}_{k}", k + 1
        out.append(col)
    return out


def landcover_scores(embeddings: np.ndarray, class_embeddings: np.ndarray, logit_scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(scores, top, top_score)`` of tiles: softmax class scores, the best class's index and score."""
    scores = zero_shot_scores(embeddings, class_embeddings, logit_scale)
    return (scores, *_top_class(scores))


def _top_class(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The best class's index and score of each row of ``scores``."""
    top = scores.argmax(axis=1) if len(scores) else np.zeros(0, np.int64)
    return top, scores[np.arange(len(scores)), top]


def tiles_plan(grid: ChipGrid, source: EmbeddingSource) -> LayerPlan:
    def frames() -> Iterator[Any]:
        for ids, fractions, _ in source.iter_chunks(WRITE_CHUNK):
            rows, cols = np.divmod(ids, grid.n_cols)
            yield _frame(grid, ids, {"tile_id": ids, "row": rows, "col": cols, "valid_fraction": fractions})

    def empty() -> Any:
        return _frame(grid, np.zeros(0, np.int64), _empty_columns({"tile_id": "i8", "row": "i8", "col": "i8", "valid_fraction": "f4"}))

    from rsgeo.styles import outline_qml

    return LayerPlan(schema.TILES_LAYER, schema.KIND_TILES, frames, empty, outline_qml, {"kind": schema.KIND_TILES})


def landcover_plan(
    grid: ChipGrid,
    source: EmbeddingSource,
    *,
    name: str,
    class_names: Sequence[str],
    class_embeddings: np.ndarray,
    logit_scale: float,
    meta: dict[str, Any],
    colours: dict[str, str] | None = None,
) -> LayerPlan:
    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for ids, fractions, emb in source.iter_chunks(WRITE_CHUNK):
            yield ids, fractions, landcover_scores(emb, class_embeddings, logit_scale)[0]

    return _landcover_layer(grid, name, class_names, chunks, meta, colours,
                            class_embeddings=class_embeddings, logit_scale=logit_scale)


def _landcover_layer(
    grid: ChipGrid,
    name: str,
    class_names: Sequence[str],
    chunks: Callable[[], Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]],
    meta: dict[str, Any],
    colours: dict[str, str] | None,
    *,
    class_embeddings: np.ndarray | None = None,
    logit_scale: float = 100.0,
) -> LayerPlan:
    """A land-cover layer from ``(tile ids, valid fractions, class scores)`` chunks: one score column per
    class, the top class and its score. With ``class_embeddings`` (zero-shot) it can also be mapped
    densely (``--dense``), by the same classes per patch."""
    columns = score_columns(class_names)
    names = np.asarray(class_names, dtype=object)

    def frames() -> Iterator[Any]:
        for ids, fractions, scores in chunks():
            top, top_score = _top_class(scores)
            rows, cols = np.divmod(ids, grid.n_cols)
            data: dict[str, Any] = {"tile_id": ids, "row": rows, "col": cols, "valid_fraction": fractions}
            for j, col in enumerate(columns):
                data[col] = scores[:, j]
            data["top_class"] = names[top]
            data["top_score"] = top_score
            yield _frame(grid, ids, data)

    def empty() -> Any:
        spec = {"tile_id": "i8", "row": "i8", "col": "i8", "valid_fraction": "f4"}
        spec.update({c: "f4" for c in columns})
        spec.update({"top_class": "O", "top_score": "f4"})
        return _frame(grid, np.zeros(0, np.int64), _empty_columns(spec))

    def style() -> str:
        return categorized_qml("top_class", list(class_names), category_colours(class_names, colours))

    def values() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        for ids, _, scores in chunks():
            top, _ = _top_class(scores)
            yield ids, scores.astype(np.float32, copy=False), top

    meta = {**meta, "kind": schema.KIND_LANDCOVER, "classes": list(class_names), "columns": dict(zip(class_names, columns))}
    tile_values = TileValues(tuple(class_names), values, tuple(class_names), tuple(category_colours(class_names, colours)))
    ask = DenseAsk(
        schema.KIND_LANDCOVER, tuple(class_names), class_embeddings, logit_scale,
        tuple(category_colours(class_names, colours)),
    ) if class_embeddings is not None else None
    return LayerPlan(name, schema.KIND_LANDCOVER, frames, empty, style, meta, tile_values, ask)


@dataclass(frozen=True)
class QuerySpec:
    """One query: texts and/or example tiles, and how many results to keep."""

    texts: tuple[str, ...] = ()
    positive_tiles: tuple[int, ...] = ()
    negative_tiles: tuple[int, ...] = ()
    #: Example locations as ``"X,Y[@CRS]"`` or ``"WKT[@CRS]"``; resolved to chips.
    positive_locations: tuple[str, ...] = ()
    negative_locations: tuple[str, ...] = ()
    top_k: int | None = None
    threshold: float | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if not self.texts and not self.positive_tiles and not self.positive_locations:
            raise OptionError(f"a query needs at least one {opt('text')} or one positive example")
        if any(not t.strip() for t in self.texts):
            raise OptionError(f"a {opt('text')} query is blank; give some words to search for")
        if self.top_k is not None and self.top_k < 1:
            raise OptionError(f"{opt('top_k')} must be at least 1, got {self.top_k}")
        if self.threshold is not None and not -1.0 <= self.threshold <= 1.0:
            raise OptionError(f"{opt('threshold')} is a cosine similarity in [-1, 1], got {self.threshold}")

    def label(self) -> str:
        parts = list(self.texts)
        if self.positive_tiles or self.positive_locations:
            parts.append("like " + ",".join([*map(str, self.positive_tiles), *self.positive_locations]))
        if self.negative_tiles or self.negative_locations:
            parts.append("not " + ",".join([*map(str, self.negative_tiles), *self.negative_locations]))
        return " + ".join(parts)


#: Weight of the negative examples in the query vector (Rocchio's gamma).
NEGATIVE_WEIGHT = 0.5


def example_tiles(
    grid: ChipGrid,
    tiles: Sequence[int],
    locations: Sequence[str],
    stored: Callable[[list[int]], list[int]] | None = None,
) -> list[int]:
    """Tile ids of the examples: given ids plus the encoded chips under each location.

    ``stored`` filters chip ids to those that have an embedding (chips skipped
    as nodata have none).
    """
    from rsgeo.locate import parse_location, tiles_at

    out = set(int(t) for t in tiles)
    for text in locations:
        geom, crs = parse_location(text)
        hit = tiles_at(grid, geom, crs)
        if stored is not None:
            hit = stored(hit)
        if not hit:
            raise OptionError(
                f"example location {text!r} lies on no encoded chip (outside the scene, or on nodata); "
                "check its coordinates and CRS (add @EPSG:<code> if they are not in the scene's CRS)"
            )
        out.update(hit)
    return sorted(out)


def query_vector(text_embeddings: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """One unit query vector from texts and examples.

    Texts and positive examples are unit vectors averaged together; the mean of
    the negative examples is subtracted with weight :data:`NEGATIVE_WEIGHT`
    (Rocchio relevance feedback), and the result re-normalised.
    """
    pos = np.concatenate([text_embeddings, positives]) if len(positives) else text_embeddings
    q = pos.mean(axis=0)
    if len(negatives):
        q = q - NEGATIVE_WEIGHT * negatives.mean(axis=0)
    norm = np.linalg.norm(q)
    if norm == 0:
        raise OptionError("the positive and negative examples cancel out; choose different examples")
    out: np.ndarray = (q / norm).astype(np.float32)
    return out


def query_layer_name(spec: QuerySpec, taken: Sequence[str]) -> str:
    if spec.name:
        return spec.name
    base = schema.QUERY_LAYER_PREFIX + slug(spec.label())
    if base in taken:
        base = f"{base}_{hashlib.sha1(spec.label().encode()).hexdigest()[:6]}"
    return base


def query_plan(
    grid: ChipGrid,
    source: EmbeddingSource,
    *,
    name: str,
    spec: QuerySpec,
    vector: np.ndarray,
    meta: dict[str, Any],
) -> LayerPlan:
    ids_parts, sim_parts = [], []
    for ids, _, emb in source.iter_chunks():
        ids_parts.append(ids)
        sim_parts.append(cosine_similarity(emb, vector))
    ids = np.concatenate(ids_parts) if ids_parts else np.zeros(0, np.int64)
    sims = np.concatenate(sim_parts) if sim_parts else np.zeros(0, np.float32)
    rank = ranks(sims)
    keep = np.ones(len(ids), bool)
    if spec.threshold is not None:
        keep &= sims >= spec.threshold
    if spec.top_k is not None:
        keep &= rank <= spec.top_k
    all_ids, all_sims = ids, sims  # the raster maps every scored tile, not only the kept ones
    ids, sims, rank = ids[keep], sims[keep], rank[keep]

    def frames() -> Iterator[Any]:
        step = WRITE_CHUNK
        for start in range(0, len(ids), step):
            sl = slice(start, start + step)
            yield _frame(grid, ids[sl], {"tile_id": ids[sl], "similarity": sims[sl], "rank": rank[sl]})

    def empty() -> Any:
        return _frame(grid, np.zeros(0, np.int64), _empty_columns({"tile_id": "i8", "similarity": "f4", "rank": "i8"}))

    meta = {
        **meta,
        "kind": schema.KIND_QUERY,
        "texts": list(spec.texts),
        "positive_tiles": list(spec.positive_tiles),
        "negative_tiles": list(spec.negative_tiles),
        "top_k": spec.top_k,
        "threshold": spec.threshold,
        "features": int(len(ids)),
    }
    def values() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        yield all_ids, all_sims.astype(np.float32, copy=False)[:, np.newaxis], None

    tile_values = TileValues((spec.label(),), values)
    ask = DenseAsk(schema.KIND_QUERY, (spec.label(),), vector[None, :])
    return LayerPlan(name, schema.KIND_QUERY, frames, empty, lambda: graduated_qml("similarity", sims), meta, tile_values, ask)


def _empty_columns(spec: dict[str, str]) -> dict[str, Any]:
    return {k: np.zeros(0, dtype=v) for k, v in spec.items()}


def scored_landcover_plan(
    grid: ChipGrid,
    *,
    name: str,
    tile_ids: np.ndarray,
    valid_fraction: np.ndarray,
    class_names: Sequence[str],
    scores: np.ndarray,
    meta: dict[str, Any],
    colours: dict[str, str] | None = None,
) -> LayerPlan:
    """A land-cover layer from scores already computed (refined, or from a probe): same columns as :func:`landcover_plan`."""

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for start in range(0, len(tile_ids), WRITE_CHUNK):
            sl = slice(start, start + WRITE_CHUNK)
            yield tile_ids[sl], valid_fraction[sl], scores[sl]

    return _landcover_layer(grid, name, class_names, chunks, meta, colours)


def labels_plan(grid: ChipGrid, *, name: str, tile_ids: np.ndarray, values: Sequence[str], meta: dict[str, Any]) -> LayerPlan:
    """A layer of labelled chips (``tile_id``, ``label``): what ``--save-labels`` writes and ``--labels`` reads back."""
    ids = np.asarray(tile_ids, np.int64)
    labels = np.asarray(list(values), dtype=object)

    def frames() -> Iterator[Any]:
        for s in range(0, len(ids), WRITE_CHUNK):
            sl = slice(s, s + WRITE_CHUNK)
            yield _frame(grid, ids[sl], {schema.COL_TILE_ID: ids[sl], schema.COL_LABEL: labels[sl]})

    def empty() -> Any:
        return _frame(grid, np.zeros(0, np.int64), _empty_columns({schema.COL_TILE_ID: "i8", schema.COL_LABEL: "O"}))

    distinct = sorted(set(labels.tolist()))
    meta = {**meta, "kind": schema.KIND_LABELS, "labels": int(len(ids)), "values": distinct}
    return LayerPlan(name, schema.KIND_LABELS, frames, empty,
                     lambda: categorized_qml(schema.COL_LABEL, distinct, category_colours(distinct, None)), meta)
