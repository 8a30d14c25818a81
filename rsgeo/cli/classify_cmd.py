"""``rsgeo classify``: zero-shot land cover per chip."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rsgeo.cli import common, search


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "classify", help="zero-shot land-cover scores per chip",
        description="Score every chip of a scene (or of an encoded GeoPackage) against land-cover classes, "
        "CLIP zero-shot: softmax of the model's logit scale times the cosine similarity to each class prompt.",
    )
    p.add_argument("source", nargs="?", help="a scene (a file, or a GDAL path or URL such as /vsis3/bucket/x.tif, or a STAC item file or URL), or a GeoPackage written by rsgeo (answers from its embeddings); none with --stac-search")
    common.add_output_options(p, required=False)
    common.add_raster_options(p)
    search.add_options(p)
    g = p.add_argument_group("classes")
    g.add_argument("--classes", metavar="A,B,...", help='comma-separated class names, e.g. "forest,water,urban area"')
    g.add_argument("--class-set", metavar="NAME|FILE", help="a built-in class set (see `rsgeo models --class-sets`) or a YAML/CSV file")
    g.add_argument("--template", action="append", dest="templates", metavar="TEXT", help='prompt template with {} for the class, e.g. "a satellite photo of {}." (repeatable; default: the model\'s)')
    g.add_argument("--templates-file", type=Path, metavar="FILE", help="prompt templates, one per line")
    g.add_argument("--lang", metavar="CODE", help="language of the class names (en, pt, zh, ...; class sets have names per language)")
    g.add_argument("--layer", default=None, metavar="NAME", help="layer name (default landcover; with --labels landcover_probe)")
    common.add_zone_options(p, unsure=True)
    common.add_label_options(p, yes_no=False)
    common.add_read_options(p)
    common.add_run_options(p, default_model=None)
    common.add_dense_options(p)
    common.add_verbosity(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rsgeo.api import classify
    from rsgeo.errors import OptionError, opt
    from rsgeo.prompts import parse_class_list

    templates = list(args.templates or [])
    if args.templates_file is not None:
        try:
            lines = args.templates_file.read_text(encoding="utf-8-sig").splitlines()
        except OSError as exc:
            raise OptionError(f"cannot read --templates-file {args.templates_file}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise OptionError(
                f"--templates-file {args.templates_file} is not UTF-8 text (byte {exc.start}: {exc.reason}); "
                "save it as UTF-8"
            ) from None
        from_file = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        if not from_file:
            raise OptionError(f"--templates-file {args.templates_file} holds no template; write one per line, with {{}}")
        templates += from_file
    classes = parse_class_list(args.classes) if args.classes is not None else None
    if search.asked(args, args.source):
        search.refuse(args, "zones", "labels", "dense", "keep_patches")
        if classes is None and args.class_set is None:
            raise OptionError(f"give the classes with {opt('classes', 'A,B,...')} or {opt('class_set', 'NAME')}")
        return search.run(args, classes=tuple(classes) if classes is not None else None, class_set=args.class_set,
                          templates=tuple(templates) or None, lang=args.lang, layer=args.layer)
    if args.zones is not None or common.source_is_zone_result(args.source):
        return _zones(args, classes, templates)
    labels = common.label_source(args)
    if labels is not None:
        return _from_labels(args, labels, classes, templates)
    bar = common.progress(args)
    out = classify(
        args.source, args.output, classes=classes, class_set=args.class_set, templates=templates or None,
        lang=args.lang, layer=args.layer or "landcover", read=common.read_options(args), options=_options(args),
        progress=bar, cancel=common.cancel_check(args), command=common.command_line(args),
    )
    return common.finish(args, bar, out)


def _options(args: argparse.Namespace) -> Any:
    common.default_model_unless_result(args)
    return common.run_options(args)


def _from_labels(args: argparse.Namespace, labels: Any, classes: list[str] | None, templates: list[str]) -> int:
    from rsgeo.definitions.schema import PROBE_LAYER
    from rsgeo.learning import classify_with_labels
    from rsgeo.probe import DEFAULT_REG

    report = classify_with_labels(
        args.source, labels, args.output, classes=classes, class_set=args.class_set, templates=templates or None,
        lang=args.lang, layer=args.layer or PROBE_LAYER, reg=args.reg if args.reg is not None else DEFAULT_REG,
        save_labels=args.save_labels, options=_options(args),
    )
    return common.finish(args, common.progress(args), report.output, report.summary)


def _zones(args: argparse.Namespace, classes: list[str] | None, templates: list[str]) -> int:
    from rsgeo.questions import ClassChoice
    from rsgeo.zones import caller_reports, classify_zones

    common.check_zone_run(args)
    # Checked (a class set file read) before the zones of a scene are encoded: a typo costs no encoding.
    ClassChoice(classes=tuple(classes) if classes is not None else None, class_set=args.class_set,
                templates=tuple(templates) or None, lang=args.lang)
    with caller_reports():  # write_zones prints the count of zones not scored, once
        source, zones = common.zone_source(args)
        answer = classify_zones(source, zones, classes, class_set=args.class_set, templates=templates or None,
                                lang=args.lang, unsure_below=args.unsure_below, min_area_px=args.min_zone_px)
    return common.write_zones(args, answer)
