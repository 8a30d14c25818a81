"""Opening a scene: validation, band choice, resampling and the chip grid.

A :class:`Scene` wraps an open rasterio dataset (or a ``WarpedVRT`` of it when
``--gsd`` resamples) and knows how to cut one chip into the model's 8-bit RGB
input plus its validity mask. It never reads the scene whole.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import CRSError, NotGeoreferencedWarning, RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from rsgeo.definitions.lengths import Length, LengthError
from rsgeo.errors import NotGeoreferencedError, OptionError, SceneError, gdal_reason, opt, spelt
from rsgeo.grid import FEW_TILES, ChipGrid, ChipSpec, apply_affine, default_chip_px
from rsgeo.sources import (
    SceneSource,
    remote_gdal_options,
    remote_hint,
    remote_read_failed,
)
from rsgeo.stretch import Stretch, compute_stretch

logger = logging.getLogger(__name__)

DEFAULT_MIN_VALID = 0.5
#: ``--gsd`` may upsample a scene at most this many times per axis: finer
#: grids add no information, and a typo (0.001 for 1) would ask for billions of chips.
MAX_UPSAMPLING = 16.0


@dataclass(frozen=True)
class ReadOptions:
    """How chips are cut and scaled; every field is recorded in the output.

    Attributes:
        chip_size: chip side as ``int`` pixels, or a string ending in ``m``
            (metres, e.g. ``"500m"``); ``None`` = the ground side of the model's
            training images in this scene's pixels (16-896 px; the model's input
            size when its training scale is unknown).
        stride: step between chips in pixels (or ``"250m"``); ``None`` = no
            overlap (or as given by ``overlap``).
        overlap: fraction of a chip shared with its neighbour, in ``[0, 1)``;
            used only when ``stride`` is ``None``.
        bands: 1-based band indices, 1 or 3 of them; ``None`` picks the RGB
            bands by colour interpretation.
        stretch: ``auto``, ``none``, ``percentile:LOW,HIGH`` or ``range:LOW,HIGH``.
        gsd: resample the scene to this ground sample distance (metres) first.
        min_valid: chips with a smaller fraction of valid pixels are skipped.
    """

    chip_size: Length | int | str | None = None
    stride: Length | int | str | None = None
    overlap: float = 0.0
    bands: tuple[int, ...] | None = None
    stretch: str = "auto"
    gsd: float | None = None
    min_valid: float = DEFAULT_MIN_VALID

    def __post_init__(self) -> None:
        for name in ("chip_size", "stride"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, as_length(value, name))
        if not 0.0 < self.min_valid <= 1.0:
            raise OptionError(f"{opt('min_valid')} must be in (0, 1], got {self.min_valid}")
        if self.gsd is not None and not (self.gsd > 0 and math.isfinite(self.gsd)):
            raise OptionError(f"{opt('gsd')} must be a positive number of metres, got {self.gsd}")


def as_length(value: Length | int | str, option: str) -> Length:
    """``value`` as a :class:`Length` (pixels or metres); one :class:`OptionError` line naming ``option`` if not."""
    try:
        return Length.parse(value)
    except LengthError as exc:
        if exc.reason == "positive":
            raise OptionError(f"{opt(option)} must be a positive length, got {value!r}") from None
        raise OptionError(f"{opt(option)} takes whole pixels (224) or metres (500m), got {value!r}") from None


def parse_bands(text: str) -> tuple[int, ...]:
    """``"4,3,2"`` → ``(4, 3, 2)`` with a clear error for anything else."""
    try:
        bands = tuple(int(b) for b in text.replace(" ", "").split(","))
    except ValueError:
        raise OptionError(f"{opt('bands')} takes 1-based band numbers like 4,3,2, got {text!r}") from None
    return bands


def open_dataset(path: str | os.PathLike[str] | SceneSource) -> Any:
    """Open a raster with rasterio, turning GDAL failures into one clear line.

    A remote scene (a ``/vsi…`` path or URL, see :mod:`rsgeo.sources`) is
    opened with :func:`~rsgeo.sources.remote_gdal_options`; a failure names
    what to check for its kind of storage (URL, credentials).
    """
    source = SceneSource.of(path)
    from rsgeo.stac import is_stac_item

    if is_stac_item(source.path):  # a local item file, or an item URL
        from rsgeo.stac import item_vrt

        from rasterio.io import MemoryFile

        _, vrt = item_vrt(source.path)
        with rasterio.Env(**remote_gdal_options()):
            # Opened as a named in-memory file, so that messages naming the dataset say item.json, not its XML;
            # GDAL has parsed the VRT once it is open, so the file may go when the MemoryFile does.
            return MemoryFile(vrt.encode(), filename=source.name).open()
    if not source.remote:
        local = source.local
        if not local.exists():
            raise SceneError(f"{local} does not exist; check the path")
        if local.is_dir():
            raise SceneError(f"{local} is a folder, not a raster file")
    try:
        with warnings.catch_warnings(), rasterio.Env(**(remote_gdal_options() if source.remote else {})):
            # check_georeferenced() turns a missing geotransform into one clear error.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(source.path)
    except RasterioIOError as exc:
        reason = gdal_reason(exc)
        if source.remote and "not recognized as being in a supported file format" not in reason:
            raise SceneError(f"cannot open the remote scene {source.path} ({reason}); {remote_hint(source.path)}") from None
        raise SceneError(
            f"{source.path if source.remote else source.local} is not a raster GDAL can read ({reason}); "
            "check that it is a complete GeoTIFF (is it still being copied?)"
        ) from None


def pixel_size_m(dataset: Any) -> float:
    """Mean pixel side in metres (geographic CRS: measured at the scene centre)."""
    t = dataset.transform
    px_x = math.hypot(t.a, t.d)
    px_y = math.hypot(t.b, t.e)
    crs = dataset.crs
    if crs.is_geographic:
        geod = crs_geod(crs)
        cx, cy = apply_affine(t, dataset.width / 2, dataset.height / 2)
        _, _, dx = geod.inv(cx, cy, cx + px_x, cy)
        _, _, dy = geod.inv(cx, cy, cx, cy + px_y)
        return float((abs(dx) + abs(dy)) / 2)
    factor = metres_per_unit(crs)
    if factor is None:
        raise OptionError(
            f"lengths in metres need a CRS in linear units, but the CRS of {Path(dataset.name).name} has none "
            f"({crs.to_string()[:80]}); give {opt('chip_size')}/{opt('stride')} in pixels (e.g. 224), and no {opt('gsd')}"
        )
    return float((px_x + px_y) / 2 * factor)


def metres_per_unit(crs: Any) -> float | None:
    """Metres per unit of a projected or local CRS's axes; ``None`` if its unit is not a known length."""
    try:
        factor = float(crs.linear_units_factor[1]) if crs.linear_units_factor else 1.0
    except CRSError:  # not projected (an engineering or local CRS): read its axes' unit
        from pyproj import CRS
        from pyproj.exceptions import CRSError as ProjCRSError

        try:
            axes = CRS.from_wkt(crs.to_wkt()).axis_info[:2]
        except ProjCRSError:
            return None
        units = {(a.unit_name.casefold(), a.unit_conversion_factor) for a in axes}
        if len(units) != 1 or not axes:
            return None
        name, factor = units.pop()
        if name in ("", "unknown", "none", "degree", "radian") or "grad" in name:
            return None
    return factor if math.isfinite(factor) and factor > 0 else None


