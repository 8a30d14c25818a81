"""The ``rsgeo`` command line.

Each subcommand lives in its own module under :mod:`rsgeo.cli` with
``add_parser(subparsers)`` and ``run(args) -> int``; this module only builds
the parser and turns errors into one line on stderr and an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS = [
    "rsgeo.cli.classify_cmd",
    "rsgeo.cli.query_cmd",
    "rsgeo.cli.embed_cmd",
    "rsgeo.cli.batch_cmd",
    "rsgeo.cli.export_cmd",
    "rsgeo.cli.models_cmd",
    "rsgeo.cli.eval_cmd",
    "rsgeo.cli.sample_cmd",
    "rsgeo.cli.assess_cmd",

    "rsgeo.cli.refine_cmd",
]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70
#: Another run holds the output's lock (sysexits' EX_TEMPFAIL: try again later).
EXIT_BUSY = 75


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line, not usage plus message."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class RaisingParser(argparse.ArgumentParser):
    """argparse for :func:`run_command`: a usage mistake raises :class:`~rsgeo.errors.OptionError`."""

    def error(self, message: str) -> NoReturn:
        from rsgeo.errors import OptionError

        raise OptionError(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        from rsgeo.errors import OptionError

        raise OptionError((message or f"{self.prog} exited with status {status}").strip())


def build_parser(parser_class: type[argparse.ArgumentParser] = OneLineParser) -> argparse.ArgumentParser:
    from rsgeo.version import __version__

    parser = parser_class(
        prog="rsgeo",
        description="Ask a GeoTIFF scene questions in plain language with remote-sensing CLIP models; "
        "answers are written as styled GeoPackage layers.",
    )
    parser.add_argument("--version", action="version", version=f"rsgeo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=parser_class)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


class JsonLogFormatter(logging.Formatter):
    """Log records as JSON events, for ``--progress json``: every stderr line
    but the final ``rsgeo: error:`` / ``rsgeo: wrote`` ones is then JSON.

    ``{"event": "warning"|"error", "message": ...}`` for warnings and errors
    (the QGIS plugin shows them as such), ``{"event": "log", "level": ...,
    "message": ...}`` for the rest.
    """

    def format(self, record: logging.LogRecord) -> str:
        import json

        level = record.levelname.lower()
        event = level if level in ("warning", "error", "critical") else "log"
        return json.dumps({"event": "error" if event == "critical" else event, "level": level,
                           "message": _one_line_text(record.getMessage())})


def _configure_logging(verbosity: int, progress: str | None = None) -> None:
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(level=level, format="rsgeo: %(levelname)s: %(message)s", stream=sys.stderr, force=True)
    if progress == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonLogFormatter())
    if verbosity < 2:
        for noisy in ("rasterio", "fiona", "pyogrio", "urllib3", "httpx", "huggingface_hub", "filelock"):
            logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
        # Dask sets its loggers' levels when it is imported (later, lazily): filter on our handler.
        # What it logs is what it recovers from (a worker slow to stop, then killed; a result lost
        # with its worker, fetched again); rsgeo reports what matters itself (a worker that left, as
        # one warning; a task that failed for good, as the error). -vv shows Dask's own messages.
        for handler in logging.getLogger().handlers:
            handler.addFilter(lambda r: not r.name.startswith("distributed") or r.levelno >= logging.CRITICAL)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rsgeo`` console script."""
    try:
        return _main(argv)
    finally:
        if argv is None:
            # The command is over (its output complete or left as it was): a late
            # Ctrl-C must not break the interpreter's shutdown with a traceback.
            # signal.signal runs the handler of a signal already in first, hence the try.
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    signal.signal(sig, signal.SIG_IGN)
                except KeyboardInterrupt:
                    signal.signal(sig, signal.SIG_IGN)


