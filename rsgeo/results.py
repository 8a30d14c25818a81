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

import os
import sys
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from rsgeo.answers import QuerySpec, example_tiles, polygons, query_vector, score_columns
from rsgeo.encoders.base import Encoder
from rsgeo.errors import ResultError
from rsgeo.gpkg import read_metadata
from rsgeo.grid import ChipGrid
from rsgeo.prompts import class_text_embeddings
from rsgeo.scoring import zero_shot_scores
from rsgeo.store import GpkgEmbeddings


class EmbeddingIndex:
    """All embeddings of a result in memory, for fast repeated queries.

    Similarities are one matrix-vector product over the whole table, run by
    torch when torch is loaded: on the thread pool the text encoder has just used. (NumPy's BLAS
    threads and torch's OpenMP threads, each busy-waiting after its own work,
    cost 20-25 ms a query on a 2-core machine; see docs/benchmarks.md.) A
    float16 table stays float16 in memory and is widened to float32 a small
    block at a time, so its scores are exactly the float32 products of the
    stored values, as ``rsgeo query`` computes them.
    """

    #: Rows of a float16 table widened at a time (2 MB of float32: stays in cache).
    BLOCK = 1024

    def __init__(self, tile_ids: np.ndarray, embeddings: np.ndarray, valid_fraction: np.ndarray | None = None) -> None:
        self.tile_ids = np.ascontiguousarray(tile_ids, np.int64)
        self.embeddings = np.ascontiguousarray(embeddings)
        self.valid_fraction = valid_fraction

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

    def stored(self, tile_ids: Sequence[int]) -> list[int]:
        """The subset of ``tile_ids`` that has an embedding."""
        ids = np.asarray(sorted({int(t) for t in tile_ids}), np.int64)
        pos = np.searchsorted(self.tile_ids, ids)
        ok = (pos < len(self.tile_ids)) & (self.tile_ids[np.minimum(pos, len(self.tile_ids) - 1)] == ids) if len(self.tile_ids) else np.zeros(len(ids), bool)
        return ids[ok].tolist()

    def similarity(self, vector: np.ndarray) -> np.ndarray:
        """Cosine similarity of every stored tile with a unit vector (float32).

        Run by torch when the process already uses it (a torch text encoder
        has just run); by NumPy otherwise, so a result opened with a
        torch-free encoder (QGIS's own Python, the ``test:`` encoders) never
        imports torch. Both compute the float32 product of the stored values.
        """
        v = np.ascontiguousarray(vector, np.float32)
        torch = sys.modules.get("torch")
        if torch is None:
            if self.embeddings.dtype == np.float32:
                return self.embeddings @ v
            out = np.empty(len(self), dtype=np.float32)
            for start in range(0, len(self), self.BLOCK):
                stop = start + self.BLOCK
                np.matmul(self.embeddings[start:stop].astype(np.float32), v, out=out[start:stop])
            return out
        tv = torch.from_numpy(v)
        table = torch.from_numpy(self.embeddings)
        if table.dtype == torch.float32:
            return torch.mv(table, tv).numpy()
        tout = torch.empty(len(self), dtype=torch.float32)
        for start in range(0, len(self), self.BLOCK):
            stop = start + self.BLOCK
            torch.mv(table[start:stop].float(), tv, out=tout[start:stop])
        return tout.numpy()

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


def _search(sorted_ids: np.ndarray, t: int) -> int | None:
    i = int(np.searchsorted(sorted_ids, t))
    return i if i < len(sorted_ids) and sorted_ids[i] == t else None


class Result:
    """A result GeoPackage opened for questions (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], *, encoder: Encoder | None = None, device: str | None = None) -> None:
        self.path = Path(path)
        self.metadata = read_metadata(self.path)
        if "embeddings" not in self.metadata:
            raise ResultError(f"{self.path.name} holds no embeddings; encode the scene with `rsgeo embed`")
        self._encoder = encoder
        self._device = device
        self._text_cache: dict[str, np.ndarray] = {}
        from rsgeo.pipeline import grid_from_metadata

        self.grid: ChipGrid = grid_from_metadata(self.metadata)

    @property
    def model_id(self) -> str:
        return str(self.metadata["model"]["model_id"])

    @property
    def layers(self) -> list[str]:
        return list(self.metadata.get("layers", {}))

    @property
    def encoder(self) -> Encoder:
        """The text side of the model that made the embeddings (loaded on first use)."""
        if self._encoder is None:
            from rsgeo.encoders.loading import load_encoder

            self._encoder = load_encoder(self.model_id, device=self._device)
        elif self._encoder.identity.model_id != self.model_id:
            raise ResultError(
                f"{self.path.name} was encoded with {self.model_id!r}, not {self._encoder.identity.model_id!r}"
            )
        return self._encoder

    @cached_property
    def index(self) -> EmbeddingIndex:
        """All embeddings, loaded once into one preallocated matrix (no second copy)."""
        meta = self.metadata["embeddings"]
        store = GpkgEmbeddings(self.path, dim=meta["dim"], dtype=meta["dtype"])
        try:
            n = store.count()
            ids = np.empty(n, np.int64)
            fractions = np.empty(n, np.float32)
            matrix = np.empty((n, meta["dim"]), store.dtype)
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
        return gpd.read_file(self.path, layer=name)

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
        """Tiles ranked by similarity to texts and examples (best first)."""
        texts = (text,) if isinstance(text, str) else tuple(text)
        spec = QuerySpec(texts, tuple(like_tiles), tuple(unlike_tiles), tuple(like), tuple(unlike), top_k, threshold)
        vector = self.query_vector(spec)
        rows, sims = self.index.top_k(vector, top_k, threshold)
        return self._frame(rows, {"similarity": sims, "rank": np.arange(1, len(rows) + 1)})

    def query_vector(self, spec: QuerySpec) -> np.ndarray:
        dim = self.index.embeddings.shape[1]
        text_emb = self.text_embeddings(spec.texts) if spec.texts else np.zeros((0, dim), np.float32)
        pos = self.index.rows(example_tiles(self.grid, spec.positive_tiles, spec.positive_locations, self.index.stored))
        neg = self.index.rows(example_tiles(self.grid, spec.negative_tiles, spec.negative_locations, self.index.stored))
        return query_vector(text_emb, pos, neg)

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
        """
        from rsgeo.api import resolve_classes

        if (classes is None) == (class_set is None):
            raise ResultError("give either classes or class_set")
        names, prompt_groups, _, _ = resolve_classes(classes, class_set, templates, lang)
        class_emb = class_text_embeddings(self.encoder, prompt_groups(self.encoder))
        n = len(self.index)
        scores = (
            np.concatenate(
                [
                    zero_shot_scores(self.index.embeddings[s : s + 65536].astype(np.float32), class_emb, self.encoder.logit_scale)
                    for s in range(0, n, 65536)
                ]
            )
            if n
            else np.zeros((0, len(names)), np.float32)
        )
        top = scores.argmax(axis=1) if n else np.zeros(0, np.int64)
        cols: dict[str, Any] = {"valid_fraction": self.index.valid_fraction}
        cols.update({col: scores[:, j] for j, col in enumerate(score_columns(names))})
        cols["top_class"] = np.asarray(names, dtype=object)[top]
        cols["top_score"] = scores[np.arange(n), top]
        return self._frame(np.arange(n), cols)


def open_result(path: str | os.PathLike[str], *, encoder: Encoder | None = None, device: str | None = None) -> Result:
    """Open an rsgeo result GeoPackage for in-memory questions."""
    return Result(path, encoder=encoder, device=device)
