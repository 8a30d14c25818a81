"""Finding scenes with a STAC API search (``--stac-search``): the items found become a batch.

The search runs through pystac-client (the ``stac`` extra). Each item found is
kept as a local item file, ``OUT_DIR/.stac-items/<item id>.json``, with its hrefs
made absolute: that file is the scene ``rsgeo batch`` reads (:mod:`rsgeo.stac`), so
one result per item is written as ``OUT_DIR/<item id>.gpkg``, the item's id is
recorded in its metadata, and ``--resume`` finds the same scenes again (a file is
rewritten only when the item changed).
"""

from __future__ import annotations

import json
import logging
import math
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from rsgeo.errors import MissingDependencyError, OptionError, SceneError, opt

logger = logging.getLogger(__name__)

#: Items a search takes unless told otherwise: a search is a batch, and a broad one matches millions.
DEFAULT_MAX_ITEMS = 10
#: Items read from the API at most while ``max_cloud`` is checked here (APIs without the query extension).
MAX_SCANNED = 1000
#: The folder of ``OUT_DIR`` holding the items found, as local item files.
ITEMS_FOLDER = ".stac-items"
#: Seconds to wait for the STAC API to answer a request.
SEARCH_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class StacSearch:
    """A STAC API item search, as a value.

    Attributes:
        url: the API's landing page (e.g. ``https://earth-search.aws.element84.com/v1``).
        collections: collection ids to search (none: all).
        bbox: ``(west, south, east, north)`` in degrees, EPSG:4326 (see :func:`parse_bbox`).
        datetime: an RFC 3339 instant or interval (``2024-06-01/2024-06-30``), as the API takes it.
        max_cloud: keep items whose ``eo:cloud_cover`` is at most this percentage.
        max_items: at most this many items.
    """

    url: str
    collections: tuple[str, ...] = ()
    bbox: tuple[float, float, float, float] | None = None
    datetime: str | None = None
    max_cloud: float | None = None
    max_items: int = DEFAULT_MAX_ITEMS

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise OptionError(f"{opt('stac_search')} takes the http(s) URL of a STAC API, got {self.url!r}")
        if self.max_items < 1:
            raise OptionError(f"{opt('max_items')} must be at least 1, got {self.max_items}")
        if self.max_cloud is not None and not 0 <= self.max_cloud <= 100:
            raise OptionError(f"{opt('max_cloud')} is a percentage in [0, 100], got {self.max_cloud:g}")


def parse_bbox(text: str, crs: str = "EPSG:4326") -> tuple[float, float, float, float]:
    """``"minx,miny,maxx,maxy"`` in ``crs`` → ``(west, south, east, north)`` in EPSG:4326, as STAC searches take it."""
    from pyproj import CRS, Transformer
    from pyproj.exceptions import CRSError

    try:
        values = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise OptionError(f"{opt('bbox')} takes four numbers MINX,MINY,MAXX,MAXY, got {text!r}")
    minx, miny, maxx, maxy = values
    if minx >= maxx or miny >= maxy:
        raise OptionError(f"{opt('bbox')} {text} is empty: give MINX,MINY,MAXX,MAXY with MINX < MAXX and MINY < MAXY")
    try:
        source = CRS.from_user_input(crs)
    except CRSError as exc:
        raise OptionError(f"{opt('bbox_crs')} {crs!r} is not a CRS pyproj knows ({exc}); give one such as EPSG:32633") from None
    if source != CRS.from_epsg(4326):
        to_lonlat = Transformer.from_crs(source, "EPSG:4326", always_xy=True)
        minx, miny, maxx, maxy = to_lonlat.transform_bounds(minx, miny, maxx, maxy, densify_pts=21)
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90 and -90 <= maxy <= 90):
        raise OptionError(
            f"{opt('bbox')} {text} is not in longitude/latitude degrees; give {opt('bbox_crs')} for a box in another CRS"
        )
    return (minx, miny, maxx, maxy)


def _pystac_client() -> Any:
    try:
        import pystac_client
    except ImportError:
        raise MissingDependencyError(
            f"{opt('stac_search')} needs pystac-client; install it with: pip install 'rsgeo[stac]'"
        ) from None
    return pystac_client


