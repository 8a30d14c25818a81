"""Ask a whole archive: one query over many encoded scenes (issue 21, docs/archive.md).

``rsgeo query A.gpkg B.gpkg ... --text "solar farm" -o answer.gpkg`` (or
:func:`query_archive`) ranks the tiles of every result together: one layer
per text with the ``scene`` of each tile, its ``tile_id``, ``similarity`` and
global ``rank``, in one CRS (the merged file's rule). The search is exact: each
result's embeddings are streamed a chunk at a time and only the best
``top_k`` (or those above ``threshold``) are kept, so memory does not grow with
the archive. With an approximate index (:mod:`rsgeo.archive_index`) the
candidates come from the index and are re-scored exactly from the stored
embeddings.

Similarities are the per-scene answer's (:func:`rsgeo.scoring.cosine_similarity`
of the stored embeddings with the same query vector; bit for bit, block by block,
:func:`rsgeo.scoring.cosine_similarities`): the archive's top k is the top k of
the per-scene answers merged. Ties go to the earlier result, then
to the lower tile id.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rsgeo.answers import QuerySpec, query_layer_name, query_vector
from rsgeo.collection import Member, open_collection, target_crs
from rsgeo.definitions import schema
from rsgeo.encoders.base import Encoder
from rsgeo.errors import Cancelled, OptionError, ResultError, opt
from rsgeo.scoring import cosine_similarities

if TYPE_CHECKING:
    from rsgeo.archive_index import ArchiveIndex

logger = logging.getLogger(__name__)

#: Tiles kept per query when neither ``top_k`` nor ``threshold`` is given.
DEFAULT_TOP_K = 100
#: Embeddings scored at a time.
CHUNK = 65536
#: Table of the answer listing the results it ranked (as the merged file's).
SCENES_TABLE = "rsgeo_scenes"
_TEXT_EXAMPLE = '"solar farm"'

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Hits:
    """The best tiles of one query, best first: which result (index into the members), tile, similarity."""

    spec: QuerySpec
    member: np.ndarray  # int32
    tile_ids: np.ndarray  # int64
    similarity: np.ndarray  # float32

    def __len__(self) -> int:
        return len(self.tile_ids)


def keep_best(
    member: np.ndarray, tile_ids: np.ndarray, sims: np.ndarray, top_k: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``top_k`` best (all, with ``None``), sorted best first; ties: lower member, then lower tile id."""
    if top_k is not None and len(sims) > top_k:
        kth = np.partition(sims, len(sims) - top_k)[len(sims) - top_k]
        sel = sims >= kth  # every tie of the k-th value stays for the exact order below
        member, tile_ids, sims = member[sel], tile_ids[sel], sims[sel]
    order = np.lexsort((tile_ids, member, -sims))
    if top_k is not None:
        order = order[:top_k]
    return member[order], tile_ids[order], sims[order]


class _Best:
    """The running best of one query over the chunks streamed so far."""

    def __init__(self, spec: QuerySpec) -> None:
        self.spec = spec
        self.member = np.zeros(0, np.int32)
        self.tile_ids = np.zeros(0, np.int64)
        self.sims = np.zeros(0, np.float32)

    def add(self, index: int, ids: np.ndarray, sims: np.ndarray) -> None:
        if self.spec.threshold is not None:
            keep = sims >= self.spec.threshold
            ids, sims = ids[keep], sims[keep]
        member = np.full(len(ids), index, np.int32)
        self.member, self.tile_ids, self.sims = keep_best(
            np.concatenate([self.member, member]), np.concatenate([self.tile_ids, ids]),
            np.concatenate([self.sims, sims]), self.spec.top_k,
        )

    def hits(self) -> Hits:
        return Hits(self.spec, self.member, self.tile_ids, self.sims)


