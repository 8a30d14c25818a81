"""Scenes read over HTTP through GDAL's /vsicurl/ (issue 8: scenes in object storage).

A real HTTP server with range requests (what /vsicurl/ and object stores
speak) runs in its own process on 127.0.0.1, on a port the OS picks, and
serves copies of real scenes; the real ``rsgeo`` command reads them by URL.
Nothing of GDAL is mocked. Run ``python -m tests.test_remote DIR`` to serve a
folder by hand.

The server runs in another process, not a thread of the test: rasterio holds
Python's GIL during some GDAL reads, and a server thread of the same process
would then never answer.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, journal_rows, run_cli, shared

L7 = ["--bands", "3,2,1", "--chip-size", "64"]
CLASSES = ["--classes", "forest,water,urban area"]
MODEL = ["--model", "test:hash"]
QUIET = ["--progress", "none"]  # stderr: messages only


# -- an HTTP server with range requests ---------------------------------------------


class RangeRequestHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with ``Range: bytes=A-B`` (206 Partial Content), as GDAL's /vsicurl/ needs.

    ``http.server`` alone answers every GET with the whole file. Each request
    is appended to ``requests.log`` in the served folder (method, path, range).
    """

    protocol_version = "HTTP/1.1"  # keep-alive: GDAL reuses its connection

    def send_head(self):  # type: ignore[no-untyped-def]
        path = Path(self.translate_path(self.path))
        self._record()
        if not path.is_file():
            self.send_error(404, "File not found")
            return None
        size = path.stat().st_size
        start, end = 0, size - 1
        ranged = self.headers.get("Range")
        if ranged is not None:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", ranged.strip())
            if match is None or not (match.group(1) or match.group(2)):
                self.send_error(416, "Only single byte ranges are served")
                return None
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            else:  # a suffix: the last N bytes
                start = max(0, size - int(match.group(2)))
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
        f = open(path, "rb")  # noqa: SIM115  (the base class closes it after copyfile)
        f.seek(start)
        self.send_response(206 if ranged is not None else 200)
        if ranged is not None:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Type", "image/tiff")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self._left = end - start + 1
        return f

    def copyfile(self, source, outputfile) -> None:  # type: ignore[no-untyped-def]
        while self._left > 0:
            chunk = source.read(min(self._left, 1 << 16))
            if not chunk:
                break
            outputfile.write(chunk)
            self._left -= len(chunk)

    def _record(self) -> None:
        line = json.dumps({"method": self.command, "path": self.path, "range": self.headers.get("Range")})
        with open(Path(self.directory) / "requests.log", "a", encoding="utf-8") as log:
            log.write(line + "\n")

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


def serve(folder: str) -> None:
    """Serve ``folder`` on 127.0.0.1 (port from the OS, printed first) until killed."""
    handler = functools.partial(RangeRequestHandler, directory=folder)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


