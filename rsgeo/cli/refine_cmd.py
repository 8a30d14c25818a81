"""``rsgeo refine``: transductive refinement of a stored land-cover layer (docs/refine.md)."""

from __future__ import annotations

import argparse

from rsgeo.cli import common


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from rsgeo.transductive import RefineParams

    d = RefineParams()
    p = sub.add_parser(
        "refine", help="refine a land-cover layer with the scene's own embeddings (no labels)",
        description="Transductive refinement (RS-TransCLIP): a Gaussian mixture over the stored image embeddings, "
        "started from the layer's zero-shot scores, neighbouring chips pulled to agree and every chip kept close to "
        "what the text said. Classes the scene does not hold can end empty. Reads no pixels and loads no model; "
        "writes a new land-cover layer (see docs/refine.md).",
    )
    p.add_argument("source", help="a result GeoPackage with a land-cover layer (from `rsgeo classify`)")
    common.add_output_options(p, required=False)
    g = p.add_argument_group("refinement")
    g.add_argument("--layer", default="landcover", metavar="NAME", help="the land-cover layer to refine (default landcover)")
    g.add_argument("--new-layer", metavar="NAME", help="name of the refined layer (default <layer>_refined)")
    g.add_argument("--knn", type=int, default=d.knn, metavar="K", help=f"neighbours per chip in the affinity graph (default {d.knn}; 0: none)")
    g.add_argument("--text-weight", type=float, default=d.text_weight, metavar="W", help=f"weight of the zero-shot text scores (default {d.text_weight})")
    g.add_argument("--laplacian-weight", type=float, default=d.laplacian_weight, metavar="W", help=f"weight of neighbours agreeing (default {d.laplacian_weight})")
    g.add_argument("--iterations", type=int, default=d.iterations, metavar="N", help=f"outer iterations (default {d.iterations})")
    g.add_argument("--min-class-weight", type=float, default=d.min_weight, metavar="F", help=f"a class holding less than this share of the chips is removed as absent (default {d.min_weight})")
    common.add_verbosity(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rsgeo.errors import OptionError, opt
    from rsgeo.learning import refine
    from rsgeo.transductive import RefineParams

    if not common.source_is_result(args.source):
        raise OptionError(f"{args.source} is not a result GeoPackage; refine works on the layers of `rsgeo classify`'s output")
    if args.knn < 0:
        raise OptionError(f"{opt('knn')} must be 0 or more, got {args.knn}")
    if args.iterations < 1:
        raise OptionError(f"{opt('iterations')} must be at least 1, got {args.iterations}")
    if args.text_weight < 0 or args.laplacian_weight < 0:
        raise OptionError(f"{opt('text_weight')} and {opt('laplacian_weight')} must not be negative")
    if not 0 <= args.min_class_weight < 1:
        raise OptionError(f"{opt('min_class_weight')} is a share of the chips in [0, 1), got {args.min_class_weight}")
    params = RefineParams(knn=args.knn, text_weight=args.text_weight, laplacian_weight=args.laplacian_weight,
                          iterations=args.iterations, min_weight=args.min_class_weight)
    report = refine(args.source, args.layer, args.output, new_layer=args.new_layer, params=params,
                    overwrite=args.overwrite)
    return common.finish(args, common.progress(args), report.output, report.summary)
