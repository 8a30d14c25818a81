"""Label-and-refine search: yes/no clicks on tiles → a refitted query → a new ranking.

A search starts from a query vector (its texts, :func:`rsgeo.questions.query_vector_for`).
Every round the analyst marks tiles *yes* or *no*; a binary probe
(:func:`rsgeo.probe.fit_probe`, classes ``no``/``yes``) is fitted on them plus a
random sample of *background* tiles counted as weak negatives, and pulled
toward the text query, so one click already moves the ranking and no click
leaves it unchanged. The probe is linear, so its ranking is the cosine
similarity with one unit vector, ``w_yes − w_no`` normalised: re-ranking costs
one matrix-vector product over the stored embeddings.

The *hard-negative round* (Earth Genome's "Earth Index"): the top-ranked tiles
not yet labelled are shown (:meth:`SearchSession.candidates`); those the
analyst rejects become negatives, which is what stops a search from "firing
over open country". The background sample stands in for negatives until
there are some; it may hold true positives (it is unlabelled), which is why
its weight is small.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import numpy as np

from rsgeo.errors import OptionError
from rsgeo.probe import DEFAULT_REG, fit_probe
from rsgeo.results import EmbeddingIndex

#: Background tiles sampled as weak negatives.
BACKGROUND = 256
#: Weight of one background tile relative to one labelled tile.
BACKGROUND_WEIGHT = 0.1


def refit_query(prior: np.ndarray, positives: np.ndarray, negatives: np.ndarray, background: np.ndarray, *,
                scale: float, reg: float = DEFAULT_REG, background_weight: float = BACKGROUND_WEIGHT) -> np.ndarray:
    """The unit ranking vector of a yes/no probe fitted on labelled (and background) embeddings."""
    prior = np.asarray(prior, np.float32)
    if len(positives) == 0 and len(negatives) == 0:
        return prior / max(float(np.linalg.norm(prior)), 1e-12)
    x = np.concatenate([positives, negatives, background]).astype(np.float32)
    y = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives) + len(background))]).astype(np.int64)
    weight = np.concatenate([np.ones(len(positives) + len(negatives)), np.full(len(background), background_weight)])
    w0 = np.stack([np.zeros_like(prior), prior])
    probe = fit_probe(x, y, w0, scale=scale, reg=reg, sample_weight=weight)
    v = probe.weights[1] - probe.weights[0]
    norm = float(np.linalg.norm(v))
    if norm == 0:
        raise OptionError("the labels cancel the query out; label other tiles")
    out: np.ndarray = (v / norm).astype(np.float32)
    return out


class SearchSession:
    """One label-and-refine search over an in-memory index (:class:`rsgeo.results.EmbeddingIndex`)."""

    def __init__(self, index: EmbeddingIndex, prior: np.ndarray | None, *, scale: float, reg: float = DEFAULT_REG,
                 background: int = BACKGROUND, seed: int = 0) -> None:
        self.index = index
        self.prior = None if prior is None else np.asarray(prior, np.float32)
        self.scale = scale
        self.reg = reg
        self.yes: set[int] = set()
        self.no: set[int] = set()
        rng = np.random.default_rng(seed)
        n = len(index)
        self._background_rows = np.sort(rng.choice(n, min(background, n), replace=False)) if n else np.zeros(0, np.int64)
        self.vector: np.ndarray | None = None
        self.seconds = 0.0

    def label(self, tile_ids: Iterable[int], yes: bool) -> None:
        """Mark tiles yes or no (a tile marked again takes the new answer)."""
        ids = self.index.stored([int(t) for t in tile_ids])
        for t in ids:
            (self.yes if yes else self.no).add(t)
            (self.no if yes else self.yes).discard(t)

    def forget(self, tile_ids: Iterable[int]) -> None:
        for t in tile_ids:
            self.yes.discard(int(t))
            self.no.discard(int(t))

    def refit(self) -> np.ndarray:
        """Fit the probe on the labels so far; the new unit ranking vector."""
        start = time.perf_counter()
        pos = self.index.rows(sorted(self.yes)) if self.yes else np.zeros((0, self.index.embeddings.shape[1]), np.float32)
        neg = self.index.rows(sorted(self.no)) if self.no else np.zeros_like(pos)
        prior = self.prior
        if prior is None:
            if not len(pos):
                raise OptionError("a search without text needs at least one tile marked yes")
            prior = pos.mean(axis=0)
            prior = prior / max(float(np.linalg.norm(prior)), 1e-12)
        labelled = self.yes | self.no
        bg_ids = self.index.tile_ids[self._background_rows]
        keep = ~np.isin(bg_ids, np.fromiter(labelled, np.int64, len(labelled)))
        background = self.index.embeddings[self._background_rows[keep]].astype(np.float32)
        self.vector = refit_query(prior, pos, neg, background, scale=self.scale, reg=self.reg)
        self.seconds = time.perf_counter() - start
        return self.vector

    def ranking(self, top_k: int | None = None, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(tile ids, similarities)`` best first, by the last refit (refits first if there was none)."""
        vector = self.vector if self.vector is not None else self.refit()
        rows, sims = self.index.top_k(vector, top_k, threshold)
        return self.index.tile_ids[rows], sims

    def candidates(self, k: int = 20) -> np.ndarray:
        """The hard-negative round: the ``k`` best-ranked tiles not labelled yet, to be judged next."""
        labelled = self.yes | self.no
        ids, _ = self.ranking(top_k=k + len(labelled))
        out: np.ndarray = np.asarray([t for t in ids.tolist() if t not in labelled][:k], np.int64)
        return out

    def labels(self) -> tuple[list[int], list[str]]:
        """``(tile ids, "yes"/"no")`` of every labelled tile, sorted by id (to save as a layer)."""
        ids = sorted(self.yes | self.no)
        return ids, ["yes" if t in self.yes else "no" for t in ids]


def split_yes_no(tile_ids: Sequence[int], yes: np.ndarray) -> tuple[list[int], list[int]]:
    """Tile ids marked yes, and those marked no."""
    ids = [int(t) for t in tile_ids]
    return [t for t, y in zip(ids, yes) if y], [t for t, y in zip(ids, yes) if not y]