def search_items(search: StacSearch, *, timeout: float = SEARCH_TIMEOUT_S) -> list[dict[str, Any]]:
    """The items ``search`` finds, as JSON dicts, their hrefs absolute; one clear line if there are none."""
    pystac_client = _pystac_client()
    import pystac
    import requests
    from pystac_client.conformance import ConformanceClasses
    from pystac_client.exceptions import APIError
    from pystac_client.warnings import PystacClientWarning

    failures = (APIError, PystacClientWarning, pystac.STACError, requests.RequestException, ValueError, KeyError)
    server_filters = False
    with warnings.catch_warnings(record=True) as caught, _quiet_retries():
        warnings.simplefilter("always", PystacClientWarning)
        try:
            client = pystac_client.Client.open(search.url, timeout=timeout)
            server_filters = search.max_cloud is not None and client.conforms_to(ConformanceClasses.QUERY)
            found = client.search(
                collections=list(search.collections) or None, bbox=list(search.bbox) if search.bbox else None,
                datetime=search.datetime, max_items=search.max_items if search.max_cloud is None or server_filters else MAX_SCANNED,
                query={"eo:cloud_cover": {"lte": search.max_cloud}} if server_filters else None,
            )
            items = _kept(found.items_as_dicts(), search)
        except failures as exc:
            reason = _reason(exc)
            raise SceneError(
                f"the STAC search at {search.url} failed ({reason}); check the URL of the API's landing page "
                "(try it with curl), the collection ids and --datetime"
            ) from None
    for warning in caught:
        logger.info("pystac-client: %s", warning.message)
    if not items:
        asked = [f"collections {', '.join(search.collections)}" if search.collections else "",
                 f"bbox {','.join(f'{v:.6g}' for v in search.bbox)}" if search.bbox else "",
                 f"datetime {search.datetime}" if search.datetime else "",
                 f"cloud cover <= {search.max_cloud:g} %" if search.max_cloud is not None else ""]
        raise SceneError(
            f"the STAC search at {search.url} found no items ({'; '.join(a for a in asked if a) or 'no filter'}); "
            f"widen {opt('bbox')}, {opt('datetime')} or {opt('max_cloud')}, or check {opt('collection')}"
        )
    return [absolute_hrefs(item, search.url) for item in items]


@contextmanager
def _quiet_retries() -> Iterator[None]:
    """urllib3 logs each retry of a failed connection as a warning; the one error line says it all."""
    pool = logging.getLogger("urllib3.connectionpool")
    before = pool.level
    pool.setLevel(max(before, logging.ERROR))
    try:
        yield
    finally:
        pool.setLevel(before)


def _reason(exc: BaseException) -> str:
    """The gist of a failure: the OS error of a failed connection (``[Errno 111] Connection refused``), else the message."""
    text = " ".join(str(exc).split())
    errno = re.findall(r"\[Errno -?\d+\] [^'\")]+", text)
    return errno[-1] if errno else text[:300] or type(exc).__name__


def _kept(found: Iterator[dict[str, Any]], search: StacSearch) -> list[dict[str, Any]]:
    """The first ``max_items`` items, checking ``max_cloud`` here too (an API may not filter, or filter loosely)."""
    kept: list[dict[str, Any]] = []
    for item in found:
        if search.max_cloud is not None:
            cover = (item.get("properties") or {}).get("eo:cloud_cover")
            if not isinstance(cover, int | float) or cover > search.max_cloud:
                logger.info("STAC item %s: cloud cover %s, left out", item.get("id"), cover)
                continue
        kept.append(item)
        if len(kept) >= search.max_items:
            break
    return kept


def absolute_hrefs(item: dict[str, Any], api_url: str) -> dict[str, Any]:
    """``item`` with relative asset hrefs resolved against its ``self`` link (else the API's URL)."""
    base = next((link.get("href") for link in item.get("links", []) if link.get("rel") == "self"), None) or api_url
    assets = {}
    for key, asset in (item.get("assets") or {}).items():
        href = str(asset.get("href", ""))
        absolute = "://" in href or href.startswith("/")
        assets[key] = asset if absolute else {**asset, "href": urljoin(base, href)}
    return {**item, "assets": assets}


def item_file_name(item_id: str) -> str:
    """A file name for an item id (ids may hold characters a file system refuses)."""
    return re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", item_id).strip(". ") or "item"


@contextmanager
def staged_items(items: Sequence[dict[str, Any]], out_dir: Path) -> Iterator[list[Path]]:
    """Write ``items`` as ``out_dir/.stac-items/<id>.json``; the files written are removed if the block fails.

    A file that holds the same item already is left as it is, so its size and mtime (the
    journal's identity of a local scene) do not change and ``--resume`` continues it.
    """
    folder = out_dir / ITEMS_FOLDER
    made_folder = not folder.exists()
    folder.mkdir(exist_ok=True)
    paths: list[Path] = []
    written: list[Path] = []
    try:
        for item in items:
            name, k = item_file_name(str(item.get("id", ""))), 2
            path = folder / f"{name}.json"
            while path in paths:
                path, k = folder / f"{name}-{k}.json", k + 1
            text = json.dumps(item, indent=1, sort_keys=True)
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
                written.append(path)
            paths.append(path)
        yield paths
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        if made_folder and not any(folder.iterdir()):
            folder.rmdir()
        raise
