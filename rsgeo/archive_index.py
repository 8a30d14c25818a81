"""An approximate index of an archive's embeddings, kept in a side file (issue 21, docs/archive.md).

Exact search streams every embedding of every result once per query: fine for
10^5 tiles, minutes for 10^7. For those, ``rsgeo query ... --index FILE``
builds (once) a FAISS IVF-PQ index of every embedding: a coarse quantizer
sends each query to the ``nprobe`` nearest of ``nlist`` cells, product
quantization keeps each vector's residual in ``dim / 4`` bytes, so 10^7 512-d
tiles take about 1.4 GB with the ids (measured, docs/benchmarks.md). The index proposes
:data:`RERANK` x ``top_k`` candidates; their stored embeddings are then read
back and scored exactly, so every similarity written is the exact one and only
the candidate list is approximate.

The file records what it was built from, per result: its path, tile count, a
key of the metadata that made its embeddings (run, model, grid, storage) and
the SHA-256 of the embedding table, with the file's identity (size, mtime)
then. An index whose results changed is *stale*: never used silently, it is
refused (or rebuilt when asked). A changed identity with unchanged metadata
(a layer added in place) is confirmed by hashing that result's embeddings
again. Below :data:`EXACT_BELOW` vectors no index is built: exact search is
fast enough and exact.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rsgeo.collection import Member
from rsgeo.definitions import schema
from rsgeo.errors import Cancelled, MissingDependencyError, OptionError, ResultError, opt

logger = logging.getLogger(__name__)

#: Layout version of the index file.
INDEX_VERSION = 2
#: Archives with fewer embeddings are searched exactly (no index is built or read).
EXACT_BELOW = 100_000
#: Codes a query scans at least (``nprobe`` cells of ``n / nlist`` codes each), whatever the archive's size.
SCANNED_AT_LEAST = 500_000
#: Candidates the index proposes per tile asked, re-scored exactly.
RERANK = 20
#: Vectors the quantizers are trained on (at most), and per cell (at least).
TRAIN_MAX = 200_000
TRAIN_PER_CELL = 40
#: Embeddings read at a time while building.
CHUNK = 65536

Progress = Callable[[int, int], None]


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise MissingDependencyError(
            "an archive index needs faiss; install it with: pip install 'rsgeo[archive]'"
        ) from None
    return faiss


@dataclass(frozen=True)
class IndexParams:
    """The IVF-PQ shape: cells, sub-quantizers (bytes a vector) and cells visited per query."""

    nlist: int
    m: int
    nprobe: int

    @classmethod
    def for_size(cls, n: int, dim: int) -> IndexParams:
        """Cells: the power of two at or below sqrt(n); ``dim / 4`` one-byte codes; 1/8 of the cells probed (8..256), or more.

        A query scans about n / 8 codes whatever the cell count, so fewer, larger cells
        cost the query little and the build much less: every vector is assigned to a
        cell by a scan of all ``nlist`` centroids: 4 sqrt(n) cells were an estimated hour
        of that at 10^7 on two cores, the whole build with 2,048 cells 9.3 min
        (docs/benchmarks.md, "Archive queries").

        The code size and the probes are set by queries that are *not* near any tile (a
        text's direction is far from every image embedding): with ``dim / 8`` bytes and
        1/16 of the cells, recall@50 of random unit queries was 0.69 at 10^7 (0.99 for
        queries among the tiles); at 10^6, ``dim / 4`` bytes and 1/4 of the cells gave
        0.995 with 1,000 candidates re-scored (benchmarks/results/archive-*.json). Smaller
        archives probe at least :data:`SCANNED_AT_LEAST` codes: at 10^6 the random text
        tower's texts reached recall@50 0.81 / 0.88 / 0.955 with 1/8, 1/4, 1/2 of 512 cells
        (20 / 25 / 38 ms a query), against 0.997 with 1/8 of 2,048 cells at 10^7.
        """
        nlist = int(2 ** np.floor(np.log2(max(16.0, np.sqrt(max(n, 1))))))
        nlist = max(16, min(nlist, max(16, n // TRAIN_PER_CELL)))
        m = next(d for d in (dim // 4, dim // 2, dim) if d >= 1 and dim % d == 0)
        eighth = min(256, max(8, nlist // 8))
        at_least = min(nlist, -(-nlist * SCANNED_AT_LEAST // max(n, 1)))  # cells holding SCANNED_AT_LEAST codes
        return cls(nlist=nlist, m=m, nprobe=int(max(eighth, at_least)))


def result_key(metadata: dict[str, Any]) -> str:
    """SHA-256 of the metadata records that made a result's embeddings (its run, model, grid, storage)."""
    parts = {k: metadata.get(k) for k in (schema.KEY_RUN, schema.KEY_MODEL, schema.KEY_GRID, schema.KEY_READ,
                                          schema.KEY_EMBEDDINGS)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def file_identity(path: Path) -> dict[str, int]:
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{Path(path).as_posix()}?mode=ro", uri=True)


def _chunks(path: Path, metadata: dict[str, Any], chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray, list[bytes]]]:
    """``(tile ids, float32 embeddings, raw blobs)`` of a result, in tile-id order."""
    record = schema.EmbeddingsRecord.from_dict(metadata[schema.KEY_EMBEDDINGS])
    dtype = np.dtype(schema.EMBEDDING_DTYPES[record.dtype])
    db = _connect(path)
    try:
        cursor = db.execute(f"SELECT {schema.COL_TILE_ID}, {schema.COL_EMBEDDING} FROM {schema.EMBEDDINGS_TABLE} "
                            f"ORDER BY {schema.COL_TILE_ID}")
        while rows := cursor.fetchmany(chunk):
            blobs = [r[1] for r in rows]
            ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
            emb = np.frombuffer(b"".join(blobs), dtype).reshape(len(rows), record.dim).astype(np.float32)
            yield ids, emb, blobs
    finally:
        db.close()


def embeddings_sha256(path: Path, metadata: dict[str, Any], chunk: int = CHUNK) -> str:
    """SHA-256 of a result's tile ids and embedding bytes, in tile-id order."""
    digest = hashlib.sha256()
    for ids, _, blobs in _chunks(path, metadata, chunk):
        digest.update(ids.astype("<i8").tobytes())
        for b in blobs:
            digest.update(b)
    return digest.hexdigest()


def _count(path: Path) -> int:
    db = _connect(path)
    try:
        return int(db.execute(f"SELECT count(*) FROM {schema.EMBEDDINGS_TABLE}").fetchone()[0])
    finally:
        db.close()


class ArchiveIndex:
    """A built index: the FAISS index (ids = row in the archive), each row's result and tile, the fingerprint."""

    def __init__(self, index: Any, member: np.ndarray, tile_ids: np.ndarray, fingerprint: list[dict[str, Any]],
                 params: IndexParams) -> None:
        self.index = index
        self.member = member
        self.tile_ids = tile_ids
        self.fingerprint = fingerprint
        self.params = params

    def __len__(self) -> int:
        return len(self.tile_ids)

    # -- building -------------------------------------------------------------------------

    @classmethod
    def build(
        cls, members: Sequence[Member], *, params: IndexParams | None = None, chunk: int = CHUNK, seed: int = 0,
        progress: Progress | None = None, cancel: Callable[[], bool] | None = None,
    ) -> ArchiveIndex:
        """Train on a uniform sample of every result's embeddings, then add them all (two streaming passes)."""
        faiss = _faiss()
        dim = int(members[0].metadata[schema.KEY_EMBEDDINGS]["dim"])
        counts = [_count(m.path) for m in members]
        n = sum(counts)
        params = params or IndexParams.for_size(n, dim)
        want = min(n, max(TRAIN_PER_CELL * params.nlist, min(TRAIN_MAX, n)))
        rng = np.random.default_rng(seed)
        sample_parts = []
        for m in members:  # pass 1: the training sample, each row kept with the same chance
            for _, emb, _ in _chunks(m.path, m.metadata, chunk):
                keep = rng.random(len(emb)) < want / max(n, 1)
                sample_parts.append(emb[keep])
                _check(cancel)
        sample = np.ascontiguousarray(np.concatenate(sample_parts)) if sample_parts else np.zeros((0, dim), np.float32)
        t0 = time.perf_counter()
        faiss.omp_set_num_threads(max(1, os.cpu_count() or 1))
        index = faiss.index_factory(dim, f"IVF{params.nlist},PQ{params.m}", faiss.METRIC_INNER_PRODUCT)
        index.do_polysemous_training = False  # Hamming pre-filtering is not used; it was most of the training time
        index.train(sample)
        logger.info("archive index: trained IVF%d,PQ%d on %d vectors in %.1f s", params.nlist, params.m,
                    len(sample), time.perf_counter() - t0)
        del sample, sample_parts
        member_rows = np.empty(n, np.int32)
        tile_rows = np.empty(n, np.int64)
        fingerprint = []
        row = 0
        for index_no, m in enumerate(members):  # pass 2: every vector, hashed on the way
            identity = file_identity(m.path)
            digest = hashlib.sha256()
            start = row
            for ids, emb, blobs in _chunks(m.path, m.metadata, chunk):
                _check(cancel)
                digest.update(ids.astype("<i8").tobytes())
                for b in blobs:
                    digest.update(b)
                k = len(ids)
                index.add_with_ids(emb, np.arange(row, row + k, dtype=np.int64))
                member_rows[row : row + k] = index_no
                tile_rows[row : row + k] = ids
                row += k
                if progress is not None:
                    progress(row, n)
            fingerprint.append({"path": str(m.path.resolve()), "tiles": row - start, "key": result_key(m.metadata),
                                "sha256": digest.hexdigest(), **identity})
        if row != n:
            raise ResultError(f"the archive changed while its index was built ({row} embeddings, not {n}); build it again")
        index.nprobe = params.nprobe
        return cls(index, member_rows, tile_rows, fingerprint, params)

    # -- the side file --------------------------------------------------------------------

    def save(self, path: Path) -> Path:
        """Write the index file atomically (a temporary file beside it, then renamed)."""
        faiss = _faiss()
        header = {"version": INDEX_VERSION, "params": self.params.__dict__, "results": self.fingerprint}
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                np.savez(f, header=np.frombuffer(json.dumps(header).encode(), np.uint8),
                         faiss=faiss.serialize_index(self.index), member=self.member, tile_ids=self.tile_ids)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: Path) -> ArchiveIndex:
        import zipfile

        header = read_header(path)
        try:
            with np.load(path) as data:
                member, tile_ids = data["member"], data["tile_ids"]
            index = _read_faiss(path)
        except (OSError, ValueError, KeyError, RuntimeError, zipfile.BadZipFile) as exc:
            raise ResultError(f"{path} is not an rsgeo archive index ({exc}); build it again with "
                              f"{opt('rebuild_index')}") from None
        params = IndexParams(**header["params"])
        index.nprobe = params.nprobe
        return cls(index, member, tile_ids, list(header["results"]), params)

    # -- freshness ------------------------------------------------------------------------

    def stale_reason(self, members: Sequence[Member]) -> str | None:
        """Why this index does not describe ``members``' embeddings, or ``None`` when it does."""
        return stale_reason(self.fingerprint, members)

    # -- search ---------------------------------------------------------------------------

    def candidates(self, vectors: np.ndarray, k: int) -> list[np.ndarray]:
        """Archive rows the index proposes for each query vector (``k`` at most each)."""
        _, rows = self.index.search(np.ascontiguousarray(vectors, np.float32), min(k, len(self)))
        return [r[r >= 0] for r in rows]


