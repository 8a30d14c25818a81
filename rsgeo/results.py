"""Open a result GeoPackage and ask it new questions, in memory.

This is the notebook (and QGIS worker) API::

    result = rsgeo.open_result("scene.gpkg")
    result.query("solar farm", top_k=50)          # GeoDataFrame, best first
    result.classify(["forest", "water", "urban"])  # GeoDataFrame with scores
    result.query(like_tiles=[120], unlike_tiles=[7])

The embeddings are loaded once into one contiguous matrix; each question then
costs one text encoding and one matrix-vector product. Nothing is written:
use :func:`rsgeo.query` / :func:`rsgeo.classify` on the file to add layers.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from rsgeo.answers import QuerySpec, landcover_scores, polygons, score_columns
from rsgeo.definitions import schema
from rsgeo.encoders.base import Encoder
from rsgeo.errors import ResultError
from rsgeo.grid import ChipGrid
from rsgeo.metadata import embeddings_record, grid_from_metadata, recorded_checkpoint, stored_model
from rsgeo.query_map import QueryMap, cell_tile, similarity_map
from rsgeo.questions import ClassChoice, class_embeddings, query_vector_for
from rsgeo.resultcheck import connect_checked, file_identity, read_one_version
from rsgeo.store import GpkgEmbeddings

logger = logging.getLogger(__name__)


class EmbeddingIndex:
    """All embeddings of a result in memory, for fast repeated queries.

    Similarities are one matrix-vector product over the whole table, by NumPy
    (its BLAS) or by torch. Which is faster depends on the machine: torch's
    MKL kernels were 1.2 x faster on an Intel box (where, too, NumPy's BLAS
    threads busy-waiting after a torch text encoding cost 20-25 ms a query),
    OpenBLAS through NumPy 2 x faster on an AMD one (docs/benchmarks.md). So
    where torch is loaded the first query times both on a sample of the table
    and keeps the faster; without torch (QGIS's own Python, the ``test:``
    encoders) NumPy runs and torch is never imported. A float16 table stays
    float16 in memory and is widened to float32 a small block at a time; both
    backends compute the float32 products of the stored values.
    """

    #: Rows of a float16 table widened at a time (2 MB of float32: stays in cache).
    BLOCK = 1024
    #: Rows of the sample the two scan backends are timed on (64 MB of 512-d float32).
    CALIBRATION_ROWS = 1 << 15
    SCANS = ("numpy", "torch")

    def __init__(
        self, tile_ids: np.ndarray, embeddings: np.ndarray, valid_fraction: np.ndarray | None = None,
        *, scan: str | None = None,
    ) -> None:
        self.tile_ids = np.ascontiguousarray(tile_ids, np.int64)
        self.embeddings = np.ascontiguousarray(embeddings)
        self.valid_fraction = valid_fraction
        if scan is not None and scan not in self.SCANS:
            raise ValueError(f"unknown scan {scan!r}; use one of {', '.join(self.SCANS)}")
        #: The scan backend: given, or chosen by timing at the first query (see the class docstring).
        self.scan = scan

    def __len__(self) -> int:
        return len(self.tile_ids)

    def rows(self, tile_ids: Sequence[int]) -> np.ndarray:
        """Embeddings (float32) of the given tiles."""
        idx = []
        for t in tile_ids:
            i = _search(self.tile_ids, int(t))
            if i is None:
                raise ResultError(f"tile {t} has no embedding (skipped as nodata, or outside the grid)")
            idx.append(i)
        return self.embeddings[np.asarray(idx, np.int64)].astype(np.float32)

    def get(self, tile_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """``(sorted unique ids, float32 embeddings)`` of the given tiles (an :class:`~rsgeo.answers.EmbeddingLookup`)."""
        ids = sorted({int(t) for t in tile_ids})
        if not ids:
            return np.zeros(0, np.int64), np.zeros((0, self.embeddings.shape[1]), np.float32)
        return np.asarray(ids, np.int64), self.rows(ids)

    def stored(self, tile_ids: Sequence[int]) -> list[int]:
        """The subset of ``tile_ids`` that has an embedding."""
        ids = np.asarray(sorted({int(t) for t in tile_ids}), np.int64)
        pos = np.searchsorted(self.tile_ids, ids)
        ok = (pos < len(self.tile_ids)) & (self.tile_ids[np.minimum(pos, len(self.tile_ids) - 1)] == ids) if len(self.tile_ids) else np.zeros(len(ids), bool)
        return [int(t) for t in ids[ok]]

    def similarity(self, vector: np.ndarray, *, scan: str | None = None) -> np.ndarray:
        """Cosine similarity of every stored tile with a unit vector (float32).

        ``scan`` forces a backend (``numpy`` or ``torch``) for this call.
        """
        v = np.ascontiguousarray(vector, np.float32)
        scan = scan or self.scan or self._choose_scan(v)
        return _scan_torch(self.embeddings, v, self.BLOCK) if scan == "torch" else _scan_numpy(self.embeddings, v, self.BLOCK)

    def _choose_scan(self, v: np.ndarray) -> str:
        if "torch" not in sys.modules:
            return "numpy"  # not self.scan: torch may be loaded later (a text encoder), then time both
        sample = self.embeddings[: self.CALIBRATION_ROWS]
        seconds = {}
        for name, scan in (("numpy", _scan_numpy), ("torch", _scan_torch)):
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                scan(sample, v, self.BLOCK)
                best = min(best, time.perf_counter() - start)
            seconds[name] = best
        self.scan = min(seconds, key=lambda k: seconds[k])
        logger.debug("query scan: numpy %.2f ms, torch %.2f ms on %d rows; using %s",
                     1e3 * seconds["numpy"], 1e3 * seconds["torch"], len(sample), self.scan)
        return self.scan

    def top_k(self, vector: np.ndarray, k: int | None = None, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(row indices, similarities)`` of the best tiles, best first."""
        sims = self.similarity(vector)
        if threshold is not None:
            cand = np.nonzero(sims >= threshold)[0]
        else:
            cand = np.arange(len(sims))
        if k is not None and k < len(cand):
            part = np.argpartition(-sims[cand], k - 1)[:k]
            cand = cand[part]
        order = np.lexsort((cand, -sims[cand]))
        cand = cand[order]
        return cand, sims[cand]