def run_command(
    argv: Sequence[str],
    *,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Path | None:
    """Run an rsgeo command line in this process, for a front end that embeds rsgeo.

    The same parser, option checks and API calls as the ``rsgeo`` command
    (the QGIS plugin's in-process backend builds the very argv it would give
    the command), but nothing is printed: a mistake raises
    :class:`~rsgeo.errors.RsgeoError` (argparse's too, as an ``OptionError``),
    progress goes to ``progress(done, total)``, ``cancel()`` is polled between
    batches. Returns the GeoPackage written, if the command writes one.
    """
    args = build_parser(RaisingParser).parse_args(list(argv))
    args.argv = ["rsgeo", *argv]
    args.progress_callback = progress
    args.cancel_check = cancel
    args.embedded = True
    args.func(args)
    written = getattr(args, "written", None)
    return Path(written) if written is not None else None


def _main(argv: Sequence[str] | None) -> int:
    from rsgeo.errors import OutputBusyError, RsgeoError, set_option_style

    set_option_style("cli")  # library messages name options as flags (unless a front end that started us says otherwise)
    verbosity = 0
    args = argparse.Namespace()
    target, before = None, None
    try:  # from the start: Ctrl-C while the parser is built is an interruption too
        signal.signal(signal.SIGTERM, _terminate)
        args = build_parser().parse_args(argv)
        args.argv = ["rsgeo", *(sys.argv[1:] if argv is None else argv)]
        verbosity = getattr(args, "verbose", 0) - (1 if getattr(args, "quiet", False) else 0)
        _configure_logging(verbosity, getattr(args, "progress", None))
        target = _target(args)
        before = _file_state(target)
        return int(args.func(args) or 0)
    except RsgeoError as exc:
        print(f"rsgeo: error: {_one_line(exc)}", file=sys.stderr)
        if isinstance(exc, OutputBusyError):
            return EXIT_BUSY
        return EXIT_USAGE if not isinstance(exc, OSError) else 1
    except KeyboardInterrupt:
        if getattr(args, "announced", False):  # Ctrl-C after "rsgeo: wrote ...": the run is over, and said so
            return 0
        if getattr(args, "command", None) in ("assess", "sample"):  # written in one step, no journal to resume
            if target is not None and _file_state(target) != before:
                print(f"rsgeo: interrupted after {target} was written; it is complete", file=sys.stderr)
            else:
                print(f"rsgeo: interrupted; {target} was left as it was", file=sys.stderr)
            return EXIT_INTERRUPTED
        if target is not None and target.is_dir():  # rsgeo batch -o OUT_DIR
            print(
                f"rsgeo: interrupted; the scenes finished in {target} are complete, the others keep their journals "
                "(rerun with --resume to skip the finished scenes and continue the others)",
                file=sys.stderr,
            )
        elif target is not None and _file_state(target) != before:  # Ctrl-C came after the output was moved in place
            print(f"rsgeo: interrupted after {target} was written; it is complete", file=sys.stderr)
        else:
            print(
                "rsgeo: interrupted; the output was left as it was (rerun with --resume to continue from the chips "
                "already encoded)",
                file=sys.stderr,
            )
        return EXIT_INTERRUPTED
    except MemoryError:
        print("rsgeo: error: out of memory; lower --batch-size or --workers", file=sys.stderr)
        return 1
    except Exception as exc:
        from rsgeo.gpkg import is_disk_full

        if is_disk_full(exc, _output_folder(args)):  # e.g. the run journal's SQLite on a full disk
            print(
                f"rsgeo: error: the disk is full ({_one_line(exc)}); free some space, then rerun with --resume "
                "to continue from the chips already encoded",
                file=sys.stderr,
            )
            return 1
        if isinstance(exc, OSError):
            print(f"rsgeo: error: {exc.strerror or _one_line(exc)}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
            return 1
        if verbosity >= 2:  # a bug: say so in one line, details with -vv
            raise
        print(
            f"rsgeo: internal error: {type(exc).__name__}: {_one_line(exc)} "
            "(rerun with -vv for the traceback and report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _target(args: argparse.Namespace) -> Path | None:
    """The file the command writes: ``-o``, or the result it adds layers to."""
    target = getattr(args, "output", None) or getattr(args, "source", None)
    return Path(target) if target is not None else None


def _file_state(path: Path | None) -> tuple[int, int, int, int] | None:
    """Identity of a file's current version (a replaced file has a new inode)."""
    from rsgeo.resultcheck import file_version

    return file_version(path)


def _output_folder(args: argparse.Namespace) -> Path | None:
    """Where the command writes (the output's folder, or an in-place result's)."""
    target = getattr(args, "output", None) or getattr(args, "source", None)
    return Path(target).resolve().parent if target is not None else None


def _one_line(exc: BaseException) -> str:
    """The message on one line: a second line on stderr would read as a second message."""
    return _one_line_text(str(exc)) or type(exc).__name__


def _one_line_text(text: str) -> str:
    return " ".join(text.split("\n")).strip()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
