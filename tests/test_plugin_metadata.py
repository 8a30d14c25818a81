"""The QGIS plugin's metadata.txt and zip meet the QGIS plugin repository's rules.

The rules are those the repository (plugins.qgis.org) applies to an upload and
that the PyQGIS cookbook states for metadata.txt: the required fields present
and non-empty, a parseable [general] section, dotted versions, http(s) URLs
with a host, a plausible email, an author without slashes, boolean flags, an
icon that exists in the package, a LICENSE, one top-level folder with a valid
name, no compiled files or caches. On top of those, rsgeo's own: no
placeholder text, URLs and version consistent with pyproject.toml, and the
changelog consistent with CHANGELOG.md. The zip is the one
scripts/package-plugin.sh builds (no QGIS needed, about a second).
"""

from __future__ import annotations

import configparser
import io
import re
import subprocess
import tomllib
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "qgis_plugin" / "rsgeo_qgis"

#: Required by the repository's upload validator, and the fields this project promises besides.
REPOSITORY_REQUIRED = ("name", "description", "version", "qgisMinimumVersion", "author", "email", "about",
                       "tracker", "repository")
PROJECT_REQUIRED = ("homepage", "changelog", "tags", "category", "experimental", "icon")
BOOLEAN = ("experimental", "deprecated", "server", "hasProcessingProvider")
URLS = ("homepage", "tracker", "repository")
#: The cookbook's categories (the plugin manager's menus).
CATEGORIES = ("Raster", "Vector", "Database", "Mesh", "Web")
#: Text left from templates (Plugin Builder's defaults among them).
PLACEHOLDERS = re.compile(
    r"example\.(?:com|org|net)|\bTODO\b|\bFIXME\b|\bXXX\b|lorem ipsum|your[_ ]?(?:name|email|plugin)|"
    r"http://(?:bugs|repo|homepage)\b|\bchangeme\b|<[a-z_ ]+>",
    re.IGNORECASE,
)
VERSION = re.compile(r"^\d+(?:\.\d+){1,3}(?:[-.]?(?:alpha|beta|rc|dev)\d*)?$")
QGIS_VERSION = re.compile(r"^\d+\.\d+(?:\.\d+)?$")
EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
PACKAGE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]+$")


def parse_metadata(text: str) -> dict[str, str]:
    """The [general] section as QGIS and the repository read it (case-sensitive keys, interpolation on)."""
    parser = configparser.ConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    if not parser.has_section("general"):
        raise ValueError("metadata.txt has no [general] section")
    return {k: v.strip() for k, v in parser.items("general")}


def metadata_problems(meta: dict[str, str], files: set[str]) -> list[str]:
    """What the plugin repository (or this project) would refuse; ``files`` are the plugin's paths."""
    problems = []
    for key in (*REPOSITORY_REQUIRED, *PROJECT_REQUIRED):
        if not meta.get(key, "").strip():
            problems.append(f"{key} is missing or empty")
    for key, value in meta.items():
        if PLACEHOLDERS.search(value):
            problems.append(f"{key} holds placeholder text: {PLACEHOLDERS.search(value).group(0)!r}")  # type: ignore[union-attr]
    if meta.get("version") and not VERSION.match(meta["version"]):
        problems.append(f"version {meta['version']!r} is not a dotted version such as 1.2.0")
    for key in ("qgisMinimumVersion", "qgisMaximumVersion"):
        if meta.get(key) and not QGIS_VERSION.match(meta[key]):
            problems.append(f"{key} {meta[key]!r} is not a QGIS version such as 3.22")
    if QGIS_VERSION.match(meta.get("qgisMinimumVersion", "")) and QGIS_VERSION.match(meta.get("qgisMaximumVersion", "")):
        low = tuple(map(int, meta["qgisMinimumVersion"].split(".")))
        high = tuple(map(int, meta["qgisMaximumVersion"].split(".")))
        if low > high:
            problems.append("qgisMinimumVersion is above qgisMaximumVersion")
    for key in URLS:
        url = urlparse(meta.get(key, ""))
        if meta.get(key) and (url.scheme not in ("http", "https") or not url.netloc):
            problems.append(f"{key} {meta[key]!r} is not an http(s) URL")
    if meta.get("email") and not EMAIL.match(meta["email"]):
        problems.append(f"email {meta['email']!r} is not an email address")
    if "/" in meta.get("author", ""):
        problems.append("author must not contain slashes")
    for key in BOOLEAN:
        if key in meta and meta[key].lower() not in ("true", "false", "yes", "no", "1", "0"):
            problems.append(f"{key} {meta[key]!r} is not a boolean")
    if meta.get("category") and meta["category"] not in CATEGORIES:
        problems.append(f"category {meta['category']!r} is not one of {', '.join(CATEGORIES)}")
    icon = meta.get("icon", "").removeprefix("./")
    if icon and icon not in files:
        problems.append(f"icon {icon} is not in the plugin")
    if icon and not icon.lower().endswith((".png", ".jpg", ".jpeg", ".svg")):
        problems.append(f"icon {icon} is not a PNG, JPEG or SVG image")
    if len(meta.get("description", "")) > 300 or "\n" in meta.get("description", ""):
        problems.append("description should be one line (details go in about)")
    for required in ("__init__.py", "metadata.txt", "LICENSE"):
        if required not in files:
            problems.append(f"the plugin has no {required}")
    return problems


