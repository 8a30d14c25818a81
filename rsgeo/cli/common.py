"""Options shared by the subcommands, and their translation to API objects."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_output_options(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument(
        "-o", "--output", type=Path, required=required, metavar="OUT.gpkg",
        help="result GeoPackage" + ("" if required else " (default: add the layers to the input GeoPackage)"),
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUT.gpkg if it exists")


def add_raster_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-rasters", action="store_true",
        help="write no Cloud-Optimised GeoTIFFs beside OUT.gpkg (default: the answer as rasters too; docs/maps.md)",
    )


def add_read_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("chips (ignored when the input is an encoded GeoPackage)")
    g.add_argument("--chip-size", metavar="N|Nm", help="chip side in pixels (224) or metres (500m); default: the ground side of the model's training images in the scene's pixels (16-896 px; `rsgeo models` lists the sides)")
    g.add_argument("--stride", metavar="N|Nm", help="step between chips in pixels or metres; default: the chip size (no overlap)")
    g.add_argument("--overlap", type=float, default=0.0, metavar="F", help="fraction of a chip shared with its neighbour, instead of --stride (default 0)")
    g.add_argument("--bands", metavar="R,G,B", help="1-based bands fed as red, green, blue (or one band as grey); for a STAC item also common names (nir,red,green) or visual (its visual asset); default: the RGB bands")
    g.add_argument("--stretch", default="auto", metavar="HOW", help="auto (default: 8-bit as is, else 2-98 %% percentiles), none, percentile:LOW,HIGH, range:MIN,MAX")
    g.add_argument("--gsd", type=float, metavar="METRES", help="resample the scene to this ground sample distance first")
    g.add_argument("--min-valid", type=float, default=0.5, metavar="F", help="skip chips with a smaller fraction of valid pixels (default 0.5)")


def add_run_options(p: argparse.ArgumentParser, *, default_model: str | None) -> None:
    """Model and run options; ``default_model`` is shown as the default (``None``: the stored model's)."""
    g = p.add_argument_group("model")
    g.add_argument(
        "--model", default=default_model, metavar="M",
        help=f"{default_model} (default), a name from `rsgeo models`, local-dir:PATH, hf-hub:ORG/REPO, arch:ARCH"
        if default_model else "the model (default: the one that made the stored embeddings)",
    )
    g.add_argument("--checkpoint", metavar="FILE", help="state-dict file for arch:ARCH or a registered model (local weights)")
    g.add_argument("--cache-dir", metavar="DIR", help="where downloaded weights are kept (default: the Hugging Face cache)")
    g.add_argument("--device", metavar="DEV", help="cpu, cuda, cuda:1 ... (default: cuda when present)")
    g.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16", "int8", "auto"], help="inference precision (default fp32; int8 on onnxruntime; auto: bf16 where the CPU has it in hardware and the model stays within budget, see docs/engines.md)")
    g.add_argument("--engine", default="auto", choices=["auto", "torch", "onnxruntime", "openvino"], help="what runs the image tower (default auto: the fastest installed for the device and precision, see docs/engines.md)")
    g.add_argument("--batch-size", type=int, metavar="N", help="chips per model batch (default 32 on CPU, 256 on GPU)")
    g.add_argument("--workers", type=int, metavar="N", help="reader threads (default: half the cores, at most 8)")
    g.add_argument("--embedding-dtype", default="float32", choices=["float32", "float16"], help="how embeddings are stored (default float32)")
    g.add_argument("--resume", action="store_true", help="continue an interrupted run from its journal")
    g.add_argument("--cluster", metavar="local|local:N|ADDR", help="encode on a Dask cluster: local worker processes, or a scheduler address such as tcp://head:8786 (default: this process; see docs/cluster.md)")


def add_dense_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("dense maps (open_clip ViT models; see docs/dense.md)")
    g.add_argument("--dense", action="store_true", help="also write rasters at patch resolution (7x7 cells a chip for ViT-B/32), overlapping chips blended")
    g.add_argument("--keep-patches", action="store_true", help="store the patch embeddings (float16, ~50 kB a chip for ViT-B/32) so dense maps of new texts need no re-encoding")


def add_verbosity(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="count", default=0, help="more messages (-vv: debug and tracebacks)")
    p.add_argument("-q", "--quiet", action="store_true", help="only errors")
    p.add_argument("--progress", default="auto", choices=["auto", "bar", "lines", "json", "none"], help="progress display on stderr")


def read_options(args: argparse.Namespace, *, for_items: bool = False) -> Any:
    """The read options; ``for_items``: for the items of a STAC search, whose ``--bands`` names are read per item
    (left ``None`` here)."""
    from rsgeo.scene import ReadOptions

    return ReadOptions(  # lengths are read by the one parser, rsgeo.definitions.lengths
        chip_size=args.chip_size,
        stride=args.stride,
        overlap=args.overlap,
        bands=_bands(args, for_items=for_items) if args.bands else None,
        stretch=args.stretch,
        gsd=args.gsd,
        min_valid=args.min_valid,
    )


def run_options(args: argparse.Namespace) -> Any:
    from rsgeo.pipeline import RunOptions

    return RunOptions(
        model=args.model,
        device=args.device,
        precision=args.precision,
        engine=args.engine,
        batch_size=args.batch_size,
        workers=args.workers,
        checkpoint=args.checkpoint,
        cache_dir=args.cache_dir,
        embedding_dtype=args.embedding_dtype,
        resume=args.resume,
        overwrite=args.overwrite,
        cluster=args.cluster,
        no_rasters=getattr(args, "no_rasters", False),
        dense=getattr(args, "dense", False),
        keep_patches=getattr(args, "keep_patches", False),
    )


def progress(args: argparse.Namespace) -> Any:
    """The progress display: the bar/lines/JSON on stderr, or the caller's callback (:func:`rsgeo.cli.run_command`)."""
    from rsgeo.cli.progress import CallbackProgress, Progress

    callback = getattr(args, "progress_callback", None)
    if callback is not None:
        return CallbackProgress(callback)
    return Progress("none" if args.quiet else args.progress)


def cancel_check(args: argparse.Namespace) -> Any:
    """The caller's cancellation check when the command runs embedded (:func:`rsgeo.cli.run_command`), else ``None``."""
    return getattr(args, "cancel_check", None)


def _bands(args: argparse.Namespace, *, for_items: bool = False) -> tuple[int, ...] | None:
    """``--bands``: numbers, or for a STAC item names such as red,green,blue (``None`` with ``for_items``)."""
    from rsgeo.scene import parse_bands
    from rsgeo.stac import band_indices, is_stac_item

    names = [b.strip() for b in args.bands.split(",")]
    by_name = all(n.isidentifier() for n in names)
    if for_items and by_name:
        return None
    source = getattr(args, "source", None) or getattr(args, "scene", None)
    if source is not None and is_stac_item(str(source)) and by_name:
        return band_indices(source, names)
    return parse_bands(args.bands)


def default_model_unless_result(args: argparse.Namespace) -> None:
    """With a scene and no model, the default model encodes; with a result, the stored one answers."""
    from rsgeo.definitions.models import DEFAULT_MODEL

    if args.model is None and not source_is_result(args.source):
        args.model = DEFAULT_MODEL


def source_is_result(path: str | Path) -> bool:
    """Whether the input is a result GeoPackage (a remote scene never is)."""
    from rsgeo.gpkg import is_geopackage
    from rsgeo.sources import is_remote

    return not is_remote(path) and is_geopackage(path)


def command_line(args: argparse.Namespace) -> list[str] | str:
    """The command as invoked (``rsgeo classify scene.tif ...``), recorded as ``run.command``; the subcommand
    when the arguments were parsed elsewhere."""
    argv = getattr(args, "argv", None)
    return [str(a) for a in argv] if argv else str(getattr(args, "command", ""))


def finish(args: argparse.Namespace, bar: Any, output: Path, note: str = "") -> int:
    args.written = output
    if getattr(args, "embedded", False):  # run by rsgeo.cli.run_command: the caller reports it
        return 0

    def say() -> None:
        bar.done(str(output))
        if not args.quiet:
            import sys

            print(f"rsgeo: wrote {output}" + (f" ({note})" if note else ""), file=sys.stderr)

    announce(args, say)
    return 0


def announce(args: argparse.Namespace, say: Any) -> None:
    """Say that the command's output is complete, with Ctrl-C held off until it has been said.

    A Ctrl-C (or SIGTERM) that comes while the line is printed is noted and raised
    once it has been, and ``args.announced`` then tells the command line that the
    run is over and was reported as such: no second line, exit 0. (Masking the
    signal would not do: the kernel may hand it to any thread that does not mask it.)
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        say()
        args.announced = True
        return
    pending: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    before = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum)) for sig in held}
    try:
        say()
        args.announced = True
    finally:
        for sig, handler in before.items():  # signal.signal runs the handlers of signals already in first
            signal.signal(sig, handler)
    if pending:
        raise KeyboardInterrupt


def add_label_options(p: argparse.ArgumentParser, *, yes_no: bool) -> None:
    """``--labels`` and friends: learn from an analyst's labels (docs/refine.md)."""
    g = p.add_argument_group("labels (a result GeoPackage only; see docs/refine.md)")
    what = "yes/no (1/0, true/false) per feature" if yes_no else "the class name of each feature"
    g.add_argument("--labels", type=Path, metavar="FILE", help=f"labelled points or polygons (any vector file, any CRS) or a table with tile_id; its --label-field holds {what}")
    g.add_argument("--label-field", metavar="FIELD", help="the field holding the labels")
    g.add_argument("--label-layer", metavar="NAME", help="the layer of the labels file (default: its only layer)")
    g.add_argument("--save-labels", metavar="NAME", help="also write the labelled chips as layer NAME (tile_id, label), to load back with --labels")
    g.add_argument("--reg", type=float, default=None, metavar="R", help="pull of the text classifier on the fitted weights (default 0.05; larger: closer to zero-shot)")


def label_source(args: argparse.Namespace) -> Any:
    """The labels the options name, or ``None``; one line for what is missing."""
    from rsgeo.errors import OptionError, opt

    if args.labels is None:
        for name in ("label_field", "label_layer", "save_labels", "reg"):
            if getattr(args, name) is not None:
                raise OptionError(f"{opt(name)} needs {opt('labels', 'FILE')}")
        return None
    if not source_is_result(args.source):
        raise OptionError(f"{opt('labels')} learns from stored embeddings: give a result GeoPackage (encode the scene with `rsgeo embed` first)")
    if not args.label_field:
        raise OptionError(f"give the field holding the labels with {opt('label_field', 'FIELD')}")
    if args.reg is not None and args.reg <= 0:
        raise OptionError(f"{opt('reg')} must be positive, got {args.reg}")
    from rsgeo.learning import LabelSource

    return LabelSource(args.labels, args.label_field, args.label_layer)


def add_zone_options(p: argparse.ArgumentParser, *, unsure: bool) -> None:
    z = p.add_argument_group("zones (one answer per polygon: docs/inputs.md)")
    z.add_argument("--zones", metavar="ZONES.gpkg[:layer]", help="encode or answer each polygon of this vector layer (any CRS) instead of each chip, into a new GeoPackage -o: from a scene, each zone is encoded from its own chips with the pixels outside it masked; from a result GeoPackage, the stored embeddings of the chips it overlaps are combined")
    if unsure:
        z.add_argument("--unsure-below", type=float, metavar="SCORE", help='with zones: top_class is "unsure" where the top score is below SCORE')
    z.add_argument("--min-zone-px", type=float, default=1.0, metavar="N", help="with --zones: zones under N pixels of area are reported (status too_small), not answered (default 1)")


def source_is_zone_result(path: str | Path) -> bool:
    """Whether the input is a zones result (``rsgeo embed SCENE --zones``)."""
    from rsgeo.sources import is_remote
    from rsgeo.zone_results import is_zone_result

    return not is_remote(path) and is_zone_result(path)


def check_zone_run(args: argparse.Namespace) -> None:
    """Zone answers go to a new GeoPackage; a zones result already has its zones."""
    from rsgeo.errors import OptionError

    if args.zones is not None and source_is_zone_result(args.source):
        raise OptionError(
            f"{args.source} already holds zone embeddings; leave out --zones to answer for its zones, "
            "or give the scene to encode other zones"
        )
    if args.output is None:
        raise OptionError("zone answers go to a new GeoPackage: give it with -o ZONES_OUT.gpkg")
    if args.output.exists() and not args.overwrite:
        raise OptionError(f"{args.output} exists; pass --overwrite to replace it")


def zone_source(args: argparse.Namespace) -> tuple[Any, str | None]:
    """What zones are answered from, and the zones to pass with it: a zones result (its own zones),
    a tiles result (``--zones``), or a scene, whose ``--zones`` are encoded now (not stored)."""
    from rsgeo.errors import OptionError

    if source_is_zone_result(args.source):
        from rsgeo.definitions.models import canonical_model_id
        from rsgeo.zone_results import open_zones

        zones = open_zones(args.source, device=args.device, checkpoint=args.checkpoint, cache_dir=args.cache_dir)
        if args.model is not None and canonical_model_id(args.model) != zones.model_id:
            raise OptionError(f"{zones.name} was encoded with model {zones.model_id!r}, not {args.model!r}; leave out --model")
        return zones, None
    if source_is_result(args.source):
        import rsgeo

        return rsgeo.open_result(args.source), args.zones
    from rsgeo.zones import embed_zones

    default_model_unless_result(args)
    return embed_zones(
        args.source, args.zones, read=read_options(args), options=run_options(args), min_area_px=args.min_zone_px,
        command=command_line(args), progress=progress(args), cancel=cancel_check(args),
    ), None


def report_zones(status: Any) -> None:
    """The count of zones not answered, on stderr (also under -q: it says why rows are empty)."""
    import sys

    from rsgeo.zones import STATUS_OK

    skipped = sum(str(s) != STATUS_OK for s in status)
    if skipped:
        print(f"{skipped} of {len(status)} zones not scored (too small or no data; see the status column)", file=sys.stderr)


def write_zones(args: argparse.Namespace, answer: Any) -> int:
    """Write the zone answers (layer ``zones`` or ``--layer``) atomically; the count not answered on stderr."""
    from rsgeo.gpkg import atomic_output, check_output, connect, ensure_styles_table, set_style
    from rsgeo.locks import OutputLock
    from rsgeo.zones import zone_style

    check_output(args.output, overwrite=args.overwrite)
    with OutputLock(args.output, command=command_line(args)):
        with atomic_output(args.output) as tmp:
            answer.to_file(tmp, layer=args.layer or "zones", driver="GPKG")
            with connect(tmp) as db:  # styled: QGIS opens the answer coloured by class or similarity
                ensure_styles_table(db)
                set_style(db, args.layer or "zones", zone_style(answer))
    report_zones(answer["status"])
    return finish(args, progress(args), args.output)