def exact_search(
    members: Sequence[Member], specs: Sequence[QuerySpec], vectors: np.ndarray, *, chunk: int = CHUNK,
    progress: Progress | None = None, cancel: Callable[[], bool] | None = None,
) -> list[Hits]:
    """Every query's best tiles over every result, by streaming each result's embeddings once."""
    from rsgeo.metadata import embeddings_record
    from rsgeo.resultcheck import open_checked
    from rsgeo.store import GpkgEmbeddings

    best = [_Best(spec) for spec in specs]
    total = sum(tile_count(m.path) for m in members)
    done = 0
    for index, member in enumerate(members):
        with open_checked(member.path) as (db, meta):
            record = embeddings_record(meta)
            store = GpkgEmbeddings(member.path, dim=record.dim, dtype=record.dtype, db=db)
            for ids, emb in store.iter_stored(chunk):
                if cancel is not None and cancel():
                    raise Cancelled("archive query cancelled; nothing was written")
                for b, sims in zip(best, cosine_similarities(emb, vectors)):
                    b.add(index, ids, sims)
                done += len(ids)
                if progress is not None:
                    progress(done, max(total, done))
    return [b.hits() for b in best]


def tile_count(path: Path) -> int:
    """Tiles of a result, from GDAL's feature count (no table scan), else counted."""
    import sqlite3

    db = sqlite3.connect(f"file:{Path(path).as_posix()}?mode=ro", uri=True)
    try:
        try:
            row = db.execute("SELECT feature_count FROM gpkg_ogr_contents WHERE lower(table_name) = ?",
                             (schema.TILES_LAYER,)).fetchone()
        except sqlite3.DatabaseError:
            row = None
        if row is not None and row[0] is not None:
            return int(row[0])
        return int(db.execute(f"SELECT count(*) FROM {schema.EMBEDDINGS_TABLE}").fetchone()[0])
    finally:
        db.close()


def query_specs(texts: Sequence[str], *, top_k: int | None, threshold: float | None) -> list[QuerySpec]:
    """One query per text; with neither ``top_k`` nor ``threshold``, the best :data:`DEFAULT_TOP_K`."""
    if not texts:
        raise OptionError(f"give what to look for with {opt('text', _TEXT_EXAMPLE)} (repeatable)")
    if top_k is None and threshold is None:
        top_k = DEFAULT_TOP_K
    return [QuerySpec((t,), top_k=top_k, threshold=threshold) for t in texts]


def text_vectors(encoder: Encoder, specs: Sequence[QuerySpec]) -> np.ndarray:
    """The unit query vector of each spec, built as a single result's query builds it."""
    from rsgeo.language import warn_if_unsupported

    warn_if_unsupported(encoder, [t for s in specs for t in s.texts])
    none = np.zeros((0, encoder.embedding_dim), np.float32)
    return np.stack([query_vector(encoder.encode_texts(list(s.texts)), none, none) for s in specs])


def load_text_encoder(member: Member, *, device: str | None = None, checkpoint: str | None = None,
                      cache_dir: str | None = None) -> Encoder:
    """The text side of the model that made the archive's embeddings (the first result's record)."""
    from rsgeo.metadata import recorded_checkpoint, stored_model
    from rsgeo.zoo import load_encoder

    model = stored_model(member.metadata, member.path.name)
    return load_encoder(str(model["model_id"]), device=device,
                        checkpoint=checkpoint or recorded_checkpoint(model, member.path.name), cache_dir=cache_dir)


def check_answer_output(output: Path, inputs: Sequence[Member], *, overwrite: bool) -> None:
    """Refuse an output that cannot be written, or that is one of the results asked."""
    from rsgeo.gpkg import check_output
    from rsgeo.preflight import same_file

    check_output(output, overwrite=overwrite)
    for m in inputs:
        if same_file(output, m.path):
            raise OptionError(f"{opt('output')} {output} is {m.path.name}, one of the results asked; writing the "
                              f"answer there would replace it: choose another {opt('output')} path")