@dataclass
class Served:
    """A folder served over HTTP, and the /vsicurl/ URL of a file in it."""

    folder: Path
    port: int

    def http(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def vsicurl(self, name: str) -> str:
        return f"/vsicurl/{self.http(name)}"

    def requests(self) -> list[dict[str, str | None]]:
        log = self.folder / "requests.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Real scenes over HTTP: the sample Landsat 7 excerpt, a COG made from it, RGB.byte."""
    import rasterio

    folder = tmp_path_factory.mktemp("www")
    shutil.copy(ROOT / "data" / "sample" / "L7_ETMs.tif", folder / "L7_ETMs.tif")
    shutil.copy(shared("RGB.byte.tif"), folder / "RGB.byte.tif")
    (folder / "cog").mkdir()
    with rasterio.open(folder / "L7_ETMs.tif") as src:
        profile = {**src.profile, "driver": "COG", "blocksize": 128, "compress": "deflate"}
        for key in ("blockxsize", "blockysize", "tiled", "interleave"):
            profile.pop(key, None)
        with rasterio.open(folder / "cog" / "L7_cog.tif", "w", **profile) as dst:
            dst.write(src.read())
    proc = subprocess.Popen([sys.executable, "-m", "tests.test_remote", str(folder)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield Served(folder, port)
    finally:
        proc.kill()
        proc.wait()


# -- helpers -----------------------------------------------------------------------


def embeddings(path: Path) -> list[tuple[int, bytes]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("SELECT tile_id, embedding FROM rsgeo_embeddings ORDER BY tile_id").fetchall()


def metadata(path: Path) -> dict[str, object]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM rsgeo_metadata")}


def assert_same_layers(out: Path, ref: Path, layers: tuple[str, ...]) -> None:
    import pyogrio

    assert embeddings(out) == embeddings(ref) and len(embeddings(ref)) > 0
    for name in layers:
        a = pyogrio.read_dataframe(out, layer=name).sort_values("tile_id").reset_index(drop=True)
        b = pyogrio.read_dataframe(ref, layer=name).sort_values("tile_id").reset_index(drop=True)
        assert a.drop(columns="geometry").equals(b.drop(columns="geometry")), name
        assert a.geometry.geom_equals_exact(b.geometry, tolerance=0).all(), name



def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("rsgeo: error: "), lines[0]
    return lines[0]


# -- pure parts ----------------------------------------------------------------------


def test_remote_paths_stay_strings_and_give_names() -> None:
    from rsgeo.batch import scene_names
    from rsgeo.sources import SceneSource, is_remote

    url = "/vsicurl/https://host:8080/dir/x.tif"
    assert SceneSource.of(url) == SceneSource(url, True)
    assert SceneSource.of(Path(url)).path == url  # the // that pathlib folds is put back
    assert is_remote("s3://bucket/key.tif") and is_remote("/vsis3/bucket/key.tif") and not is_remote("a/b.tif")
    assert SceneSource.of("file:///data/x.tif") == SceneSource("/data/x.tif", False)
    assert SceneSource.of("https://h/d/my%20scene.tif?sig=a/b").stem == "my scene"
    assert SceneSource.of("/vsicurl?list_dir=no&url=http%3A%2F%2Fh%2Fd%2Fw.tif").name == "w.tif"
    assert scene_names(["/vsis3/b/a/x.tif", "https://h/b/x.tif?k=1", "https://h/c/y.tif", Path("d/y.TIF")]) == [
        "a-x", "b-x", "c-y", "d-y"]


def test_scene_list_file(tmp_path: Path) -> None:
    from rsgeo.batch import expand_inputs
    from rsgeo.errors import OptionError

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.tif").write_bytes(b"")
    listing = tmp_path / "scenes.txt"
    listing.write_text("# scenes\nsub/a.tif\n\n  /vsis3/bucket/b.tif  \nhttps://h/c.tif\n")
    assert expand_inputs(["https://h/c.tif"], lists=[listing]) == [
        "https://h/c.tif", tmp_path / "sub" / "a.tif", "/vsis3/bucket/b.tif"]
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(OptionError, match="names no scene"):
        expand_inputs([], lists=[tmp_path / "empty.txt"])
    with pytest.raises(OptionError, match="cannot read the scene list .*missing.txt: No such file"):
        expand_inputs([], lists=[tmp_path / "missing.txt"])
    out = tmp_path / "out"
    out.mkdir()
    line = one_error_line(run_cli("batch", "-o", str(out), *MODEL, check=False))
    assert line == "rsgeo: error: give the scenes: files, patterns, folders or URLs, or --scene-list FILE"


# -- the real command on scenes served over HTTP -------------------------------------------


def test_classify_and_query_by_url_equal_the_local_file(served: Served, tmp_path: Path) -> None:
    remote, local = tmp_path / "remote.gpkg", tmp_path / "local.gpkg"
    run_cli("classify", served.vsicurl("L7_ETMs.tif"), "-o", str(remote), *MODEL, *CLASSES, *L7, "-q")
    run_cli("classify", str(served.folder / "L7_ETMs.tif"), "-o", str(local), *MODEL, *CLASSES, *L7, "-q")
    assert_same_layers(remote, local, ("tiles", "landcover"))
    gets = [r for r in served.requests() if r["method"] == "GET" and r["path"] == "/L7_ETMs.tif"]
    assert gets and all(r["range"] for r in gets), "GDAL read the scene whole instead of by ranges"
    scene_r, scene_l = metadata(remote)["scene"], metadata(local)["scene"]
    assert isinstance(scene_r, dict) and isinstance(scene_l, dict)
    assert scene_r["path"] == served.vsicurl("L7_ETMs.tif") and scene_r["sha256"] is None and scene_r["bytes"] is None
    assert re.fullmatch(r"rsgeo-fp1:[0-9a-f]{64}", str(scene_r["fingerprint"]))
    assert len(str(scene_l["sha256"])) == 64 and "fingerprint" not in scene_l
    assert {k: v for k, v in scene_r.items() if k not in ("path", "bytes", "sha256", "fingerprint")} == {
        k: v for k, v in scene_l.items() if k not in ("path", "bytes", "sha256")}

    # A COG by plain URL (rasterio maps http:// to /vsicurl/), queried from the scene.
    remote_q, local_q = tmp_path / "remote_q.gpkg", tmp_path / "local_q.gpkg"
    run_cli("query", served.http("cog/L7_cog.tif"), "-o", str(remote_q), *MODEL, "--text", "harbour", *L7, "-q")
    run_cli("query", str(served.folder / "cog" / "L7_cog.tif"), "-o", str(local_q), *MODEL, "--text", "harbour",
            *L7, "-q")
    assert_same_layers(remote_q, local_q, ("tiles", "query_harbour"))


@pytest.mark.slow
def test_batch_of_remote_scenes_on_a_local_cluster_equals_single_machine(served: Served, tmp_path: Path) -> None:
    """Two remote scenes (one as an argument, one from a --scene-list file) on two worker processes."""
    from rsgeo.api import classify, query
    from rsgeo.pipeline import RunOptions
    from rsgeo.scene import ReadOptions

    read = ReadOptions(chip_size=48, bands=(1, 2, 3))
    options = RunOptions(model="test:hash")
    single = tmp_path / "single"
    single.mkdir()
    refs = {}
    for name, local in (("cog/L7_cog.tif", "L7_cog"), ("RGB.byte.tif", "RGB.byte")):
        ref = classify(served.folder / name, single / f"{local}.gpkg", classes=["forest", "water", "city"],
                       read=read, options=options)
        query(ref, None, texts=["harbour"], options=options)
        refs[local] = ref

    out = tmp_path / "out"
    out.mkdir()
    listing = tmp_path / "scenes.txt"
    listing.write_text(f"# served over HTTP\n{served.vsicurl('RGB.byte.tif')}\n")
    proc = run_cli("batch", served.http("cog/L7_cog.tif"), "--scene-list", str(listing), "-o", str(out),
                   "--merge", str(tmp_path / "merged.gpkg"), *MODEL, "--chip-size", "48", "--bands", "1,2,3",
                   "--classes", "forest,water,city", "--text", "harbour", "--cluster", "local:2", "--progress", "lines")
    # Progress of the whole run, per scene: chips done / total.
    assert "scene 1/2 L7_cog: 64/64 chips, done" in proc.stderr, proc.stderr
    assert "scene 2/2 RGB.byte: 255/255 chips, done" in proc.stderr, proc.stderr
    assert re.search(r"rsgeo: 319/319 chips \(scene 2/2", proc.stderr), proc.stderr
    for local, ref in refs.items():
        assert_same_layers(out / f"{local}.gpkg", ref, ("tiles", "landcover", "query_harbour"))
    import pyogrio

    scenes = pyogrio.read_dataframe(tmp_path / "merged.gpkg", layer="rsgeo_scenes")
    assert list(scenes.source) == [served.http("cog/L7_cog.tif"), served.vsicurl("RGB.byte.tif")]


def test_remote_run_resumes_and_refuses_a_changed_scene(served: Served, tmp_path: Path) -> None:
    """A run over HTTP stopped midway resumes from its journal; a scene changed on the server is refused."""
    import numpy as np
    import rasterio

    from rsgeo.api import embed
    from rsgeo.errors import Cancelled
    from rsgeo.pipeline import RunOptions
    from rsgeo.scene import ReadOptions

    (served.folder / "resume").mkdir()
    scene = served.folder / "resume" / "RGB.byte.tif"
    shutil.copy(served.folder / "RGB.byte.tif", scene)
    url = served.vsicurl("resume/RGB.byte.tif")
    read = ReadOptions(chip_size=32)
    options = RunOptions(model="test:hash", batch_size=16, workers=1)
    reference = embed(scene, tmp_path / "reference.gpkg", read=read, options=options)

    # Stopped after three batches (the Python API's cancellation: deterministic, unlike a kill).
    out = tmp_path / "resumed.gpkg"
    journal = out.with_name(out.name + ".rsgeo-partial")
    calls = iter(range(1000))
    with pytest.raises(Cancelled):
        embed(url, out, read=read, options=options, cancel=lambda: next(calls) >= 3)
    stored = journal_rows(journal)
    assert stored == 48 and not out.exists()

    # The same URL now serves other pixels (same size and grid): --resume must not mix the two.
    args = [*MODEL, "--chip-size", "32", "--batch-size", "16", "--workers", "1"]
    original = scene.read_bytes()
    with rasterio.open(scene, "r+") as dst:
        dst.write(np.full((3, 16, 16), 7, np.uint8), window=rasterio.windows.Window(0, 0, 16, 16))
    refused = run_cli("embed", url, "-o", str(out), "--resume", *args, check=False)
    line = one_error_line(refused)
    assert "cannot resume" in line and "scene.fingerprint" in line, line
    assert journal_rows(journal) == stored and not out.exists()

    scene.write_bytes(original)
    resumed = run_cli("embed", url, "-o", str(out), "--resume", "-v", *args)
    match = re.search(r"encoded (\d+) chips in this run \((\d+) were already in the journal[;)]", resumed.stderr)
    assert match, resumed.stderr
    assert int(match.group(2)) == stored and int(match.group(1)) == len(embeddings(reference)) - stored
    assert embeddings(out) == embeddings(reference) and not journal.exists()


@pytest.mark.parametrize("where", ["missing", "unreachable"])
def test_a_remote_scene_that_cannot_be_opened_is_one_line(served: Served, tmp_path: Path, where: str) -> None:
    url = served.vsicurl("no/such/scene.tif") if where == "missing" else "/vsicurl/http://127.0.0.1:9/scene.tif"
    out = tmp_path / "out.gpkg"
    line = one_error_line(run_cli("classify", url, "-o", str(out), *MODEL, *CLASSES, check=False))
    assert f"cannot open the remote scene {url}" in line and "check the URL" in line
    assert ("404" in line) if where == "missing" else ("connect" in line.lower()), line
    # batch: a bad scene stops the run before any is encoded; nothing is written.
    (tmp_path / "batch").mkdir()
    proc = run_cli("batch", served.vsicurl("L7_ETMs.tif"), url, "-o", str(tmp_path / "batch"), *MODEL, *L7,
                   "--merge", str(tmp_path / "merged.gpkg"), check=False)
    assert f"cannot open the remote scene {url}" in one_error_line(proc)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["batch"]


def test_a_remote_scene_damaged_or_cut_off_is_one_line(served: Served, tmp_path: Path) -> None:
    """A tile that cannot be decoded mid-run, and a file cut short on the server: one line, no output."""
    import rasterio

    cog = (served.folder / "cog" / "L7_cog.tif").read_bytes()
    with rasterio.open(served.folder / "cog" / "L7_cog.tif") as src:
        # Block column 0, row 1 of 3 x 3: not one the fingerprint reads (the diagonal).
        offset = int(src.get_tag_item("BLOCK_OFFSET_0_1", "TIFF", bidx=1))
        size = int(src.get_tag_item("BLOCK_SIZE_0_1", "TIFF", bidx=1))
    (served.folder / "bad").mkdir()
    (served.folder / "bad" / "damaged.tif").write_bytes(cog[:offset] + bytes(size) + cog[offset + size:])
    (served.folder / "bad" / "cut.tif").write_bytes(cog[: len(cog) - 20_000])

    out = tmp_path / "out.gpkg"
    url = served.vsicurl("bad/damaged.tif")
    line = one_error_line(run_cli("embed", url, "-o", str(out), *MODEL, *L7, *QUIET, check=False))
    assert re.match(rf"rsgeo: error: {re.escape(url)} cannot be read at its pixels at column \d+, row \d+ \(", line), line
    assert line.endswith("then rerun with --resume to continue from the chips already encoded"), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.gpkg.rsgeo-partial"]  # kept for --resume
    (tmp_path / "out.gpkg.rsgeo-partial").unlink()

    url = served.vsicurl("bad/cut.tif")
    line = one_error_line(run_cli("embed", url, "-o", str(out), *MODEL, *L7, *QUIET, check=False))
    assert line.startswith(f"rsgeo: error: {url} cannot be read to fingerprint it ("), line
    assert sorted(p.name for p in tmp_path.iterdir()) == []


if __name__ == "__main__":
    serve(sys.argv[1])