def _scan_numpy(table: np.ndarray, v: np.ndarray, block: int) -> np.ndarray:
    if table.dtype == np.float32:
        out: np.ndarray = table @ v
        return out
    out = np.empty(len(table), dtype=np.float32)
    for start in range(0, len(table), block):
        stop = start + block
        np.matmul(table[start:stop].astype(np.float32), v, out=out[start:stop])
    return out


def _scan_torch(table: np.ndarray, v: np.ndarray, block: int) -> np.ndarray:
    import torch

    tv = torch.from_numpy(v)
    rows = torch.from_numpy(table)
    if rows.dtype == torch.float32:
        return torch.mv(rows, tv).numpy()
    out = torch.empty(len(table), dtype=torch.float32)
    for start in range(0, len(table), block):
        stop = start + block
        torch.mv(rows[start:stop].float(), tv, out=out[start:stop])
    return out.numpy()


def _search(sorted_ids: np.ndarray, t: int) -> int | None:
    i = int(np.searchsorted(sorted_ids, t))
    return i if i < len(sorted_ids) and sorted_ids[i] == t else None


class Result:
    """A result GeoPackage opened for questions: open it with :func:`open_result`.

    The embeddings are loaded once, on the first question, into one matrix;
    every answer after that is a scan of it and, for texts, a run of the text
    encoder only. Answers are GeoDataFrames (or rasters on disk); the file
    itself is not changed.

    Attributes:
        path: the GeoPackage.
        metadata: its ``rsgeo_metadata`` record (model, classes, grid, scene, ...).
        grid: the chip grid the tiles were cut on.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, encoder: Encoder | None = None, device: str | None = None,
        checkpoint: str | None = None, cache_dir: str | None = None,
    ) -> None:
        self.path = Path(path)
        self._checkpoint = checkpoint
        self._cache_dir = cache_dir
        # Checked when opened (rsgeo.resultcheck); the connection keeps that very file for the embeddings.
        self._db, self.metadata, self._identity = _open_stable(self.path)
        self._encoder = encoder
        self._device = device
        self._text_cache: dict[str, np.ndarray] = {}
        self.grid: ChipGrid = grid_from_metadata(self.metadata)

    @property
    def model_id(self) -> str:
        """The model that made the embeddings (questions are answered with the same one)."""
        return str(stored_model(self.metadata, self.path.name)["model_id"])

    @property
    def layers(self) -> list[str]:
        """The names of the layers rsgeo wrote to the file."""
        return list(self.metadata.get(schema.KEY_LAYERS, {}))

    @property
    def encoder(self) -> Encoder:
        """The text side of the model that made the embeddings (loaded on first use)."""
        if self._encoder is None:
            from rsgeo.zoo import load_encoder

            model = stored_model(self.metadata, self.path.name)
            # The weights file the result recorded (a local --checkpoint), unless another is given.
            checkpoint = self._checkpoint or recorded_checkpoint(model, self.path.name)
            self._encoder = load_encoder(
                self.model_id, device=self._device, checkpoint=checkpoint, cache_dir=self._cache_dir
            )
        elif self._encoder.identity.model_id != self.model_id:
            raise ResultError(
                f"{self.path.name} was encoded with {self.model_id!r}, not {self._encoder.identity.model_id!r}"
            )
        return self._encoder

    @cached_property
    def index(self) -> EmbeddingIndex:
        """All embeddings, loaded once into one preallocated matrix (no second copy)."""
        meta = embeddings_record(self.metadata)
        store = GpkgEmbeddings(self.path, dim=meta.dim, dtype=meta.dtype, db=self._db)
        try:
            n = store.count()
            ids = np.empty(n, np.int64)
            fractions = np.empty(n, np.float32)
            matrix = np.empty((n, meta.dim), store.dtype)
            i = 0
            for chunk_ids, chunk_fractions, chunk in store.iter_chunks(8192, raw=True):
                k = len(chunk_ids)
                ids[i : i + k], fractions[i : i + k], matrix[i : i + k] = chunk_ids, chunk_fractions, chunk
                i += k
        finally:
            store.close()
        return EmbeddingIndex(ids[:i], matrix[:i], fractions[:i])

    def read_layer(self, name: str) -> Any:
        """A layer of the file as a GeoDataFrame."""
        import geopandas as gpd

        if name not in self.layers:
            raise ResultError(f"{self.path.name} has no layer {name!r}; it has {', '.join(self.layers)}")
        if file_identity(self.path) != self._identity:
            raise ResultError(f"{self.path} was replaced since it was opened (another run wrote it); open it again")
        return gpd.read_file(self.path, layer=name)

    def close(self) -> None:
        """Close the file (the embeddings already loaded stay usable)."""
        self._db.close()

    def _frame(self, rows: np.ndarray, columns: dict[str, Any]) -> Any:
        import geopandas as gpd

        ids = self.index.tile_ids[rows]
        r, c = np.divmod(ids, self.grid.n_cols)
        data = {"tile_id": ids, "row": r, "col": c, **columns}
        return gpd.GeoDataFrame(data, geometry=polygons(self.grid, ids), crs=self.grid.crs)

    def query(
        self,
        text: str | Sequence[str] = (),
        *,
        like_tiles: Sequence[int] = (),
        unlike_tiles: Sequence[int] = (),
        like: Sequence[str] = (),
        unlike: Sequence[str] = (),
        top_k: int | None = None,
        threshold: float | None = None,
    ) -> Any:
        """Tiles ranked by similarity to texts and examples (best first).

        Texts and positive examples are averaged as unit vectors, half the mean
        of the negative examples is subtracted, and the result re-normalised
        (as ``rsgeo query`` does).

        Args:
            text: a text, or several combined into one query.
            like_tiles: ids of tiles the answer should look like.
            unlike_tiles: ids of tiles it should not look like.
            like: example locations, ``"X,Y"`` or WKT, optionally ``"...@EPSG:4326"``.
            unlike: negative example locations, as ``like``.
            top_k: keep only the ``top_k`` best tiles.
            threshold: keep only tiles with a cosine similarity of at least this.

        Returns:
            A GeoDataFrame with ``tile_id``, ``row``, ``col``, ``similarity``
            and ``rank`` (1 = best), in the scene's CRS.

        Raises:
            OptionError: for a query with neither a text nor a positive example.
        """
        texts = (text,) if isinstance(text, str) else tuple(text)
        spec = QuerySpec(texts, tuple(like_tiles), tuple(unlike_tiles), tuple(like), tuple(unlike), top_k, threshold)
        vector = self.query_vector(spec)
        rows, sims = self.index.top_k(vector, top_k, threshold)
        return self._frame(rows, {"similarity": sims, "rank": np.arange(1, len(rows) + 1)})

    def query_map(
        self,
        text: str | Sequence[str] = (),
        path: str | os.PathLike[str] = "query.tif",
        *,
        like_tiles: Sequence[int] = (),
        unlike_tiles: Sequence[int] = (),
        like: Sequence[str] = (),
        unlike: Sequence[str] = (),
        top_k: int = 20,
    ) -> QueryMap:
        """The query's similarity of every tile written as a COG at ``path``, and the ``top_k`` best tiles.

        What the QGIS panel shows for a result of any size (:mod:`rsgeo.query_map`);
        nothing is written to the result itself.
        """
        texts = (text,) if isinstance(text, str) else tuple(text)
        spec = QuerySpec(texts, tuple(like_tiles), tuple(unlike_tiles), tuple(like), tuple(unlike), top_k, None)
        t0 = time.perf_counter()
        vector = self.query_vector(spec)
        encode_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        sims = self.index.similarity(vector)
        scan_s = time.perf_counter() - t0
        answer = similarity_map(self.grid, self.index.tile_ids, sims, path, top_k=top_k, label=spec.label())
        answer.seconds.update({"vector": encode_s, "scan": scan_s})
        return answer

    def tile_at(self, x: float, y: float) -> int | None:
        """The stored tile whose cell holds the point ``(x, y)`` (the grid's CRS), or ``None``."""
        tile = cell_tile(self.grid, x, y)
        return tile if tile is not None and self.index.stored([tile]) else None

    def similarity_raster(
        self,
        text: str | Sequence[str] = (),
        path: str | os.PathLike[str] | None = None,
        *,
        like_tiles: Sequence[int] = (),
        unlike_tiles: Sequence[int] = (),
        like: Sequence[str] = (),
        unlike: Sequence[str] = (),
        cell_px: int | None = None,
    ) -> Path:
        """Map the similarity of every stored tile to texts/examples as a COG on disk; returns its path.

        One scan over the loaded embedding matrix and one vectorised raster
        (:mod:`rsgeo.rasters`: the nearest-chip-centre rule, nodata where no
        chip was scored): no per-tile objects, so it stays fast at 10^6 tiles.
        ``path`` defaults to ``OUT_query_<slug>_similarity.tif`` beside the
        GeoPackage; the GeoPackage itself is not changed.
        """
        from rsgeo.prompts import slug
        from rsgeo.rasters import write_similarity_raster

        texts = (text,) if isinstance(text, str) else tuple(text)
        spec = QuerySpec(texts, tuple(like_tiles), tuple(unlike_tiles), tuple(like), tuple(unlike))
        sims = self.index.similarity(self.query_vector(spec))
        if path is None:
            name = schema.QUERY_LAYER_PREFIX + slug(spec.label()) + schema.RASTER_NAME_SUFFIXES[schema.RASTER_SIMILARITY]
            path = self.path.with_name(schema.raster_file_name(self.path, name))
        return write_similarity_raster(Path(path), self.grid, self.index.tile_ids, sims, spec.label(), cell_px=cell_px)

    def query_vector(self, spec: QuerySpec) -> np.ndarray:
        """The unit query vector of ``spec``, built as a run builds it (:func:`rsgeo.questions.query_vector_for`)."""
        return query_vector_for(spec, embed_texts=self.text_embeddings, dim=self.index.embeddings.shape[1],
                                grid=self.grid, source=self.index)

    def text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        """Unit text embeddings, cached: asking the same text again costs no encoding."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
        if todo:
            for text, emb in zip(todo, self.encoder.encode_texts(todo)):
                self._text_cache[text] = emb
        return np.stack([self._text_cache[t] for t in texts])

    def classify(
        self,
        classes: Sequence[str] | None = None,
        *,
        class_set: str | None = None,
        templates: Sequence[str] | None = None,
        lang: str | None = None,
    ) -> Any:
        """Zero-shot scores of every tile (one column per class, ``top_class``, ``top_score``).

        Give ``classes`` (names) or ``class_set`` (a built-in name or a file),
        exactly as ``rsgeo classify`` takes them.

        Args:
            classes: class names.
            class_set: a built-in class set or a YAML/CSV file.
            templates: prompt templates with ``{}`` for the class (default: the model's).
            lang: language of the class names.

        Returns:
            A GeoDataFrame with ``tile_id``, ``row``, ``col``, ``valid_fraction``,
            one softmax score column per class, ``top_class`` and ``top_score``.

        Raises:
            ResultError: when both or neither of ``classes`` and ``class_set`` are given.
        """
        if (classes is None) == (class_set is None):
            raise ResultError("give either classes or class_set")
        choice = ClassChoice(
            classes=tuple(classes) if classes is not None else None, class_set=class_set,
            templates=tuple(templates) if templates is not None else None, lang=lang,
        )
        resolved = class_embeddings(self.encoder, choice)
        names, class_emb = resolved.names, resolved.embeddings
        n = len(self.index)
        step = 65536
        parts = [
            landcover_scores(self.index.embeddings[s : s + step].astype(np.float32), class_emb, self.encoder.logit_scale)
            for s in range(0, n, step)
        ]
        scores = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, len(names)), np.float32)
        top = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
        cols: dict[str, Any] = {"valid_fraction": self.index.valid_fraction}
        cols.update({col: scores[:, j] for j, col in enumerate(score_columns(names))})
        cols["top_class"] = np.asarray(names, dtype=object)[top]
        cols["top_score"] = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.float32)
        return self._frame(np.arange(n), cols)


def _open_stable(path: Path) -> tuple[sqlite3.Connection, dict[str, Any], tuple[int, int] | None]:
    """A checked connection, its metadata and the file's identity, all of one version of the file.

    The path may be replaced while it is opened (``--overwrite`` by another
    run); then it is opened again, so the identity matches what was checked.
    """
    def read() -> tuple[sqlite3.Connection, dict[str, Any]]:
        db, metadata = connect_checked(path)
        db.commit()  # end the read transaction: the open file stays this version, writers are not held up
        return db, metadata

    (db, metadata), identity = read_one_version(path, read, identity=file_identity, discard=lambda got: got[0].close())
    return db, metadata, identity


def open_result(
    path: str | os.PathLike[str], *, encoder: Encoder | None = None, device: str | None = None,
    checkpoint: str | None = None, cache_dir: str | None = None,
) -> Result:
    """Open an rsgeo result GeoPackage for in-memory questions.

    The file is checked when opened (missing or truncated tables, bad
    metadata); nothing is loaded until the first question.

    Args:
        path: a GeoPackage written by rsgeo.
        encoder: a text encoder to use instead of loading the recorded model
            (it must be that model).
        device: where the text encoder runs (default: cuda when present).
        checkpoint: local weights instead of the recorded or published ones.
        cache_dir: where downloaded weights are kept.

    Returns:
        The opened :class:`Result`.

    Raises:
        ResultError: when the file is not a complete rsgeo result.
    """
    return Result(path, encoder=encoder, device=device, checkpoint=checkpoint, cache_dir=cache_dir)
