"""Cloud-Optimised GeoTIFFs written atomically, with the side files QGIS reads.

:func:`write_cog` turns a NumPy array into a COG (GDAL's ``COG`` driver:
tiled, deflate, overviews, IFDs first) in a temporary file beside the target
and moves it into place with one ``os.replace``; a failed or interrupted write
leaves the target as it was. Category names (which GeoTIFF cannot hold) go in
GDAL's ``.aux.xml`` sidecar and a QGIS style in a ``.qml`` sidecar (QGIS
applies ``NAME.qml`` beside ``NAME.tif`` when the raster is opened); both are
written the same way, and a stale sidecar of an earlier raster of that name is
removed. Temporary files left by a killed run are removed by the next write
of the same raster.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from rsgeo.definitions.schema import (
    RASTER_PAM_SUFFIX,
    RASTER_STYLE_SUFFIX,
    raster_sidecars,
    temporary_raster_name,
    temporary_raster_pid,
)
from rsgeo.errors import OutputError

logger = logging.getLogger(__name__)

__all__ = ["CogOptions", "remove_raster", "write_cog"]

#: An RGBA colour of a colour-table entry.
Rgba = tuple[int, int, int, int]


@dataclass(frozen=True)
class CogOptions:
    """How the COG is laid out.

    ``overview_count`` ``None`` lets GDAL choose (halving until a level fits in
    one block; none for a raster of one block); a number forces that many
    levels. ``resampling`` is the overviews' resampling (``nearest`` for
    classes, ``average`` for scores).
    """

    blocksize: int = 256
    compress: str = "DEFLATE"
    resampling: str = "nearest"
    overview_count: int | None = None


def write_cog(
    path: str | os.PathLike[str],
    data: np.ndarray,
    *,
    transform: Any,
    crs: Any,
    nodata: float | None = None,
    colormap: Mapping[int, Sequence[int]] | None = None,
    category_names: Sequence[str] | None = None,
    descriptions: Sequence[str] | None = None,
    tags: Mapping[str, str] | None = None,
    qml: str | None = None,
    options: CogOptions = CogOptions(),
) -> Path:
    """Write ``data`` (``(bands, rows, cols)`` or ``(rows, cols)``) as a COG at ``path``.

    Args:
        transform: the raster's affine transform (any rotation).
        crs: anything rasterio takes as a CRS, or ``None``.
        nodata: the value of cells without data (``nan`` for float bands).
        colormap: ``{value: (r, g, b[, a])}`` for band 1 (single-band ``uint8``/``uint16`` only).
        category_names: band 1's name per value ``0..n-1`` (in the ``.aux.xml`` sidecar).
        descriptions: one description per band.
        tags: dataset metadata items.
        qml: a QGIS style written as the ``.qml`` sidecar.
        options: layout (block size, compression, overviews).

    Returns the path written. Raises :class:`OutputError` when it cannot be written.
    """
    import rasterio
    import rasterio.shutil
    from rasterio.io import MemoryFile

    target = Path(path)
    array = data[np.newaxis] if data.ndim == 2 else data
    if array.ndim != 3:
        raise ValueError(f"a raster is (bands, rows, cols) or (rows, cols), not shape {data.shape}")
    count, height, width = array.shape
    if descriptions is not None and len(descriptions) != count:
        raise ValueError(f"{len(descriptions)} band descriptions for {count} bands")
    if colormap is not None and (count != 1 or array.dtype not in (np.uint8, np.uint16)):
        raise ValueError("a colour table needs one uint8 or uint16 band")
    _remove_stale_temporaries(target)
    tmp = target.with_name(temporary_raster_name(target, os.getpid()))
    written: list[Path] = []
    try:
        profile: dict[str, Any] = {
            "driver": "GTiff", "width": width, "height": height, "count": count, "dtype": array.dtype.name,
            "transform": transform, "crs": crs, "nodata": nodata,
        }
        with MemoryFile() as memfile, memfile.open(**profile) as mem:
            mem.write(array)
            if colormap is not None:
                mem.write_colormap(1, {int(k): _rgba(v) for k, v in colormap.items()})
            for band, text in enumerate(descriptions or (), start=1):
                mem.set_band_description(band, text)
            if tags:
                mem.update_tags(**{str(k): str(v) for k, v in tags.items()})
            creation = {
                "BLOCKSIZE": str(options.blocksize), "COMPRESS": options.compress,
                "OVERVIEW_RESAMPLING": options.resampling.upper(), "BIGTIFF": "IF_SAFER",
            }
            if options.compress.upper() in ("DEFLATE", "LZW", "ZSTD"):
                creation["PREDICTOR"] = "YES" if array.dtype.kind == "f" else "NO"
            if options.overview_count is not None:
                if options.overview_count == 0:
                    creation["OVERVIEWS"] = "NONE"
                else:
                    creation["OVERVIEW_COUNT"] = str(options.overview_count)
            with rasterio.Env(GDAL_PAM_ENABLED="NO"):
                rasterio.shutil.copy(mem, str(tmp), driver="COG", **creation)
        written.append(tmp)
        _fsync(tmp)
        sidecars: dict[str, str | None] = {
            RASTER_PAM_SUFFIX: _pam_xml(category_names) if category_names is not None else None,
            RASTER_STYLE_SUFFIX: qml,
        }
        for suffix, side_text in sidecars.items():
            side = Path(str(target) + suffix) if suffix == RASTER_PAM_SUFFIX else target.with_suffix(suffix)
            if side_text is None:
                side.unlink(missing_ok=True)  # a stale sidecar would restyle or rename the new raster
                continue
            side_tmp = side.with_name(f".{side.name}.tmp-{os.getpid()}")
            side_tmp.write_text(side_text, encoding="utf-8")
            written.append(side_tmp)
            _fsync(side_tmp)
            os.replace(side_tmp, side)
        os.replace(tmp, target)
        _fsync_folder(target.parent)
    except BaseException as exc:
        for p in written:
            p.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno is not None:
            raise OutputError(f"cannot write {target} ({exc.strerror or exc}); check the folder's free space and permissions") from exc
        raise
    logger.info("wrote %s (%d band%s, %d x %d)", target, count, "" if count == 1 else "s", width, height)
    return target


def remove_raster(path: str | os.PathLike[str]) -> None:
    """Remove a raster rsgeo wrote and its sidecars (``.aux.xml``, ``.qml``), as far as they exist."""
    target = Path(path)
    for p in (target, *raster_sidecars(target)):
        p.unlink(missing_ok=True)


def _rgba(colour: Sequence[int]) -> Rgba:
    c = [int(v) for v in colour]
    if len(c) == 3:
        c.append(255)
    if len(c) != 4:
        raise ValueError(f"a colour is (r, g, b) or (r, g, b, a), not {tuple(colour)}")
    return (c[0], c[1], c[2], c[3])


def _pam_xml(category_names: Sequence[str]) -> str:
    """GDAL's PAM sidecar holding band 1's category names (value ``i`` is ``category_names[i]``)."""
    cats = "".join(f"<Category>{escape(name)}</Category>" for name in category_names)
    return (
        '<PAMDataset>\n  <PAMRasterBand band="1">\n'
        f"    <CategoryNames>{cats}</CategoryNames>\n"
        "  </PAMRasterBand>\n</PAMDataset>\n"
    )


def _remove_stale_temporaries(target: Path) -> None:
    try:
        names = os.listdir(target.parent)
    except OSError:
        return
    for name in names:
        pid = temporary_raster_pid(target, name)
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        logger.info("removing %s, left by a run that was killed", name)
        (target.parent / name).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