def zip_problems(data: bytes) -> tuple[str, dict[str, str], set[str], list[str]]:
    """The package folder, metadata, files and structural problems of a plugin zip."""
    problems = []
    if len(data) > 25_000_000:
        problems.append(f"the zip is {len(data)} bytes; the repository takes at most 25 MB")
    zf = zipfile.ZipFile(io.BytesIO(data))
    if zf.testzip() is not None:
        problems.append("the zip has a corrupt member")
    names = zf.namelist()
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) != 1:
        problems.append(f"the zip holds {len(tops)} top-level entries, not one plugin folder: {sorted(tops)}")
    package = sorted(tops)[0]
    if not PACKAGE_NAME.match(package):
        problems.append(f"the folder name {package!r} is not a valid package name")
    for n in names:
        parts = n.split("/")
        if ".." in parts or n.startswith("/"):
            problems.append(f"{n} has path information")
        if n.endswith((".pyc", ".pyo")) or {"__pycache__", ".git", "__MACOSX"} & set(parts):
            problems.append(f"{n} is a compiled file or cache")
    files = {n.split("/", 1)[1] for n in names if "/" in n and not n.endswith("/")}
    meta = parse_metadata(zf.read(f"{package}/metadata.txt").decode("utf-8")) if "metadata.txt" in files else {}
    return package, meta, files, problems


def _plugin_files() -> set[str]:
    return {p.relative_to(PLUGIN).as_posix() for p in PLUGIN.rglob("*") if p.is_file()}


def _metadata() -> dict[str, str]:
    return parse_metadata((PLUGIN / "metadata.txt").read_text(encoding="utf-8"))


def test_source_metadata_meets_the_repository_rules() -> None:
    assert metadata_problems(_metadata(), _plugin_files()) == []


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    out = subprocess.run(["bash", str(ROOT / "scripts" / "package-plugin.sh"), str(dist)], check=True,
                         capture_output=True, text=True, timeout=60).stdout.strip()
    return Path(out)


def test_packaged_zip_meets_the_repository_rules(plugin_zip: Path) -> None:
    package, meta, files, problems = zip_problems(plugin_zip.read_bytes())
    assert problems == []
    assert package == "rsgeo_qgis"
    assert meta == _metadata()  # the zip carries the checked metadata, whole
    assert metadata_problems(meta, files) == []
    assert plugin_zip.name == f"rsgeo_qgis-{meta['version']}.zip"


def test_metadata_agrees_with_the_project() -> None:
    meta = _metadata()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert meta["version"] == project["version"]
    from rsgeo.version import __version__

    assert meta["version"] == __version__
    assert meta["repository"] == project["urls"]["Repository"]
    assert meta["tracker"] == project["urls"]["Issues"]
    assert meta["homepage"].startswith(project["urls"]["Repository"] + "/")
    assert meta["email"] in {a.get("email") for a in project["authors"]}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    mkdocs = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert f"repo_url: {meta['repository']}" in mkdocs
    for url in re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", readme + mkdocs):
        assert url.startswith(meta["repository"]), url  # one project URL everywhere


def _changelog_sections() -> dict[str, dict[str, list[str]]]:
    """CHANGELOG.md as {version: {subsection: [items]}}."""
    out: dict[str, dict[str, list[str]]] = {}
    version = section = None
    for line in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8").splitlines():
        if m := re.match(r"^## (\S+)", line):
            version, section = m.group(1), None
            out[version] = {}
        elif (m := re.match(r"^### (.+)", line)) and version:
            section = m.group(1).strip()
            out[version][section] = []
        elif line.startswith("- ") and version and section:
            out[version][section].append(line[2:].strip())
        elif line.startswith("  ") and version and section and out[version][section]:
            out[version][section][-1] += " " + line.strip()  # a wrapped item
    return out


def test_changelog_agrees_with_metadata() -> None:
    meta = _metadata()
    sections = _changelog_sections()
    newest = next(iter(sections))
    assert newest == meta["version"], "the newest CHANGELOG.md version is the plugin's version"
    lines = [line.strip() for line in meta["changelog"].splitlines() if line.strip()]
    assert lines[0].split()[0] == meta["version"]
    plugin_items = [line[2:] for line in lines if line.startswith("- ")]
    assert plugin_items == sections[newest]["QGIS plugin"]


def test_the_checks_refuse_bad_metadata(tmp_path: Path) -> None:
    """Each rule can fail: a metadata.txt with one mistake per rule gets one problem per mistake."""
    good = _metadata()
    files = _plugin_files()
    bad = {
        **good, "email": "rsgeo@example.org", "version": "first", "qgisMinimumVersion": "3.x",
        "tracker": "ftp://host/issues", "repository": "http://repo", "icon": "missing.png",
        "author": "a/b", "experimental": "maybe", "category": "Analysis", "about": "",
    }
    del bad["tags"]
    problems = "\n".join(metadata_problems(bad, files))
    for expected in ("email holds placeholder", "version 'first'", "qgisMinimumVersion '3.x'", "tracker",
                     "repository holds placeholder", "icon missing.png", "author", "experimental 'maybe'",
                     "category 'Analysis'", "about is missing", "tags is missing"):
        assert expected in problems, expected
    assert metadata_problems({**good, "email": "not-an-address"}, files) == ["email 'not-an-address' is not an email address"]
    assert metadata_problems(good, files - {"LICENSE"}) == ["the plugin has no LICENSE"]
    # A zip with a cache folder and a second top-level entry.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("rsgeo_qgis/metadata.txt", (PLUGIN / "metadata.txt").read_text(encoding="utf-8"))
        zf.writestr("rsgeo_qgis/__pycache__/x.cpython-311.pyc", b"")
        zf.writestr("stray.txt", "")
    _, _, _, structural = zip_problems(buf.getvalue())
    assert any("top-level" in p for p in structural) and any("compiled" in p for p in structural)
    with pytest.raises(configparser.InterpolationError):  # a bare % breaks configparser's reading, as QGIS's
        parse_metadata("[general]\nname=rsgeo\nabout=100% of it\n")