def crs_geod(crs: Any) -> Any:
    """The ``pyproj.Geod`` of a geographic CRS's own ellipsoid (Mars' for a Mars CRS), WGS84 if it names none."""
    from pyproj import CRS, Geod
    from pyproj.exceptions import CRSError as ProjCRSError

    try:
        geod = CRS.from_wkt(crs.to_wkt()).get_geod()
    except ProjCRSError:
        geod = None
    return geod if geod is not None else Geod(ellps="WGS84")


def choose_bands(dataset: Any, bands: tuple[int, ...] | None) -> tuple[int, int, int]:
    """Resolve the three bands fed as R, G, B (one band is repeated as grey)."""
    count = dataset.count
    if bands is not None:
        bad = [b for b in bands if not 1 <= b <= count]
        if bad:
            raise OptionError(
                f"band {bad[0]} does not exist: {Path(dataset.name).name} has {count} band(s), numbered 1 to {count}"
            )
        if len(bands) == 1:
            return (bands[0],) * 3
        if len(bands) != 3:
            raise OptionError(f"{opt('bands')} takes 1 or 3 bands (R,G,B or grey), got {len(bands)}")
        return bands
    interp = list(dataset.colorinterp)
    rgb = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
    if all(c in interp for c in rgb):
        return tuple(interp.index(c) + 1 for c in rgb)  # type: ignore[return-value]
    colour = [i + 1 for i, c in enumerate(interp) if c != ColorInterp.alpha]
    if len(colour) == 1:
        return (colour[0],) * 3
    if len(colour) == 3 and count <= 4:
        return tuple(colour)  # type: ignore[return-value]
    raise OptionError(
        f"{Path(dataset.name).name} has {count} bands and no red/green/blue colour interpretation; "
        f"choose the true-colour bands with {opt('bands')}, e.g. {opt('bands', '4,3,2')} for Sentinel-2 or 3,2,1 for "
        "Landsat 7"
    )