def query_archive(
    results: Sequence[str | os.PathLike[str]],
    texts: Sequence[str],
    output: str | os.PathLike[str],
    *,
    top_k: int | None = None,
    threshold: float | None = None,
    crs: Any = None,
    overwrite: bool = False,
    encoder: Encoder | None = None,
    device: str | None = None,
    checkpoint: str | None = None,
    cache_dir: str | None = None,
    index: str | os.PathLike[str] | ArchiveIndex | None = None,
    rebuild_index: bool = False,
    exact_below: int | None = None,
    chunk: int = CHUNK,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Path:
    """Rank the tiles of every result in ``results`` (files, patterns, folders) for each text.

    Writes ``output`` (a new GeoPackage): one ``query_<slug>`` layer per text
    with ``scene``, ``tile_id``, ``similarity`` and ``rank`` (1 = best in the
    whole archive), polygons in ``crs`` (default: the results' common CRS,
    else EPSG:4326). Results made by different models are refused.
    ``index``: an approximate index file (:mod:`rsgeo.archive_index`), built
    if missing; one built from other embeddings is refused unless
    ``rebuild_index``; archives under ``exact_below`` tiles (default
    :data:`rsgeo.archive_index.EXACT_BELOW`) are searched exactly all the same.
    Or an index already open (:meth:`~rsgeo.archive_index.ArchiveIndex.load`, a
    long-lived caller's): used whatever the archive's size, refused if stale.
    """
    out = Path(output)
    specs = query_specs(texts, top_k=top_k, threshold=threshold)
    members = open_collection([str(r) for r in results], exclude=[out])
    check_answer_output(out, members, overwrite=overwrite)
    target = target_crs(members, crs)
    if encoder is None:
        encoder = load_text_encoder(members[0], device=device, checkpoint=checkpoint, cache_dir=cache_dir)
    else:
        from rsgeo.collection import describe_model

        if encoder.identity.model_id != members[0].model.get("model_id"):
            raise OptionError(f"the encoder given is {encoder.identity.model_id!r}, but the archive was encoded "
                              f"with {describe_model(members[0].model)}; give that model's encoder")
    vectors = text_vectors(encoder, specs)
    from rsgeo.archive_index import ArchiveIndex

    if isinstance(index, ArchiveIndex):
        reason = index.stale_reason(members)
        if reason is not None:
            raise ResultError(f"the archive index is stale: {reason}; rebuild it with {opt('rebuild_index')}, "
                              f"or leave out {opt('index')} for an exact search")
        hits = search_index(index, members, specs, vectors, chunk=chunk, cancel=cancel)
    elif index is not None:
        hits = indexed_search(members, specs, vectors, Path(index), rebuild=rebuild_index, exact_below=exact_below,
                              chunk=chunk,
                              progress=progress, cancel=cancel)
    else:
        hits = exact_search(members, specs, vectors, chunk=chunk, progress=progress, cancel=cancel)
    return write_answer(out, members, hits, target)


def indexed_search(
    members: Sequence[Member], specs: Sequence[QuerySpec], vectors: np.ndarray, path: Path, *,
    rebuild: bool = False, exact_below: int | None = None, chunk: int = CHUNK,
    progress: Progress | None = None, cancel: Callable[[], bool] | None = None,
) -> list[Hits]:
    """The best tiles of each query: by the index at ``path``, exactly below ``exact_below`` tiles.

    A query without ``top_k`` (a threshold alone) is answered exactly too: the
    index cannot bound how many tiles pass a threshold.
    """
    from rsgeo.archive_index import EXACT_BELOW, open_index

    exact_below = EXACT_BELOW if exact_below is None else exact_below
    n = sum(tile_count(m.path) for m in members)
    if n < exact_below or all(s.top_k is None for s in specs):
        logger.info("archive of %d tiles: exact search (the index is for %d tiles or more, and top_k)", n, exact_below)
        return exact_search(members, specs, vectors, chunk=chunk, progress=progress, cancel=cancel)
    index = open_index(members, path, rebuild=rebuild, chunk=chunk, progress=progress, cancel=cancel)
    return search_index(index, members, specs, vectors, chunk=chunk, cancel=cancel)


def search_index(
    index: ArchiveIndex, members: Sequence[Member], specs: Sequence[QuerySpec], vectors: np.ndarray, *,
    chunk: int = CHUNK, cancel: Callable[[], bool] | None = None,
) -> list[Hits]:
    """The best tiles of each query by an index already open (and checked against ``members``).

    The index proposes :data:`rsgeo.archive_index.RERANK` x ``top_k`` candidates, scored
    exactly from the stored embeddings; a query without ``top_k`` is answered exactly.
    A long-lived caller (a worker, a notebook) opens the index once and asks it many times.
    """
    from rsgeo.archive_index import RERANK, rescore

    out: list[Hits] = []
    for spec, vector in zip(specs, vectors):
        if spec.top_k is None:
            out.extend(exact_search(members, [spec], vector[None, :], chunk=chunk, cancel=cancel))
            continue
        (rows,) = index.candidates(vector[None, :], spec.top_k * RERANK)
        member, tiles = index.member[rows].astype(np.int32), index.tile_ids[rows]
        sims = rescore(members, member, tiles, vector)
        if spec.threshold is not None:
            keep = sims >= spec.threshold
            member, tiles, sims = member[keep], tiles[keep], sims[keep]
        member, tiles, sims = keep_best(member, tiles, sims, spec.top_k)
        out.append(Hits(spec, member, tiles, sims))
    return out


def write_answer(output: Path, members: Sequence[Member], hits: Sequence[Hits], crs: Any) -> Path:
    """The answer GeoPackage: one ranked layer per query, the results listed in :data:`SCENES_TABLE`."""
    import pandas as pd
    import pyogrio

    from rsgeo.gpkg import atomic_output, connect, ensure_styles_table, set_style, write_layer
    from rsgeo.locks import OutputLock
    from rsgeo.styles import graduated_qml

    lock = OutputLock(output, command="query archive")
    lock.acquire()
    try:
        with atomic_output(output) as tmp:
            names: list[str] = []
            for h in hits:
                name = query_layer_name(h.spec, names)
                names.append(name)
                n = write_layer(tmp, name, _frames(h, members, crs), crs=crs, empty=lambda: _frame(members, [], crs))
                logger.info("archive query %r: %d tiles over %d results", h.spec.label(), n, len(members))
            table = pd.DataFrame({
                "scene": [m.name for m in members],
                "result": [str(m.path.resolve()) for m in members],
                "source": [str((m.metadata.get(schema.KEY_SCENE) or {}).get("path")) for m in members],
                "crs": [str(m.crs_wkt) for m in members],
                "tiles": [tile_count(m.path) for m in members],
            })
            pyogrio.write_dataframe(table, tmp, layer=SCENES_TABLE, driver="GPKG")
            with connect(tmp) as db:
                ensure_styles_table(db)
                for name, h in zip(names, hits):
                    set_style(db, name, graduated_qml(schema.COL_SIMILARITY, h.similarity))
    finally:
        lock.release()
    return output


def _frames(h: Hits, members: Sequence[Member], crs: Any) -> Iterator[Any]:
    from rsgeo.answers import WRITE_CHUNK

    for start in range(0, len(h), WRITE_CHUNK):
        sl = slice(start, start + WRITE_CHUNK)
        rows = [(int(m), int(t), float(s), start + i + 1)
                for i, (m, t, s) in enumerate(zip(h.member[sl], h.tile_ids[sl], h.similarity[sl]))]
        yield _frame(members, rows, crs)


def _frame(members: Sequence[Member], rows: Sequence[tuple[int, int, float, int]], crs: Any) -> Any:
    """Features ``(member, tile id, similarity, rank)``, in the order given, polygons in ``crs``."""
    import geopandas as gpd
    import pandas as pd
    from pyproj import CRS

    from rsgeo.answers import polygons
    from rsgeo.metadata import grid_from_metadata

    member = np.asarray([r[0] for r in rows], np.int64)
    ids = np.asarray([r[1] for r in rows], np.int64)
    geoms = np.empty(len(rows), dtype=object)
    for index in np.unique(member):
        where = np.nonzero(member == index)[0]
        grid = grid_from_metadata(members[int(index)].metadata)
        part = gpd.GeoSeries(polygons(grid, ids[where]), crs=grid.crs)
        if CRS.from_user_input(part.crs) != crs:
            part = part.to_crs(crs)  # vertices reprojected, as the merged file's layers are
        geoms[where] = list(part.array)
    data = {
        "scene": pd.Series([members[int(i)].name for i in member], dtype=str),
        schema.COL_TILE_ID: ids,
        schema.COL_SIMILARITY: np.asarray([r[2] for r in rows], np.float32),
        schema.COL_RANK: np.asarray([r[3] for r in rows], np.int64),
    }
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(list(geoms), crs=crs), crs=crs)
