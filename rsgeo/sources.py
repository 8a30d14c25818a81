"""Where a scene is read from: a local file, or a GDAL virtual path or URL.

GDAL reads scenes from object storage and web servers through its virtual
file systems (``/vsis3/bucket/key.tif``, ``/vsicurl/https://host/x.tif``,
``/vsigs/``, ``/vsiaz/`` ...), and rasterio maps URLs (``https://``,
``s3://``, ``gs://``) onto them. Such a *remote* path is not a file of this
machine, and three things the pipeline does with local files do not work:

* it must stay a ``str``: ``pathlib`` folds the ``//`` of ``http://``;
* it has no cheap ``stat`` (size, mtime), the journal's identity of a local scene;
* hashing it whole would download it whole.

:class:`SceneSource` tells the two kinds apart and gives the display name
used in output names and messages; :func:`identify` gives the scene identity
a run records (journal and metadata): for a local file its absolute path,
size and mtime as always; for a remote one its path and a content
*fingerprint* read through GDAL (:func:`fingerprint`). The GDAL settings used
to open remote paths are here too (:func:`remote_gdal_options`).
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from rsgeo.errors import opt

#: ``scheme://`` at the start of a URL (``https://``, ``s3://``, ``gs://`` ...).
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
#: A URL inside a GDAL path (``/vsicurl/https://host/x.tif?sig=…``).
_URL_ANYWHERE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S*")
#: ``/vsicurl/http:/host`` is what ``pathlib`` makes of ``/vsicurl/http://host``.
_FOLDED_URL = re.compile(r"^(/vsicurl(?:_streaming)?/)([A-Za-z][A-Za-z0-9+.\-]*):/(?!/)")
#: Version of the :func:`fingerprint` recipe, stored with every fingerprint.
FINGERPRINT_VERSION = "rsgeo-fp1"
#: GDAL settings rsgeo applies when it opens a remote scene, unless the same
#: variable is set in the environment. ``EMPTY_DIR``: GDAL does not list the
#: scene's "folder" (an extra HTTP request, or an S3 ListBucket that needs
#: its own permission) to look for side-car files; the scene must be
#: self-contained (internal overviews and masks, as in a COG).
REMOTE_GDAL_DEFAULTS = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}


def is_remote(path: str | os.PathLike[str]) -> bool:
    """True for GDAL virtual paths (``/vsi…``) and URLs other than ``file://``."""
    text = os.fspath(path)
    if text.startswith("/vsi"):
        return True
    return bool(_URL.match(text)) and not text.lower().startswith("file://")


@dataclass(frozen=True)
class SceneSource:
    """A scene's location, as GDAL opens it.

    Attributes:
        path: the string handed to GDAL (rasterio): a local path, or the
            remote path exactly as given (after repairing a ``//`` that
            ``pathlib`` folded).
        remote: whether ``path`` is a GDAL virtual path or URL (see :func:`is_remote`).
    """

    path: str
    remote: bool

    @classmethod
    def of(cls, path: str | os.PathLike[str] | SceneSource) -> SceneSource:
        if isinstance(path, SceneSource):
            return path
        text = os.fspath(path)
        if text.lower().startswith("file://"):
            return cls(urlsplit(text).path, False)
        if is_remote(text):
            return cls(_FOLDED_URL.sub(r"\1\2://", text), True)
        return cls(text, False)

    def __str__(self) -> str:
        return self.path

    @property
    def local(self) -> Path:
        """The local file (only for a scene that is not remote)."""
        if self.remote:
            raise ValueError(f"{self.path} is not a local file")
        return Path(self.path)

    @property
    def _object_path(self) -> str:
        """The path part of a remote location, without query string or GDAL prefix options."""
        text = self.path
        if text.startswith(("/vsicurl?", "/vsicurl_streaming?")):
            url = parse_qs(text.split("?", 1)[1]).get("url", [""])[0]
            return unquote(urlsplit(url).path)
        match = _URL_ANYWHERE.search(text)
        return unquote(urlsplit(match.group(0)).path) if match else text

    @property
    def name(self) -> str:
        """The file name: ``x.tif`` of ``/vsicurl/https://host/dir/x.tif?sig=…``."""
        if not self.remote:
            return Path(self.path).name
        return posixpath.basename(self._object_path.rstrip("/")) or self.path

    @property
    def stem(self) -> str:
        """The file name without its extension (output names of ``rsgeo batch``)."""
        if not self.remote:
            return Path(self.path).stem
        name = self.name
        stem, dot, _ = name.rpartition(".")
        return stem if dot and stem else name

    @property
    def parent_name(self) -> str:
        """The name of the folder (or URL path segment) holding the scene."""
        if not self.remote:
            return Path(self.path).parent.name
        return posixpath.basename(posixpath.dirname(self._object_path.rstrip("/")))


def remote_gdal_options() -> dict[str, str]:
    """GDAL settings for opening a remote scene (:data:`REMOTE_GDAL_DEFAULTS`
    not overridden by the environment)."""
    return {k: v for k, v in REMOTE_GDAL_DEFAULTS.items() if k not in os.environ}


