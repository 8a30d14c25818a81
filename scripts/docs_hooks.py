"""MkDocs hooks for the rsgeo documentation site (``make docs``; ``mkdocs.yml`` names this file).

Three pages are generated at build time, so they can never drift from their sources:

* ``index.md`` is the README (and ``changelog.md`` is CHANGELOG.md), its links
  rewritten for the site: ``docs/X.md`` becomes ``X.md``; a link to another file
  of the repository (``notebooks/``, ``data/sample/README.md``) becomes its URL
  on the repository's web page.
* ``cli.md`` is the command-line reference, rendered from the real argparse
  parsers (:func:`rsgeo.cli.build_parser`): every subcommand, its usage, and each
  argument with its choices and default.

The pages under ``docs/`` get the same treatment of links that leave ``docs/``
(``../tests/corpus.py``). Every such link must name a file that exists in the
repository, or the build fails: MkDocs checks links inside the site, this
checks the ones that leave it.
"""

from __future__ import annotations

import argparse
import logging
import posixpath
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: Where a link to a repository file that is not part of the site points.
REPO_URL = "https://github.com/rsgeo/rsgeo/blob/main/"
#: Repository files that are pages of the site too (generated from them in on_files).
SITE_PAGES = {"README.md": "index.md", "CHANGELOG.md": "changelog.md"}
#: Markdown links and images, ``[text](target)``; the target has no spaces or parentheses.
LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")
FENCE = re.compile(r"^(```|~~~)")

# Under "mkdocs": its warnings count, so `mkdocs build --strict` fails on them.
log = logging.getLogger("mkdocs.hooks.rsgeo")


# ---------------------------------------------------------------- links


def _outside_lines(markdown: str) -> list[tuple[bool, str]]:
    """The lines of ``markdown``, each marked True when it is inside a fenced code block."""
    out, fenced = [], False
    for line in markdown.splitlines(keepends=True):
        if FENCE.match(line.lstrip()):
            out.append((True, line))
            fenced = not fenced
            continue
        out.append((fenced, line))
    return out


def rewrite_links(markdown: str, page: str, *, docs_dir: Path = ROOT / "docs", root: Path = ROOT) -> tuple[str, list[str]]:
    """Rewrite the relative links of ``page`` (a path relative to the repository root) for the site.

    Links into ``docs/`` become links between site pages (checked by MkDocs);
    links to other repository files become their repository URLs, after checking
    that the file exists. Returns the new text and the broken links found.
    """
    page_dir = posixpath.dirname(page)
    docs_rel = docs_dir.relative_to(root).as_posix()
    broken: list[str] = []

    def fix(match: re.Match[str]) -> str:
        target = match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
            return match.group(0)  # URLs, mailto:, anchors on the same page
        path, _, anchor = target.partition("#")
        repo_path = posixpath.normpath(posixpath.join(page_dir, path))
        if repo_path.startswith("../") or repo_path == "..":
            broken.append(f"{page}: {target} leaves the repository")
            return match.group(0)
        if not (root / repo_path).exists():
            broken.append(f"{page}: {target} names {repo_path}, which does not exist")
            return match.group(0)
        suffix = f"#{anchor}" if anchor else ""
        if repo_path in SITE_PAGES:
            repo_path = f"{docs_rel}/{SITE_PAGES[repo_path]}"
        if repo_path == docs_rel or repo_path.startswith(docs_rel + "/"):
            # A page (or image) of the site: relative to where the page lands in the site.
            in_docs = posixpath.relpath(repo_path, docs_rel)
            here = posixpath.relpath(page_dir or ".", docs_rel) if page.startswith(docs_rel + "/") else "."
            return f"{match.group(1)}{posixpath.relpath(in_docs, here)}{suffix}{match.group(3)}"
        return f"{match.group(1)}{REPO_URL}{repo_path}{suffix}{match.group(3)}"

    lines = [line if fenced else LINK.sub(fix, line) for fenced, line in _outside_lines(markdown)]
    return "".join(lines), broken


# ---------------------------------------------------------------- the CLI reference


def _help_text(action: argparse.Action, prog: str) -> str:
    text = action.help or ""
    if "%" in text:  # argparse's own expansion: %(default)s, %(choices)s, %%
        params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
        if params.get("choices") is not None:
            params["choices"] = ", ".join(map(str, params["choices"]))
        text = text % dict(params, prog=prog)
    # docs/maps.md in a help text: a link to the page.
    return _escape_table(_link_pages(text))