def check_georeferenced(dataset: Any) -> None:
    name = Path(dataset.name).name
    if dataset.transform == Affine.identity() and dataset.gcps[0]:
        raise NotGeoreferencedError(
            f"{name} is georeferenced by GCPs only; warp it first with `gdalwarp {name} warped.tif`"
        )
    if dataset.transform == Affine.identity() and dataset.rpcs is not None:
        raise NotGeoreferencedError(
            f"{name} is georeferenced by RPCs only; orthorectify it first with `gdalwarp -rpc {name} ortho.tif`"
        )
    if dataset.crs is None:
        raise NotGeoreferencedError(
            f"{name} has no CRS; assign one with `rio edit-info --crs EPSG:<code> {name}`"
        )
    if dataset.transform == Affine.identity():
        raise NotGeoreferencedError(
            f"{name} has no geotransform; georeference it first (e.g. gdal_translate -a_ullr or gdalwarp)"
        )


def _read_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a GDAL read failure of a window into one clear :class:`SceneError`.

    A file whose header is intact but whose data is cut off or corrupt (still
    being copied, a broken download) opens fine and fails only when the
    damaged blocks are read, in the middle of a run.
    """

    @functools.wraps(method)
    def wrapper(self: Scene, window: Window, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, window, *args, **kwargs)
        except RasterioIOError as exc:
            if self.source_ref.remote:
                where = f"at its pixels at column {int(window.col_off)}, row {int(window.row_off)}"
                raise SceneError(remote_read_failed(self.source_ref.path, where, gdal_reason(exc))) from exc
            raise SceneError(
                f"{self.name} is damaged or incomplete: its pixels at column {int(window.col_off)}, "
                f"row {int(window.row_off)} cannot be read ({gdal_reason(exc)}); copy the file again "
                f"(was it still being copied?) or check it with `gdalinfo -checksum {self.name}`"
            ) from exc

    return wrapper


class Scene:
    """An open scene ready to be cut into chips. Use as a context manager."""

    def __init__(
        self, path: str | os.PathLike[str] | SceneSource, options: ReadOptions, *, stretch: Stretch | None = None
    ) -> None:
        #: Where the scene is read from; ``path`` is a ``Path`` for a local file, the ``str`` for a remote one.
        self.source_ref = SceneSource.of(path)
        self.path: Path | str = self.source_ref.path if self.source_ref.remote else self.source_ref.local
        #: The file name, for messages.
        self.name = self.source_ref.name
        self.options = options
        self._stack = ExitStack()
        src = open_dataset(self.source_ref)
        self._stack.callback(src.close)
        try:
            check_georeferenced(src)
            check_real_data(src)
            self.source = src
            self.bands = choose_bands(src, options.bands)
            #: A paletted scene's colour table as a ``(3, N)`` lookup: its indices are read as the table's RGB.
            self.palette = palette_lookup(src, options.bands)
            if self.palette is not None and stretch is None and options.stretch != "auto":
                raise OptionError(
                    f"{self.name} is paletted: its colours come from its colour table; leave out {opt('stretch')} "
                    f"(or read the indices as grey with {opt('bands', '1')})"
                )
            self.stretch: Stretch = stretch or (
                Stretch("none", (0.0,) * 3, (255.0,) * 3) if self.palette is not None
                else compute_stretch(src, self.bands, options.stretch)
            )
            self.dataset = self._resampled(src) if options.gsd else src
        except BaseException:
            self._stack.close()
            raise
        self._alpha_band = _alpha_band(self.dataset)
        self._dataset_mask = self._alpha_band is not None or any(
            MaskFlags.per_dataset in flags for flags in self.dataset.mask_flag_enums
        )

    def _resampled(self, src: Any) -> Any:
        res = pixel_size_m(src)
        scale = self.options.gsd / res  # type: ignore[operator]
        if scale < 1.0 / MAX_UPSAMPLING:
            raise OptionError(
                f"{opt('gsd', format(self.options.gsd, 'g'))} m is {1 / scale:.0f} times finer than the {res:.3g} m pixels of "
                f"{self.name}; upsampling adds no detail: use a {opt('gsd')} of at least {res / MAX_UPSAMPLING:.3g} m "
                "(is the value in metres?)"
            )
        width = max(1, int(round(src.width / scale)))
        height = max(1, int(round(src.height / scale)))
        transform = src.transform * Affine.scale(src.width / width, src.height / height)
        resampling = Resampling.average if scale > 1 else Resampling.bilinear
        if self.palette is not None:  # indices: averaging two colours' indices gives a third colour
            resampling = Resampling.nearest
        logger.info("resampling %s from %.3f m to %.3f m: %d x %d", self.name, res, self.options.gsd, width, height)
        vrt = WarpedVRT(src, crs=src.crs, transform=transform, width=width, height=height, resampling=resampling)
        self._stack.callback(vrt.close)
        return vrt

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()

    # -- the grid ---------------------------------------------------------

    @property
    def pixel_size_m(self) -> float:
        return pixel_size_m(self.dataset)

    def _to_pixels(self, length: Length, what: str) -> int:
        if length.pixels is not None:
            return length.pixels
        res = self.pixel_size_m
        pixels = round(length.value / res)
        if pixels < 1:
            raise OptionError(
                f"{what} {length} is less than one pixel of {self.name} ({res:.3g} m); "
                "give a length of at least one pixel"
            )
        return pixels

    def chip_spec(self, model_input: int, training_extent_m: float | None = None) -> ChipSpec:
        """The chip size and stride in pixels of the (resampled) scene.

        Without a chip size the model's training ground extent in this scene's
        pixels (:func:`~rsgeo.grid.default_chip_px`; the model's input size when
        the extent is unknown), at most the scene's longer side.
        """
        opts = self.options
        if opts.chip_size is None:
            size = default_chip_px(model_input, self.pixel_size_m, training_extent_m)
            if training_extent_m is not None:
                size = min(size, max(self.dataset.width, self.dataset.height))
        else:
            size = self._to_pixels(as_length(opts.chip_size, "chip_size"), opt("chip_size"))
        if opts.chip_size is not None and size > max(self.dataset.width, self.dataset.height):
            raise OptionError(
                f"chip size {size} px is larger than the scene ({self.dataset.width} x {self.dataset.height} px); "
                f"use a smaller {opt('chip_size')}, or leave it out to get one chip for the whole scene"
            )
        if opts.stride is not None:
            stride = self._to_pixels(as_length(opts.stride, "stride"), opt("stride"))
            return ChipSpec(size, stride)
        return ChipSpec.from_overlap(size, opts.overlap)

    def grid(self, model_input: int, training_extent_m: float | None = None) -> ChipGrid:
        d = self.dataset
        return ChipGrid(d.width, d.height, d.transform, self.chip_spec(model_input, training_extent_m), crs=d.crs)

    def few_tiles_warning(self, grid: ChipGrid) -> str | None:
        """The warning for a default chip that gives ``grid`` fewer than :data:`~rsgeo.grid.FEW_TILES` tiles.

        A chip size the user chose is not second-guessed. The run logs it once its output is written, so a
        run that fails still says one line.
        """
        if self.options.chip_size is not None or len(grid) >= FEW_TILES:
            return None
        ground = grid.spec.size_px * self.pixel_size_m
        return spelt(
            f"{self.name} gives only {len(grid)} tile{'' if len(grid) == 1 else 's'} of {grid.spec.size_px} px "
            f"({ground:.0f} m); for a finer answer give a smaller {opt('chip_size')} (pixels, or metres such as 100m)"
        )

    # -- reading ------------------------------------------------------------

    @_read_errors
    def read_chip(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """One chip as ``uint8`` ``(H, W, 3)`` (invalid pixels 0) and its mask."""
        unique = tuple(dict.fromkeys(self.bands))
        data = self.dataset.read(unique, window=window)
        valid = self.valid_mask(window, unique, data)
        data = palette_rgb(self.palette, data) if self.palette is not None else data[[unique.index(b) for b in self.bands]]
        rgb = self.stretch.apply(data)
        if not valid.all():
            rgb = np.where(valid, rgb, 0).astype(np.uint8)
        return np.ascontiguousarray(rgb.transpose(1, 2, 0)), valid

    @_read_errors
    def valid_mask(self, window: Window, bands: tuple[int, ...], data: np.ndarray) -> np.ndarray:
        """True where a pixel holds data: GDAL masks (nodata, alpha, internal
        mask) and, for floats, finite values. A pixel is valid if any chosen
        band is valid (GDAL's dataset-mask convention)."""
        d = self.dataset
        valid: np.ndarray
        if self._dataset_mask:
            valid = d.read_masks(1, window=window) > 0
        elif any(d.nodatavals[b - 1] is not None for b in bands):
            valid = (d.read_masks(bands, window=window) > 0).any(axis=0)
        else:
            valid = np.ones(data.shape[1:], bool)
        if data.dtype.kind == "f":
            valid &= np.isfinite(data).all(axis=0)
        return valid

    @_read_errors
    def read_region(self, window: Window) -> tuple[np.ndarray, np.ndarray | None]:
        """A window of any size as band-first ``uint8`` ``(3, H, W)`` and its mask.

        The same steps as :meth:`read_chip`, all of them per pixel, so every
        chip cut from a region equals ``read_chip`` of its window (for the
        unwarped scene): the reader decodes a block-aligned strip once and
        cuts many chips from it. Invalid pixels are 0. The mask is ``None``
        when every pixel is valid.
        """
        unique = tuple(dict.fromkeys(self.bands))
        data = self.dataset.read(unique, window=window)
        d = self.dataset
        maskless = (
            not self._dataset_mask
            and all(d.nodatavals[b - 1] is None for b in unique)
            and data.dtype.kind != "f"
        )
        valid = None if maskless else self.valid_mask(window, unique, data)
        order = [unique.index(b) for b in self.bands]
        if self.palette is not None:
            data = palette_rgb(self.palette, data)
        elif order != list(range(len(unique))):
            data = data[order]
        rgb = self.stretch.apply(data)
        if valid is not None and not valid.all():
            rgb = np.where(valid, rgb, 0).astype(np.uint8)
        elif valid is not None:
            valid = None
        return rgb, valid


def check_real_data(dataset: Any) -> None:
    """Refuse complex pixels (SAR single-look complex): casting them to real drops the imaginary part."""
    kinds = {str(t) for t in dataset.dtypes if "complex" in str(t)}
    if kinds:
        name = Path(dataset.name).name
        raise SceneError(
            f"{name} holds complex numbers ({', '.join(sorted(kinds))}, e.g. SAR single-look complex data); rsgeo reads "
            f"real images: derive the amplitude first, e.g. `gdal_calc.py -A {name} --calc=\"abs(A)\" "
            "--type=Float32 --outfile=amplitude.tif`"
        )


def palette_lookup(dataset: Any, bands: tuple[int, ...] | None) -> np.ndarray | None:
    """The colour table of a one-band paletted scene as ``uint8`` ``(3, N)`` RGB, else ``None``.

    Only when no bands are chosen (or exactly band 1 three times is implied):
    ``--bands 1`` reads the indices as grey, as asked.
    """
    if bands is not None or dataset.count != 1 or dataset.colorinterp[0] != ColorInterp.palette:
        return None
    try:
        table = dataset.colormap(1)
    except ValueError:  # palette interpretation without a table
        return None
    size = max(table) + 1 if table else 1
    lut = np.zeros((3, size), np.uint8)
    for index, rgba in table.items():
        lut[:, index] = rgba[:3]
    return lut


def palette_rgb(lut: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Indices ``(1, H, W)`` → the colour table's ``uint8`` RGB ``(3, H, W)``."""
    out: np.ndarray = lut[:, np.minimum(data[0], lut.shape[1] - 1)]
    return out


def _alpha_band(dataset: Any) -> int | None:
    for i, c in enumerate(dataset.colorinterp):
        if c == ColorInterp.alpha:
            return i + 1
    return None