def read_header(path: Path) -> dict[str, Any]:
    """The header of an index file (its shape and what it was built from), read without the index."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z, z.open("header.npy") as f:
            header: dict[str, Any] = json.loads(bytes(np.lib.format.read_array(f)).decode())
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ResultError(f"{path} is not an rsgeo archive index ({exc}); build it again with "
                          f"{opt('rebuild_index')}") from None
    if header.get("version") != INDEX_VERSION:
        raise ResultError(f"{path} is an archive index of another layout (version {header.get('version')}); "
                          f"build it again with {opt('rebuild_index')}")
    return header


def stale_reason(fingerprint: Sequence[dict[str, Any]], members: Sequence[Member]) -> str | None:
    """Why an index built from ``fingerprint`` does not describe ``members``' embeddings, or ``None``.

    A result whose file changed (a layer added in place) but whose embeddings hash as recorded
    still matches; its record in ``fingerprint`` takes the file's new identity (in memory only).
    """
    if len(members) != len(fingerprint):
        return f"it was built from {len(fingerprint)} results, the archive asked has {len(members)}"
    for m, rec in zip(members, fingerprint):
            if str(m.path.resolve()) != rec["path"]:
                return f"it was built from {rec['path']}, not {m.path}"
            if result_key(m.metadata) != rec["key"]:
                return f"{m.path.name} was encoded again since"
            try:
                identity = file_identity(m.path)
            except OSError:
                return f"{m.path} is gone"
            if all(identity[k] == rec[k] for k in ("size", "mtime_ns", "inode")):
                continue
            if _count(m.path) != rec["tiles"] or embeddings_sha256(m.path, m.metadata) != rec["sha256"]:
                return f"the embeddings of {m.path.name} changed since"
            logger.info("%s was rewritten since the index was built; its embeddings are the same", m.path.name)
            rec.update(identity)  # confirmed: a long-lived index does not hash it again at the next query
    return None


def find_index(members: Sequence[Member], folder: Path) -> Path | None:
    """An index file in ``folder`` that describes ``members`` (the newest, if several); ``None`` if none does.

    Every file of the folder that is not a GeoPackage is tried; what is not an index of this
    layout, or is stale, is passed over (logged). Only headers are read.
    """
    found: list[tuple[int, Path]] = []
    for path in sorted(Path(folder).iterdir()):
        if not path.is_file() or path.suffix.lower() in (".gpkg", ".tif", ".json") or path.name.startswith("."):
            continue
        try:
            reason = stale_reason(read_header(path)["results"], members)
        except (ResultError, KeyError, TypeError):
            continue
        if reason is not None:
            logger.info("the archive index %s is not used: it is stale (%s)", path, reason)
            continue
        found.append((path.stat().st_mtime_ns, path))
    return max(found)[1] if found else None


def _read_faiss(path: Path) -> Any:
    """The FAISS index of an index file, streamed from its ``faiss`` member into FAISS.

    Read whole first (``np.load``), the member's bytes and the index built from them were
    both in memory: twice the index at the peak (2 x 806 MB for 10^7 vectors of 64-byte
    codes, docs/benchmarks.md).
    """
    import zipfile

    faiss = _faiss()
    with zipfile.ZipFile(path) as z, z.open("faiss.npy") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            np.lib.format.read_array_header_1_0(f)
        else:
            np.lib.format.read_array_header_2_0(f)
        return faiss.read_index(faiss.PyCallbackIOReader(f.read))


def _check(cancel: Callable[[], bool] | None) -> None:
    if cancel is not None and cancel():
        raise Cancelled("archive index build cancelled; nothing was written")


def rescore(members: Sequence[Member], member: np.ndarray, tile_ids: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Exact similarities of given tiles from their stored embeddings (as a per-scene query scores them)."""
    from rsgeo.scoring import cosine_similarity

    sims = np.empty(len(tile_ids), np.float32)
    for index in np.unique(member):
        where = np.nonzero(member == index)[0]
        m = members[int(index)]
        record = schema.EmbeddingsRecord.from_dict(m.metadata[schema.KEY_EMBEDDINGS])
        wanted = tile_ids[where]
        db = _connect(m.path)
        try:
            rows: dict[int, bytes] = {}
            for start in range(0, len(wanted), 900):  # under SQLite's bound-parameter limit
                part = [int(t) for t in wanted[start : start + 900]]
                marks = ",".join("?" * len(part))
                rows.update(db.execute(f"SELECT {schema.COL_TILE_ID}, {schema.COL_EMBEDDING} FROM "
                                       f"{schema.EMBEDDINGS_TABLE} WHERE {schema.COL_TILE_ID} IN ({marks})", part))
        finally:
            db.close()
        if len(rows) != len(set(wanted.tolist())):
            raise ResultError(f"{m.path.name} lacks tiles its archive index holds; rebuild the index with "
                              f"{opt('rebuild_index')}")
        dtype = np.dtype(schema.EMBEDDING_DTYPES[record.dtype])
        emb = np.frombuffer(b"".join(rows[int(t)] for t in wanted), dtype).reshape(len(wanted), record.dim)
        sims[where] = cosine_similarity(emb.astype(np.float32), vector)
    return sims


def open_index(
    members: Sequence[Member], path: Path, *, rebuild: bool = False, chunk: int = CHUNK,
    progress: Progress | None = None, cancel: Callable[[], bool] | None = None,
) -> ArchiveIndex:
    """The index at ``path``: read when it describes ``members``, built (and saved) when missing.

    A stale one is refused with one line, or rebuilt with ``rebuild``.
    """
    if path.exists():
        index = ArchiveIndex.load(path)
        reason = index.stale_reason(members)
        if reason is None:
            return index
        if not rebuild:
            raise ResultError(f"the archive index {path} is stale: {reason}; rebuild it with {opt('rebuild_index')}, "
                              f"or leave out {opt('index')} for an exact search")
        logger.warning("rebuilding the archive index %s: %s", path, reason)
    elif not path.parent.is_dir():
        raise OptionError(f"the folder of {opt('index')} {path} does not exist; create it first")
    index = ArchiveIndex.build(members, chunk=chunk, progress=progress, cancel=cancel)
    index.save(path)
    logger.info("archive index of %d embeddings written to %s", len(index), path)
    return index