def _link_pages(text: str) -> str:
    """``docs/maps.md`` in a help text or group title becomes a link to that page."""
    return re.sub(r"\bdocs/([a-z_]+)\.md\b", r"[\1](\1.md)", text.replace("<", "&lt;"))


def _escape_table(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _names(action: argparse.Action) -> str:
    if action.option_strings:
        names = ", ".join(f"`{o}`" for o in action.option_strings)
        if action.nargs != 0:
            metavar = action.metavar or (action.dest.upper() if action.choices is None else None)
            if isinstance(metavar, tuple):
                metavar = " ".join(metavar)
            if metavar:
                names += f" `{metavar}`"
        return names
    return f"`{action.metavar or action.dest}`"


def _default(action: argparse.Action) -> str:
    if action.option_strings and action.nargs == 0:
        return ""  # flags: off unless given
    if action.default in (None, argparse.SUPPRESS) or action.required:
        return ""
    if isinstance(action.default, list) and not action.default:
        return ""
    return f"`{action.default}`"


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=88)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return []


def render_cli_reference(parser: argparse.ArgumentParser | None = None) -> str:
    """The Markdown page of every ``rsgeo`` subcommand, from the parser the command itself uses."""
    if parser is None:
        from rsgeo.cli import build_parser

        parser = build_parser()
    subs = _subcommands(parser)
    out = [
        "# Command-line reference\n\n",
        "Generated from the `rsgeo` command's own argparse parsers when this site is built "
        "(`scripts/docs_hooks.py`), so it lists exactly what `rsgeo COMMAND --help` accepts.\n\n",
        f"{parser.description}\n\n",
        f"```text\n{_usage(parser)}\n```\n\n",
        "| command | what it does |\n|---|---|\n",
    ]
    out += [f"| [`{name}`](#rsgeo-{name}) | {_escape_table(summary)} |\n" for name, summary, _ in subs]
    out.append(
        "\nEvery command also takes `-h`/`--help`. An input mistake ends with one line on stderr "
        "and a non-zero exit ([errors](errors.md)).\n"
    )
    for name, summary, sub in subs:
        out.append(f"\n## rsgeo {name}\n\n")
        if sub.description or summary:
            out.append(f"{sub.description or summary}\n\n")
        out.append(f"```text\n{_usage(sub)}\n```\n")
        for group in sub._action_groups:
            actions = [a for a in group._group_actions if a.help is not argparse.SUPPRESS
                       and not isinstance(a, argparse._HelpAction)]
            if not actions:
                continue
            title = group.title or "arguments"
            out.append(f"\n**{_link_pages(title[0].upper() + title[1:])}**\n\n")
            out.append("| argument | choices | default | description |\n|---|---|---|---|\n")
            for a in actions:
                choices = ", ".join(f"`{c}`" for c in a.choices) if a.choices is not None else ""
                required = " (required)" if a.option_strings and a.required else ""
                out.append(f"| {_names(a)}{required} | {choices} | {_default(a)} | {_help_text(a, sub.prog)} |\n")
    return "".join(out)


# ---------------------------------------------------------------- MkDocs events


def on_files(files: Any, config: Any, **kwargs: Any) -> Any:
    """Add the generated pages: ``index.md`` (the README), ``changelog.md`` and ``cli.md`` (the CLI reference)."""
    from mkdocs.structure.files import File

    pages = {}
    for source, name in SITE_PAGES.items():
        pages[name], broken = rewrite_links((ROOT / source).read_text(encoding="utf-8"), source)
        for problem in broken:
            log.warning("broken link: %s", problem)
    pages["cli.md"] = render_cli_reference()
    for name, content in pages.items():
        if files.get_file_from_path(name) is not None:
            log.warning("docs/%s exists, but the site generates %s from its source; remove docs/%s", name, name, name)
            files.remove(files.get_file_from_path(name))
        files.append(File.generated(config, name, content=content))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    """Links from a docs/ page to repository files outside docs/ become repository URLs."""
    if page.file.generated_by is not None:
        return markdown  # index.md and changelog.md were rewritten in on_files, cli.md links only pages
    text, broken = rewrite_links(markdown, f"docs/{page.file.src_uri}")
    for problem in broken:
        log.warning("broken link: %s", problem)
    return text
