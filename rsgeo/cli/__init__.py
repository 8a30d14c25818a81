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
from collections.abc import Sequence
from typing import Any, NoReturn

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS = [
    "rsgeo.cli.classify_cmd",
    "rsgeo.cli.query_cmd",
    "rsgeo.cli.embed_cmd",
    "rsgeo.cli.models_cmd",
    "rsgeo.cli.eval_cmd",
]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line, not usage plus message."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from rsgeo import __version__

    parser = OneLineParser(
        prog="rsgeo",
        description="Ask a GeoTIFF scene questions in plain language with remote-sensing CLIP models; "
        "answers are written as styled GeoPackage layers.",
    )
    parser.add_argument("--version", action="version", version=f"rsgeo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def _configure_logging(verbosity: int) -> None:
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(level=level, format="rsgeo: %(levelname)s: %(message)s", stream=sys.stderr, force=True)
    if verbosity < 2:
        for noisy in ("rasterio", "fiona", "pyogrio", "urllib3", "httpx", "huggingface_hub", "filelock"):
            logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rsgeo`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    verbosity = getattr(args, "verbose", 0) - (1 if getattr(args, "quiet", False) else 0)
    _configure_logging(verbosity)
    signal.signal(signal.SIGTERM, _terminate)
    from rsgeo.errors import RsgeoError

    try:
        return int(args.func(args) or 0)
    except RsgeoError as exc:
        print(f"rsgeo: error: {exc}", file=sys.stderr)
        return EXIT_USAGE if not isinstance(exc, OSError) else 1
    except KeyboardInterrupt:
        print(
            "rsgeo: interrupted; the output was not written (an embedding run continues with --resume)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except MemoryError:
        print("rsgeo: error: out of memory; lower --batch-size or --workers", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"rsgeo: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: say so in one line, details with -vv
        if verbosity >= 2:
            raise
        print(
            f"rsgeo: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
            "(rerun with -vv for the traceback and report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