def what_to_check(path: str) -> str:
    """What to check when a remote scene cannot be read, for its kind of storage."""
    text = path.lower()
    if text.startswith(("/vsis3", "s3://")):
        return (
            "the bucket and key, and the credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), "
            "AWS_REGION, or AWS_NO_SIGN_REQUEST=YES for a public bucket; AWS_S3_ENDPOINT for other S3 services"
        )
    if text.startswith(("/vsigs", "gs://")):
        return "the bucket and object, and the credentials: GOOGLE_APPLICATION_CREDENTIALS, or GS_NO_SIGN_REQUEST=YES"
    if text.startswith(("/vsiaz", "az://")):
        return "the container and blob, and the credentials: AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT"
    return (
        "the URL (try it with curl -I), that the server answers HTTP range requests, and GDAL's HTTP "
        "settings: GDAL_HTTP_HEADERS or GDAL_HTTP_AUTH for credentials, GDAL_HTTP_PROXY, GDAL_HTTP_TIMEOUT"
    )


def remote_hint(path: str) -> str:
    """The fix part of the one-line error for a remote scene that cannot be opened."""
    return f"check {what_to_check(path)} (see docs/cluster.md)"


def remote_read_failed(path: str, where: str, reason: str, *, mid_run: bool = True) -> str:
    """The one-line error for a remote scene that opened but whose pixels cannot be read."""
    then = f", then rerun with {opt('resume')} to continue from the chips already encoded" if mid_run else ""
    return (
        f"{path} cannot be read {where} ({reason}): the connection failed, or the file is damaged or incomplete; "
        f"check it with `gdalinfo -checksum {path}`{then}"
    )


@dataclass(frozen=True)
class SceneIdentity:
    """What a run records of its scene, to refuse resuming on another one.

    A local file is known by its absolute path, size and mtime (cheap, and
    what every rsgeo version recorded); a remote one by its path and
    :func:`fingerprint`.
    """

    path: str
    bytes: int | None = None
    mtime_ns: int | None = None
    fingerprint: str | None = None
    #: The id of the STAC item the scene was read through (rsgeo.stac), if any.
    stac_item_id: str | None = None

    def journal_key(self) -> dict[str, Any]:
        """The scene's part of the journal identity (local: as before remote scenes existed)."""
        if self.fingerprint is None:
            return {"path": self.path, "bytes": self.bytes, "mtime_ns": self.mtime_ns}
        return {"path": self.path, "fingerprint": self.fingerprint}

    def metadata(self) -> dict[str, Any]:
        """The scene's location fields of ``rsgeo_metadata.scene`` (see docs/schema.md)."""
        meta: dict[str, Any] = {"path": self.path, "bytes": self.bytes}
        if self.fingerprint is not None:
            meta["fingerprint"] = self.fingerprint
        if self.stac_item_id is not None:
            meta["stac_item_id"] = self.stac_item_id
        return meta


def identify(source: SceneSource, dataset: Any, *, stac_item_id: str | None = None) -> SceneIdentity:
    """The identity of ``source``, open as ``dataset`` (read for a remote fingerprint); ``stac_item_id``: the id of
    the STAC item ``source`` is (:mod:`rsgeo.stac`), if it is one."""
    if source.remote:
        from rasterio.errors import RasterioIOError

        from rsgeo.errors import SceneError, gdal_reason

        try:
            return SceneIdentity(source.path, fingerprint=fingerprint(dataset), stac_item_id=stac_item_id)
        except RasterioIOError as exc:
            where = "to fingerprint it"
            raise SceneError(remote_read_failed(source.path, where, gdal_reason(exc), mid_run=False)) from None
    path = source.local
    stat = path.stat()
    return SceneIdentity(str(path.resolve()), bytes=stat.st_size, mtime_ns=stat.st_mtime_ns, stac_item_id=stac_item_id)


def content_sha256(source: SceneSource) -> str | None:
    """SHA-256 of a local scene file; ``None`` for a remote one (it would be downloaded whole)."""
    if source.remote:
        return None
    h = hashlib.sha256()
    with open(source.local, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def fingerprint(dataset: Any) -> str:
    """A content fingerprint of an open raster, read through GDAL.

    SHA-256 over the raster's profile (size, band count, data types, CRS,
    transform, nodata, block shapes) and the decoded pixels of three internal
    blocks of every band: the first, the middle and the last. It costs a few
    block reads, not a download, and changes when the scene is replaced by
    another or re-encoded differently; an edit confined to other blocks goes
    unnoticed (it is a fingerprint, not a hash of the file).
    """
    profile = {
        "width": dataset.width,
        "height": dataset.height,
        "count": dataset.count,
        "dtypes": list(dataset.dtypes),
        "crs": dataset.crs.to_wkt() if dataset.crs is not None else None,
        "transform": list(dataset.transform)[:6],
        "nodata": [None if v is None else repr(float(v)) for v in dataset.nodatavals],
        "block_shapes": [list(s) for s in dataset.block_shapes],
    }
    h = hashlib.sha256(json.dumps(profile, sort_keys=True).encode())
    by_shape: dict[tuple[int, int], list[int]] = {}
    for band, shape in enumerate(dataset.block_shapes, start=1):
        by_shape.setdefault(tuple(shape), []).append(band)
    for shape, bands in sorted(by_shape.items()):
        n_y = -(-dataset.height // shape[0])
        n_x = -(-dataset.width // shape[1])
        picks = dict.fromkeys([(0, 0), (n_y // 2, n_x // 2), (n_y - 1, n_x - 1)])
        for i, j in picks:
            window = dataset.block_window(bands[0], i, j)
            h.update(dataset.read(bands, window=window).tobytes())
    return f"{FINGERPRINT_VERSION}:{h.hexdigest()}"
