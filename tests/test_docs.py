"""The documentation site builds with ``mkdocs build --strict``, and its checks catch what they promise.

``make docs`` runs the same build. A warning -- a link to a missing page or
anchor, a link from README or docs/ to a repository file that does not exist,
a docstring mkdocstrings cannot render -- fails it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import docs_hooks  # noqa: E402

from rsgeo.cli import build_parser  # noqa: E402


def _mkdocs(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    built = _mkdocs(ROOT / "mkdocs.yml", out)
    assert built.returncode == 0, built.stderr[-4000:]
    assert "WARNING" not in built.stderr, built.stderr[-4000:]
    return out


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("rsgeo has no subcommands")


def test_site_has_every_page(site: Path) -> None:
    pages = {p.parent.relative_to(site).as_posix() for p in site.rglob("index.html")}
    docs = {p.stem for p in (ROOT / "docs").glob("*.md")}
    assert docs | {"cli", "changelog", "."} <= pages
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "Ask a satellite or aerial scene a question" in home  # the README is the home page


def test_cli_reference_lists_every_option_of_every_command(site: Path) -> None:
    """The generated page against the real parsers: every subcommand and each of its option strings."""
    page = (site / "cli" / "index.html").read_text(encoding="utf-8")
    subs = _subcommands()
    assert len(subs) >= 9
    for name, sub in subs.items():
        assert f'id="rsgeo-{name}"' in page, name
        section = page.split(f'id="rsgeo-{name}"', 1)[1].split('<h2 id="rsgeo-', 1)[0]
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue  # -h/--help: said once at the top of the page
            for option in action.option_strings:
                assert f"<code>{option}</code>" in section, f"rsgeo {name} {option}"
            if not action.option_strings:
                assert f"<code>{action.metavar or action.dest}</code>" in section, f"rsgeo {name} {action.dest}"


def test_cli_reference_matches_help_output() -> None:
    """What ``rsgeo COMMAND --help`` prints (a separate process) is what the reference lists."""
    page = docs_hooks.render_cli_reference()
    for name in ("classify", "query", "refine"):
        out = subprocess.run([sys.executable, "-m", "rsgeo", name, "--help"], capture_output=True, text=True,
                             cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}, timeout=60)
        assert out.returncode == 0, out.stderr
        # The options' own lines ("  -o OUT.gpkg, --output OUT.gpkg  ..."), not options named in help texts.
        options = {m.group(1) for m in re.finditer(r"^ {2}(?:-\w(?: \S+)?, )?(--[a-z][a-z0-9-]+)", out.stdout, re.M)}
        options -= {"--help"}
        assert len(options) >= 5, out.stdout
        assert options
        section = page.split(f"## rsgeo {name}\n", 1)[1].split("\n## rsgeo ", 1)[0]
        missing = sorted(o for o in options if f"`{o}`" not in section)
        assert not missing, f"rsgeo {name}: {missing}"


def test_api_reference_documents_the_public_api(site: Path) -> None:
    page = (site / "api" / "index.html").read_text(encoding="utf-8")
    assert ":func:" not in page and ":class:" not in page  # Sphinx roles shown as code (scripts/docs_griffe.py)
    for anchor in ("rsgeo.results.open_result", "rsgeo.results.Result", "rsgeo.results.Result.query",
                   "rsgeo.results.Result.classify", "rsgeo.api.classify", "rsgeo.api.embed", "rsgeo.api.query",
                   "rsgeo.scene.ReadOptions", "rsgeo.options.RunOptions", "rsgeo.learning.refine",
                   "rsgeo.errors.RsgeoError"):
        assert f'id="{anchor}"' in page, anchor
    import rsgeo

    for name in rsgeo.__all__:  # every public name is documented, under its defining module
        if name != "__version__":
            obj = getattr(rsgeo, name)
            assert f'id="{obj.__module__}.{obj.__qualname__}"' in page, name


def test_links_from_readme_and_docs_to_repository_files_resolve() -> None:
    pages = [("README.md", (ROOT / "README.md").read_text(encoding="utf-8"))]
    pages += [(f"docs/{p.name}", p.read_text(encoding="utf-8")) for p in sorted((ROOT / "docs").glob("*.md"))]
    for page, text in pages:
        _, broken = docs_hooks.rewrite_links(text, page)
        assert not broken, broken


def test_rewrite_links_rules(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "maps.md").write_text("# Maps\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "corpus.py").write_text("")
    text = (
        "[m](docs/maps.md#cells) [c](tests/corpus.py) [u](https://x.org/a.md) [a](#here) [gone](tests/gone.py)\n"
        "```\n[in a fence](tests/gone.py)\n```\n"
    )
    out, broken = docs_hooks.rewrite_links(text, "README.md", docs_dir=tmp_path / "docs", root=tmp_path)
    assert "[m](maps.md#cells)" in out
    assert f"[c]({docs_hooks.REPO_URL}tests/corpus.py)" in out
    assert "[u](https://x.org/a.md)" in out and "[a](#here)" in out
    assert broken == ["README.md: tests/gone.py names tests/gone.py, which does not exist"]
    page, broken = docs_hooks.rewrite_links("[c](../tests/corpus.py) [m](maps.md)", "docs/errors.md",
                                            docs_dir=tmp_path / "docs", root=tmp_path)
    assert page == f"[c]({docs_hooks.REPO_URL}tests/corpus.py) [m](maps.md)" and not broken
    (tmp_path / "CHANGELOG.md").write_text("# Changelog\n")
    page, broken = docs_hooks.rewrite_links("[log](CHANGELOG.md)", "README.md", docs_dir=tmp_path / "docs", root=tmp_path)
    assert page == "[log](changelog.md)" and not broken  # a repository file that is a site page too


def test_strict_build_fails_on_broken_links(tmp_path: Path) -> None:
    """A copy of the docs with a dead anchor and a dead repository link: the build must fail, naming both."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    with open(docs / "maps.md", "a", encoding="utf-8") as f:
        f.write("\nSee [nowhere](schema.md#no-such-heading) and [gone](../tests/no_such_test.py).\n")
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    config = config.replace("docs_dir: docs", f"docs_dir: {docs}")
    config = config.replace("- scripts/docs_hooks.py", f"- {ROOT / 'scripts' / 'docs_hooks.py'}")
    config = config.replace("paths: [.]", f"paths: [{ROOT}]")
    config = config.replace("- scripts/docs_griffe.py", f"- {ROOT / 'scripts' / 'docs_griffe.py'}")
    (tmp_path / "mkdocs.yml").write_text(config, encoding="utf-8")
    built = _mkdocs(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert built.returncode != 0
    assert re.search(r"Aborted with \d+ warnings in strict mode", built.stdout + built.stderr), built.stdout + built.stderr[-3000:]
    assert "no-such-heading" in built.stderr
    assert "tests/no_such_test.py" in built.stderr
