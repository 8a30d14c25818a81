"""``rsgeo eval``: zero-shot accuracy on an image-folder dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rsgeo.cli import common
from rsgeo.definitions.models import DEFAULT_MODEL


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "eval", help="zero-shot accuracy on an image-folder dataset (one sub-folder per class)",
        description="Zero-shot top-1/top-5 accuracy, per-class recall and confusion matrix on DATASET_DIR/<class>/<image>, "
        "through the same preprocessing, prompts and class sets as `rsgeo classify`. Folders named like a built-in "
        "class set's labels (EuroSAT, UC Merced, AID, NWPU-RESISC45) use that set's readable names.",
    )
    p.add_argument("dataset", type=Path, metavar="DATASET_DIR", help="folder with one sub-folder of images per class")
    g = p.add_argument_group("classes")
    g.add_argument("--class-set", metavar="NAME|FILE", help="class set whose labels are the folder names (default: recognised, else the folder names)")
    g.add_argument("--template", action="append", dest="templates", metavar="TEXT", help='prompt template with {} for the class (repeatable; default: the model\'s)')
    g.add_argument("--templates-file", type=Path, metavar="FILE", help="prompt templates, one per line")
    g.add_argument("--lang", metavar="CODE", help="language of the class names (en, pt, zh, ...)")
    g = p.add_argument_group("images")
    g.add_argument("--limit", type=int, metavar="N", help="only the first N images of each class (a quick check)")
    g.add_argument("--bands", metavar="R,G,B", help="bands of multi-band TIFF images fed as R,G,B (e.g. 4,3,2 for EuroSAT MS)")
    g.add_argument("--stretch", default="auto", metavar="HOW", help="scaling of non-8-bit TIFFs: auto, none, percentile:LOW,HIGH, range:MIN,MAX")
    g = p.add_argument_group("model")
    g.add_argument("--model", default=DEFAULT_MODEL, metavar="M", help=f"{DEFAULT_MODEL} (default), a name from `rsgeo models`, local-dir:PATH, hf-clip:PATH, arch:ARCH")
    g.add_argument("--checkpoint", metavar="FILE", help="local weights for a registered model or arch:ARCH")
    g.add_argument("--cache-dir", metavar="DIR", help="where downloaded weights are kept (default: $RSGEO_CACHE_DIR or the Hugging Face cache)")
    g.add_argument("--device", metavar="DEV", help="cpu, cuda, ... (default: cuda when present)")
    g.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="inference precision (default fp32)")
    g.add_argument("--batch-size", type=int, default=32, metavar="N", help="images per model batch (default 32)")
    g = p.add_argument_group("output")
    g.add_argument("-o", "--output", type=Path, metavar="REPORT.json", help="also write the full results as JSON")
    g.add_argument("--confusion", action="store_true", help="print the confusion matrix even for more than 30 classes")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more messages (-vv: debug and tracebacks)")
    p.add_argument("-q", "--quiet", action="store_true", help="only errors")
    p.add_argument("--progress", default="auto", choices=["auto", "bar", "lines", "json", "none"], help="progress display on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rsgeo.cli.progress import Progress
    from rsgeo.zoo import load_encoder
    from rsgeo.errors import OutputError
    from rsgeo.evaluation import evaluate_zero_shot
    from rsgeo.scene import parse_bands
    from rsgeo.zoo.templates import load_templates

    templates = list(args.templates or [])
    if args.templates_file is not None:
        templates += list(load_templates(args.templates_file))
    encoder = load_encoder(
        args.model, device=args.device, precision=args.precision, checkpoint=args.checkpoint, cache_dir=args.cache_dir,
        engine="torch",  # evaluation batches vary in size; engines export one file per batch shape
    )
    bar = Progress("none" if args.quiet else args.progress, label="images")
    result = evaluate_zero_shot(
        encoder,
        args.dataset,
        class_set=args.class_set,
        templates=templates or None,
        lang=args.lang,
        batch_size=args.batch_size,
        limit_per_class=args.limit,
        bands=parse_bands(args.bands) if args.bands else None,
        stretch=args.stretch,
        progress=bar,
    )
    print(result.report(confusion=True if args.confusion else None))
    if args.output is not None:
        try:
            args.output.write_text(result.to_json() + "\n", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write {args.output}: {exc.strerror}; check the folder exists and is writable") from None
        if not args.quiet:
            common.announce(args, lambda: print(f"rsgeo: wrote {args.output}", file=sys.stderr))
    return 0
