"""``rsgeo models``: the model registry, languages and cache state; ``--class-sets``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "models", help="list the models (languages, cached or not) and the built-in class sets",
        description="List rsgeo's registered models: the languages their text tower reads and whether their "
        "weights are in the cache already (nothing is downloaded). --class-sets lists the built-in class sets.",
    )
    p.add_argument("--class-sets", action="store_true", help="list the built-in class sets instead")
    p.add_argument("--details", action="store_true", help="also show sources, pinned revisions, checksums, inputs and templates")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--cache-dir", metavar="DIR", help="the weights cache to inspect (default: $RSGEO_CACHE_DIR or the Hugging Face cache)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more messages")
    p.add_argument("-q", "--quiet", action="store_true", help="only errors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = class_set_rows() if args.class_sets else model_rows(args.cache_dir)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    elif args.class_sets:
        _table(rows, ["name", "classes", "languages", "title"])
    else:
        from rsgeo.zoo.hub import cache_root

        _table(rows, ["name", "cached", "languages", "title"])
        if args.details:
            for row in rows:
                _details(row)
        print(f"\ncache: {cache_root(args.cache_dir)}  (set --cache-dir or RSGEO_CACHE_DIR to change it)")
    return 0


def model_rows(cache_dir: str | None = None) -> list[dict[str, Any]]:
    """One dict per registered model, with its cache state (no network access)."""
    from rsgeo.zoo.hub import cached_path
    from rsgeo.definitions.models import DEFAULT_MODEL
    from rsgeo.zoo.registry import MODELS
    from rsgeo.zoo.templates import record_templates

    rows = []
    for m in MODELS:
        cached = [cached_path(f, cache_dir) is not None for f in m.files]
        state = "yes" if all(cached) else ("no" if not any(cached) else f"partly ({sum(cached)}/{len(cached)} files)")
        rows.append(
            {
                "name": m.name + (" (default)" if m.name == DEFAULT_MODEL else ""),
                "model": m.name,
                "default": m.name == DEFAULT_MODEL,
                "cached": state,
                "languages": " ".join(m.languages),
                "title": m.title,
                "loader": m.loader,
                "architecture": m.architecture,
                "source": m.reference,
                "repo": m.repo,
                "revision": m.revision or "main (not pinned)",
                "files": [
                    {
                        "file": f.filename,
                        "url": f.download_url,
                        "sha256": f.sha256,
                        "checksum": "published, not re-verified here" if f.sha256 else "none published",
                    }
                    for f in m.files
                ],
                "input": f"{m.image_spec.size} px, {m.image_spec.resize_mode}, {m.image_spec.interpolation}, "
                f"mean {m.image_spec.mean}, std {m.image_spec.std}",
                "templates": list(record_templates(m, "en")),
                "training_scale": (
                    f"{m.training_scale.extent_m:g} m per training image ({m.training_scale.source})"
                    if m.training_scale else "unknown: the default chip is the input size in pixels"
                ),
                "extra": m.extra,
                "notes": m.notes,
            }
        )
    return rows


def class_set_rows() -> list[dict[str, Any]]:
    from rsgeo.classsets import builtin_class_set, list_class_sets

    rows = []
    for name in list_class_sets():
        cs = builtin_class_set(name)
        rows.append(
            {"name": name, "classes": len(cs), "languages": " ".join(cs.languages), "title": cs.title,
             "names": list(cs.names)}
        )
    return rows


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in columns).rstrip())
    sys.stdout.flush()


def _details(row: dict[str, Any]) -> None:
    print(f"\n{row['model']}: {row['title']}")
    print(f"  loads as      {row['loader']} ({row['architecture']})" + (f"; needs pip install 'rsgeo[{row['extra']}]'" if row["extra"] else ""))
    if row["repo"]:
        print(f"  weights from  https://huggingface.co/{row['repo']} (revision {row['revision']})")
    print(f"  reference     {row['source']}")
    for f in row["files"]:
        sha = f["sha256"][:16] + "…" if f["sha256"] else "-"
        print(f"  file          {f['file']}  sha256 {sha} ({f['checksum']})")
    print(f"  input         {row['input']}")
    print(f"  templates     {' | '.join(row['templates'])}")
    print(f"  training      {row['training_scale']}")
    if row["notes"]:
        print(f"  notes         {row['notes']}")
