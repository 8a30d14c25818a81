"""Streaming chip reader: reads ahead of inference on worker threads.

The grid is cut into *units*: rectangles of chips inside one *band* of chip
rows. A band is read as block-aligned *strips*, one per column of file blocks
(the whole width for a striped file), each decoded once and shared by every
unit that needs it, then freed. Chips are cut from the strips with plain
array copies. Each block of a tiled file is decoded once, in one read call
per strip (per-chip window reads decoded a 512-px block again for each of the
up to four 224-px chips touching it unless GDAL's block cache still held it,
and that cache grows to 5 % of RAM). Memory stays bounded by a few strips
and units, whatever the scene size; GDAL's cache is kept small meanwhile.

Bands are as tall as a memory budget allows and end on a block row where the
chip rows allow it, so neighbouring bands rarely need the same block.

Units are read on worker threads, each holding its own open
:class:`~rsgeo.scene.Scene` (GDAL handles are not shared across threads;
GDAL and numpy release the GIL while they work). Units are consumed in a
fixed order (band by band; within a band, unit by unit from the left; within
a unit, row by row), so batches are the same whatever the number of workers,
and a resumed run skips exactly the chips it already holds. At most
``prefetch`` units are in flight.

A warped scene (``--gsd``) is read chip by chip through
:meth:`~rsgeo.scene.Scene.read_chip`, in the same order.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Container, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from rsgeo.encoders.base import ImageSpec, empty_chips
from rsgeo.grid import ChipGrid
from rsgeo.preprocess import fit_chip
from rsgeo.scene import ReadOptions, Scene
from rsgeo.stretch import Stretch

logger = logging.getLogger(__name__)

#: Decoded bytes one strip may hold; bounds a band's height (16 rows of
#: 224-px chips over 512-px blocks, where chips and blocks realign, fit).
DEFAULT_STRIP_BYTES = 8 << 20
#: GDAL's block cache while strips are read: each block is decoded once into
#: a strip, so caching it only costs memory (GDAL's default is 5 % of RAM).
GDAL_CACHE_BYTES_PER_WORKER = 2 << 20
#: Chips per unit (the work item of one thread).
DEFAULT_UNIT_CHIPS = 32

#: ``allocate(n, size)`` → ``uint8`` array ``(n, size, size, 3)`` in the reader's memory layout.
Allocator = Callable[[int, int], np.ndarray]


@dataclass
class ChipBatch:
    """Model-ready chips of one batch and what the grid scan has covered.

    ``pixels`` has shape ``(N, size, size, 3)``; with ``channels_first`` it is
    a view of channel-first memory (``pixels.transpose(0, 3, 1, 2)`` is
    C-contiguous), otherwise it is C-contiguous itself.
    """

    tile_ids: np.ndarray  # int64 (N,)
    valid_fraction: np.ndarray  # float32 (N,)
    pixels: np.ndarray  # uint8 (N, size, size, 3)
    scanned: int  # grid chips accounted for since the previous batch (kept or skipped)
    #: ids read since the previous batch and found to have fewer valid pixels than ``min_valid``
    nodata: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def default_workers(device: str | None = None) -> int:
    """Reader threads: enough to keep a GPU fed, one on a small CPU box.

    On a CPU the model takes ~20x longer per chip than reading it, so half the
    cores (at most 8) leave the rest to the model; a GPU eats chips as fast as
    all but one core can read them.
    """
    cores = os.cpu_count() or 1
    if device is not None and device.startswith("cuda"):
        return max(2, min(16, cores - 1))
    return max(1, min(8, cores // 2))


# -- the plan: bands, strips and units (pure functions of the grid) -------------


@dataclass(frozen=True)
class ReadUnit:
    """Chip rows ``[row0, row1)`` x columns ``[col0, col1)`` of band ``band``."""

    band: int
    row0: int
    row1: int
    col0: int
    col1: int

    def tile_ids(self, n_cols: int) -> np.ndarray:
        """Tile ids of the unit, row by row."""
        rows = np.arange(self.row0, self.row1, dtype=np.int64)[:, None]
        cols = np.arange(self.col0, self.col1, dtype=np.int64)[None, :]
        return (rows * n_cols + cols).ravel()

    def __len__(self) -> int:
        return (self.row1 - self.row0) * (self.col1 - self.col0)


def plan_bands(row_offsets: list[int], chip_h: int, block_h: int, max_rows: int) -> list[tuple[int, int]]:
    """Split chip rows into bands ``[r0, r1)`` of at most ``max_rows`` rows.

    Each band ends where the next chip row starts in a new block row if one of
    the allowed lengths does (then no block row is decoded for two bands);
    otherwise it takes ``max_rows`` rows.
    """
    n = len(row_offsets)
    max_rows = max(1, max_rows)
    bands = []
    r0 = 0
    while r0 < n:
        best = min(n, r0 + max_rows)
        if best < n:
            for r1 in range(best, r0, -1):
                last_block = (row_offsets[r1 - 1] + chip_h - 1) // block_h
                if row_offsets[r1] // block_h > last_block:
                    best = r1
                    break
        bands.append((r0, best))
        r0 = best
    return bands


def plan_units(
    grid: ChipGrid,
    block_shape: tuple[int, int],
    *,
    bytes_per_pixel: int = 4,
    strip_bytes: int = DEFAULT_STRIP_BYTES,
    unit_chips: int = DEFAULT_UNIT_CHIPS,
) -> list[ReadUnit]:
    """All units of ``grid`` in reading order; together they hold every chip once."""
    block_h, block_w = block_shape
    chip_h = min(grid.spec.size_px, grid.height)
    stride = grid.spec.stride_px
    strip_w = min(block_w, grid.width)
    max_h = strip_bytes // max(1, strip_w * bytes_per_pixel)
    max_rows = 1 + max(0, (max_h - chip_h) // stride)
    n_cols = grid.n_cols
    units = []
    for band, (r0, r1) in enumerate(plan_bands(grid.row_offsets, chip_h, block_h, max_rows)):
        cols = max(1, unit_chips // (r1 - r0))
        for c0 in range(0, n_cols, cols):
            units.append(ReadUnit(band, r0, r1, c0, min(c0 + cols, n_cols)))
    return units


# -- strips shared between units ------------------------------------------------


@dataclass
class _Strip:
    x0: int  # first pixel column in the scene
    rgb: np.ndarray  # uint8 (3, h, w), invalid pixels 0
    valid: np.ndarray | None  # bool (h, w); None when every pixel is valid


class _StripCache:
    """Strips keyed by ``(band, block column)``, loaded once, freed after their last unit."""

    def __init__(self, refs: dict[tuple[int, int], int], load: Callable[[tuple[int, int]], _Strip]) -> None:
        self._refs = refs
        self._load = load
        self._lock = threading.Lock()
        self._live: dict[tuple[int, int], list[Any]] = {}  # key -> [future, units left]

    def acquire(self, key: tuple[int, int]) -> _Strip:
        with self._lock:
            entry = self._live.get(key)
            owner = entry is None
            if owner:
                entry = [Future(), self._refs[key]]
                self._live[key] = entry
        future: Future[_Strip] = entry[0]  # type: ignore[index]
        if owner:
            try:
                future.set_result(self._load(key))
            except BaseException as exc:  # noqa: BLE001 - handed to every unit waiting on this strip
                future.set_exception(exc)
        return future.result()

    def release(self, key: tuple[int, int]) -> None:
        with self._lock:
            entry = self._live[key]
            entry[1] -= 1
            if entry[1] <= 0:
                del self._live[key]

    def __len__(self) -> int:
        return len(self._live)


# -- the reader -------------------------------------------------------------------

_Result = tuple[np.ndarray, np.ndarray, np.ndarray, int]


class ChipReader:
    """Iterate model-ready batches over a grid (see module docstring).

    Args:
        batch_size: chips per yielded batch (the last one may be smaller).
        workers: reader threads (default :func:`default_workers`).
        skip: tile ids not to read (already encoded).
        prefetch: units in flight (default twice the workers, at least 2).
        unit_chips: chips per unit; ``block_size`` is its former name.
        channels_first: lay batches out channel-first in memory (what
            torch models eat without a copy); the shape stays ``(N, H, W, 3)``.
        allocate: makes each batch array (e.g. in pinned memory for a GPU).
        device: the model's device, for the default number of workers.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        options: ReadOptions,
        stretch: Stretch,
        grid: ChipGrid,
        image_spec: ImageSpec,
        *,
        batch_size: int,
        workers: int | None = None,
        skip: Container[int] = frozenset(),
        prefetch: int | None = None,
        unit_chips: int | None = None,
        block_size: int | None = None,
        strip_bytes: int = DEFAULT_STRIP_BYTES,
        channels_first: bool = False,
        allocate: Allocator | None = None,
        device: str | None = None,
    ) -> None:
        self.path = path
        self.options = options
        self.stretch = stretch
        self.grid = grid
        self.image_spec = image_spec
        self.batch_size = batch_size
        self.workers = workers or default_workers(device)
        self.skip = skip
        self.unit_chips = unit_chips or block_size or DEFAULT_UNIT_CHIPS
        self.strip_bytes = strip_bytes
        self.prefetch = prefetch or max(2, 2 * self.workers)
        self.channels_first = channels_first
        self.allocate: Allocator = allocate or (lambda n, size: empty_chips(n, size, channels_first))
        self._local = threading.local()
        self._scenes: list[Scene] = []
        self._lock = threading.Lock()

    def _scene(self) -> Scene:
        scene = getattr(self._local, "scene", None)
        if scene is None:
            scene = Scene(self.path, self.options, stretch=self.stretch)
            self._local.scene = scene
            with self._lock:
                self._scenes.append(scene)
        return scene

    # -- planning ---------------------------------------------------------------

    def _layout(self) -> tuple[bool, tuple[int, int], int]:
        """Whether chips come from strips, the block shape, and bytes per pixel read."""
        scene = self._scene()
        dataset = scene.dataset
        block = tuple(dataset.block_shapes[scene.bands[0] - 1])
        itemsize = np.dtype(dataset.dtypes[scene.bands[0] - 1]).itemsize
        unique = len(dict.fromkeys(scene.bands))
        stretched = 0 if scene.stretch.kind == "none" and itemsize == 1 else 3
        # A warped VRT is read chip by chip: its pixels depend on the window asked.
        strips = dataset is scene.source
        return strips, (int(block[0]), int(block[1])), unique * itemsize + stretched + 1

    def _strip_columns(self, x: int, width: int, block_w: int) -> range:
        return range(x // block_w, (x + width - 1) // block_w + 1)

    # -- reading ----------------------------------------------------------------

    def _load_strip(self, key: tuple[int, int]) -> _Strip:
        band, col = key
        r0, r1 = self._band_rows[band]
        rows = self._rows
        y0, y1 = rows[r0], rows[r1 - 1] + self._chip_h
        x0 = col * self._block_w
        x1 = min(x0 + self._block_w, self.grid.width)
        rgb, valid = self._scene().read_region(Window(x0, y0, x1 - x0, y1 - y0))
        return _Strip(x0, rgb, valid)

    def _read_unit(self, unit: ReadUnit) -> tuple[_Result, np.ndarray]:
        """The kept chips of one unit (ids, valid fractions, pixels, and its size), and the nodata ids read."""
        ids = unit.tile_ids(len(self._cols))
        todo = [int(i) for i in ids if int(i) not in self.skip]
        if not todo:
            empty = self.allocate(0, self.image_spec.size)
            return (np.zeros(0, np.int64), np.zeros(0, np.float32), empty, len(ids)), np.zeros(0, np.int64)
        if self._strips is None:
            result = self._read_chips(todo, len(ids))
        else:
            strips: dict[int, _Strip] = {}
            try:
                for key in self._unit_keys[unit]:
                    strips[key[1]] = self._strips.acquire(key)
                result = self._cut(todo, unit, strips, len(ids))
            finally:
                for col in strips:
                    self._strips.release((unit.band, col))
        return result, np.setdiff1d(np.asarray(todo, np.int64), result[0], assume_unique=True)

    def _cut(self, todo: list[int], unit: ReadUnit, strips: dict[int, _Strip], n_ids: int) -> _Result:
        size = self.image_spec.size
        chip_h = self._chip_h
        chip_w = min(self.grid.spec.size_px, self.grid.width)
        fit = (chip_h, chip_w) != (size, size)
        all_valid = all(s.valid is None for s in strips.values())
        rows, cols = self._rows, self._cols
        n_cols = len(cols)
        y_band = rows[unit.row0]
        out = self.allocate(len(todo), size)
        chw = out.transpose(0, 3, 1, 2)
        hwc = np.empty((chip_h, chip_w, 3), np.uint8) if fit else None
        ids = np.empty(len(todo), np.int64)
        fractions = np.ones(len(todo), np.float32)
        n = 0
        for tile in todo:
            r, c = divmod(tile, n_cols)
            y, x = rows[r] - y_band, cols[c]
            pieces = []
            for k in self._strip_columns(x, chip_w, self._block_w):
                strip = strips[k]
                a = max(x, strip.x0)
                b = min(x + chip_w, strip.x0 + strip.rgb.shape[2])
                pieces.append((strip, a - x, b - x, a - strip.x0, b - strip.x0))
            if not all_valid:
                count = 0
                for strip, _, _, sa, sb in pieces:
                    if strip.valid is None:
                        count += chip_h * (sb - sa)
                    else:
                        count += int(np.count_nonzero(strip.valid[y : y + chip_h, sa:sb]))
                fraction = count / (chip_h * chip_w)  # == valid.mean() of the chip, exactly
                if fraction < self.options.min_valid:
                    continue
                fractions[n] = fraction
            ids[n] = tile
            if fit:
                for strip, da, db, sa, sb in pieces:
                    for ch in range(3):
                        hwc[:, da:db, ch] = strip.rgb[ch, y : y + chip_h, sa:sb]  # type: ignore[index]
                out[n] = fit_chip(hwc, self.image_spec)  # type: ignore[arg-type]
            elif self.channels_first:
                for strip, da, db, sa, sb in pieces:
                    chw[n, :, :, da:db] = strip.rgb[:, y : y + chip_h, sa:sb]
            else:
                for strip, da, db, sa, sb in pieces:
                    for ch in range(3):
                        out[n, :, da:db, ch] = strip.rgb[ch, y : y + chip_h, sa:sb]
            n += 1
        return ids[:n], fractions[:n], out[:n], n_ids

    def _read_chips(self, todo: list[int], n_ids: int) -> _Result:
        """Chip by chip through :meth:`Scene.read_chip` (warped scenes)."""
        scene = self._scene()
        size = self.image_spec.size
        ids: list[int] = []
        fractions: list[float] = []
        pixels: list[np.ndarray] = []
        chip_w = min(self.grid.spec.size_px, self.grid.width)
        for tile in todo:
            r, c = divmod(tile, len(self._cols))
            rgb, valid = scene.read_chip(Window(self._cols[c], self._rows[r], chip_w, self._chip_h))
            fraction = float(valid.mean())
            if fraction < self.options.min_valid:
                continue
            ids.append(tile)
            fractions.append(fraction)
            pixels.append(fit_chip(rgb, self.image_spec))
        out = self.allocate(len(pixels), size)
        for i, p in enumerate(pixels):
            out[i] = p
        return np.asarray(ids, np.int64), np.asarray(fractions, np.float32), out, n_ids

    def _prepare(self) -> list[ReadUnit]:
        strips, block, bytes_per_pixel = self._layout()
        self._rows, self._cols = self.grid.row_offsets, self.grid.col_offsets
        self._block_w = block[1]
        self._chip_h = min(self.grid.spec.size_px, self.grid.height)
        units = plan_units(
            self.grid, block, bytes_per_pixel=bytes_per_pixel, strip_bytes=self.strip_bytes, unit_chips=self.unit_chips
        )
        self._strips: _StripCache | None = None
        if not strips:
            return units
        bands: dict[int, tuple[int, int]] = {}
        refs: dict[tuple[int, int], int] = {}
        self._unit_keys: dict[ReadUnit, list[tuple[int, int]]] = {}
        chip_w = min(self.grid.spec.size_px, self.grid.width)
        cols = self._cols
        for unit in units:
            bands[unit.band] = (unit.row0, unit.row1)
            ids = unit.tile_ids(len(cols))
            wanted = sorted({int(i) % len(cols) for i in ids if int(i) not in self.skip})
            if not wanted:
                continue
            keys = sorted(
                {(unit.band, k) for c in wanted for k in self._strip_columns(cols[c], chip_w, self._block_w)}
            )
            self._unit_keys[unit] = keys
            for key in keys:
                refs[key] = refs.get(key, 0) + 1
        self._band_rows = bands
        self._strips = _StripCache(refs, self._load_strip)
        return units

    def __iter__(self) -> Iterator[ChipBatch]:
        size = self.image_spec.size
        pending: deque[Future[tuple[_Result, np.ndarray]]] = deque()
        buffer: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        buffered = 0
        scanned = 0
        nodata: list[np.ndarray] = []
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="rsgeo-read")
        env = contextlib.ExitStack()
        try:
            units = iter(pool.submit(self._prepare).result())
            if self._strips is not None:
                # Bound GDAL's block cache (process-wide): strips are decoded once each.
                cache = max(4 << 20, GDAL_CACHE_BYTES_PER_WORKER * self.workers)
                env.enter_context(rasterio.Env(GDAL_CACHEMAX=cache))
            for unit in units:
                pending.append(pool.submit(self._read_unit, unit))
                if len(pending) >= self.prefetch:
                    break
            while pending:
                (ids, fractions, pixels, n_scanned), unit_nodata = pending.popleft().result()
                nxt = next(units, None)
                if nxt is not None:
                    pending.append(pool.submit(self._read_unit, nxt))
                scanned += n_scanned
                if len(unit_nodata):
                    nodata.append(unit_nodata)
                if len(ids):
                    buffer.append((ids, fractions, pixels))
                    buffered += len(ids)
                while buffered >= self.batch_size:
                    batch, buffer, buffered = self._take(buffer, self.batch_size)
                    yield ChipBatch(*batch, scanned=scanned, nodata=_joined(nodata))
                    scanned, nodata = 0, []
            if buffered:
                batch, buffer, buffered = self._take(buffer, buffered)
                yield ChipBatch(*batch, scanned=scanned, nodata=_joined(nodata))
            elif scanned:
                yield ChipBatch(
                    np.zeros(0, np.int64),
                    np.zeros(0, np.float32),
                    self.allocate(0, size),
                    scanned=scanned,
                    nodata=_joined(nodata),
                )
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            env.close()
            with self._lock:
                for scene in self._scenes:
                    scene.close()
                self._scenes.clear()

    def _take(
        self, buffer: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n: int
    ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], list[tuple[np.ndarray, np.ndarray, np.ndarray]], int]:
        """Split the first ``n`` chips off a buffer of unit outputs."""
        first = buffer[0]
        if len(first[0]) == n:
            return first, buffer[1:], sum(len(b[0]) for b in buffer[1:])
        ids = np.concatenate([b[0] for b in buffer])
        fractions = np.concatenate([b[1] for b in buffer])
        out = self.allocate(n, self.image_spec.size)
        filled = 0
        rest = []
        for b_ids, b_frac, b_pix in buffer:
            take = min(len(b_ids), n - filled)
            if take:
                out[filled : filled + take] = b_pix[:take]
                filled += take
            if take < len(b_ids):
                rest.append((b_ids[take:], b_frac[take:], b_pix[take:]))
        return (ids[:n], fractions[:n], out), rest, len(ids) - n


ProgressCallback = Callable[[int, int], None]


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)
