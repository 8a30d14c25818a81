"""Weights on disk: the Hugging Face cache, first-use downloads, checksums.

Files live in the standard Hugging Face hub cache (``HF_HOME``/``HF_HUB_CACHE``),
or in the folder given by ``cache_dir`` or the ``RSGEO_CACHE_DIR`` environment
variable. A cached file is used without touching the network. Otherwise rsgeo
decides quickly whether it is offline (``HF_HUB_OFFLINE`` set, or the host
does not answer within seconds) and then fails with one line that names the
file to fetch and the option to point at it, instead of retrying for minutes.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import zipfile
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from rsgeo.encoders.torch_clip import file_sha256
from rsgeo.errors import ModelError, WeightsNotAvailableError, opt
from rsgeo.zoo.registry import ModelRecord, WeightsFile

logger = logging.getLogger(__name__)

CACHE_ENV = "RSGEO_CACHE_DIR"
#: Seconds to wait for a TCP connection before calling the machine offline.
PROBE_TIMEOUT_S = 3.0
_TRUE = {"1", "on", "yes", "true"}


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> str | None:
    """``cache_dir``, else ``$RSGEO_CACHE_DIR``, else ``None`` (the HF default)."""
    if cache_dir:
        return str(Path(cache_dir).expanduser())
    env = os.environ.get(CACHE_ENV)
    return str(Path(env).expanduser()) if env else None


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder files are cached in (the HF hub cache unless overridden)."""
    resolved = resolve_cache_dir(cache_dir)
    if resolved:
        return Path(resolved)
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def offline_reason() -> str | None:
    """Why rsgeo must not use the network, or ``None`` when it may."""
    for var in ("HF_HUB_OFFLINE", "RSGEO_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var} is set"
    return None


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` s."""
    parsed = urlparse(url)
    host = parsed.hostname
    if not host:
        return False
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def url_cache_path(f: WeightsFile, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where a file downloaded from a plain URL is kept (outside the HF layout)."""
    host = urlparse(f.url or "").hostname or "url"
    stem = Path(f.filename).stem
    member = f.archive_member or f.filename
    return cache_root(cache_dir) / "rsgeo-downloads" / host / stem / member


def cached_path(f: WeightsFile, cache_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The cached copy of ``f``, or ``None``; never touches the network."""
    if f.url:
        path = url_cache_path(f, cache_dir)
        return path if path.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(
        f.repo or "", f.filename, revision=f.revision or "main", cache_dir=resolve_cache_dir(cache_dir)
    )
    return Path(found) if isinstance(found, str) else None


def offline_hint(record: ModelRecord) -> str:
    """How to fetch a record's files by hand and which option takes them."""
    w = record.weights
    if record.loader == "open_clip_checkpoint":
        if w.archive_member:
            return (
                f"download {w.download_url} on a machine with internet, unzip it and pass "
                f"{opt('model', record.name)} {opt('checkpoint', 'PATH/' + w.archive_member)}"
            )
        return (
            f"download {w.filename} from {w.download_url} on a machine with internet and pass "
            f"{opt('model', record.name)} {opt('checkpoint', 'PATH')}"
        )
    rev = f" --revision {w.revision}" if w.revision else ""
    # Both forms go through the registry record, so the pinned text-tower config applies.
    option = f"{opt('model', record.name)} {opt('checkpoint', 'DIR')}" if record.loader == "open_clip_hub" else opt("model", "hf-clip:DIR")
    return (
        f"download {w.filename} and the config/tokenizer files of https://huggingface.co/{w.repo}"
        f"{'/tree/' + w.revision if w.revision else ''} on a machine with internet "
        f"(`hf download {w.repo}{rev} --local-dir DIR`) and pass {option}"
    )


def fetch_files(
    record: ModelRecord,
    files: Sequence[WeightsFile] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Local paths of ``files`` (default: all of the record's), downloading on first use.

    Raises:
        WeightsNotAvailableError: a file is not cached and the network cannot
            be used; the message names the file and the option to point at it.
        ModelError: a download failed or a file does not match its checksum.
    """
    files = list(record.files if files is None else files)
    paths: list[Path | None] = [cached_path(f, cache_dir) for f in files]
    todo = [f for f, p in zip(files, paths) if p is None]
    if todo:
        _check_network(record, todo[0], cache_dir)
        for i, f in enumerate(files):
            if paths[i] is None:
                paths[i] = _download(record, f, cache_dir)
    out = [p for p in paths if p is not None]
    for f, p in zip(files, out):
        verify_sha256(p, f, model=record.name)
    return out


def _check_network(record: ModelRecord, first: WeightsFile, cache_dir: str | os.PathLike[str] | None) -> None:
    where = f"cache {cache_root(cache_dir)}"
    reason = offline_reason()
    if reason is None:
        url = first.url or hub_endpoint()
        if not reachable(url):
            reason = f"{urlparse(url).hostname} cannot be reached (offline?)"
    if reason is not None:
        raise WeightsNotAvailableError(
            f"{record.name}: {first.filename} is not in the {where} and {reason}; {offline_hint(record)}"
        )


def _download(record: ModelRecord, f: WeightsFile, cache_dir: str | os.PathLike[str] | None) -> Path:
    logger.info("downloading %s for %s from %s", f.filename, record.name, f.download_url)
    if f.url:
        return _download_url(record, f, cache_dir)
    from huggingface_hub import hf_hub_download

    try:
        return Path(
            hf_hub_download(f.repo or "", f.filename, revision=f.revision, cache_dir=resolve_cache_dir(cache_dir))
        )
    except Exception as exc:  # huggingface_hub raises many types (HTTP, OS, validation)
        raise ModelError(
            f"{record.name}: downloading {f.filename} from {f.download_url} failed ({_first_line(exc)}); "
            f"retry, or {offline_hint(record)}"
        ) from exc


def _download_url(record: ModelRecord, f: WeightsFile, cache_dir: str | os.PathLike[str] | None) -> Path:
    import urllib.request

    target = url_cache_path(f, cache_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.parent / (Path(f.filename).name + ".part")
    try:
        with urllib.request.urlopen(f.url or "", timeout=60) as response, open(part, "wb") as out:
            shutil.copyfileobj(response, out, length=1 << 20)
        if f.archive_member:
            with zipfile.ZipFile(part) as archive, archive.open(f.archive_member) as src:
                tmp = target.with_suffix(target.suffix + ".part")
                with open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, length=1 << 20)
                tmp.replace(target)
            part.unlink()
        else:
            part.replace(target)
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        part.unlink(missing_ok=True)
        raise ModelError(
            f"{record.name}: downloading {f.download_url} failed ({_first_line(exc)}); retry, or {offline_hint(record)}"
        ) from exc
    return target


def verify_sha256(path: Path, f: WeightsFile, *, model: str) -> str | None:
    """Check ``path`` against the published checksum; returns the file's hash when checked."""
    if not f.sha256:
        return None
    actual = file_sha256(path)
    if actual != f.sha256:
        raise ModelError(
            f"{model}: {path} has SHA-256 {actual[:12]}…, not the published {f.sha256[:12]}… of {f.filename}; "
            "the file is truncated or different: delete it and run again to re-download"
        )
    return actual


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
