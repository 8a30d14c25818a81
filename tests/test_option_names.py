"""Library messages name options the way the front end showing them does.

The same mistake, reached from the command line, from Python and from the
QGIS plugin, reads ``--batch-size``, ``batch_size`` and the plugin's field
label; the command line's own parser is what the plugin's in-process backend
runs (rsgeo.cli.run_command).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli, shared
from rsgeo.definitions.options import OPTIONS, ref, render
from rsgeo.errors import OptionError, ResultError, RsgeoError, option_style, spelt


def test_a_marker_is_spelt_for_each_front_end() -> None:
    text = f"lower {ref('batch_size')} or pass {ref('model', 'arch:ViT-B-32')} and {ref('overwrite')}"
    assert render(text, "cli") == "lower --batch-size or pass --model arch:ViT-B-32 and --overwrite"
    assert render(text, "python") == "lower `batch_size` or pass model='arch:ViT-B-32' and overwrite=True"
    assert render(text, "qgis") == "lower ‘Batch size’ or pass ‘Model’ = arch:ViT-B-32 and ‘Overwrite the output’"


def test_unknown_option_names_are_a_programming_error() -> None:
    with pytest.raises(KeyError):
        ref("chipsize")


def test_every_cli_flag_named_in_the_definitions_exists_in_the_cli() -> None:
    from rsgeo.cli import build_parser

    parser = build_parser()
    flags: set[str] = set()
    for action in parser._subparsers._group_actions[0].choices.values():  # type: ignore[union-attr]
        for a in action._actions:
            flags.update(a.option_strings)
    missing = sorted(o.flag for o in OPTIONS.values() if o.flag not in flags)
    assert missing == []


@pytest.mark.parametrize("style,expected", [("cli", "--batch-size"), ("python", "`batch_size`"), ("qgis", "‘Batch size’")])
def test_an_error_reads_in_the_style_current_when_it_is_shown(style: str, expected: str) -> None:
    from rsgeo.options import RunOptions

    with pytest.raises(OptionError) as caught:
        RunOptions(batch_size=0)
    with option_style(style):  # type: ignore[arg-type]
        message = str(caught.value)
    assert message == f"{expected} must be at least 1, got 0"
    assert "⟦" not in message


def test_the_python_api_names_keyword_arguments_by_default() -> None:
    from rsgeo.errors import _STYLE

    token = _STYLE.set(None)  # as a plain Python session (the tests' autouse fixture sets "cli")
    try:
        env = {k: v for k, v in os.environ.items() if k != "RSGEO_OPTION_STYLE"}
        code = (
            "import rsgeo\n"
            "from rsgeo.scene import ReadOptions\n"
            "try:\n    ReadOptions(min_valid=0)\nexcept ValueError as e:\n    print(e)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    finally:
        _STYLE.reset(token)
    assert out.strip() == "`min_valid` must be in (0, 1], got 0"


def test_log_messages_are_spelt_when_logged() -> None:
    with option_style("qgis"):
        assert spelt(f"see {ref('lang', 'pt')}") == "see ‘Language’ = pt"


def test_rsgeo_errors_of_every_builtin_kind_render() -> None:
    err: RsgeoError = ResultError(f"leave out {ref('model')}")
    with option_style("cli"):
        assert str(err) == "leave out --model"
    with option_style("qgis"):
        assert str(err) == "leave out ‘Model’"


def test_a_front_end_that_starts_rsgeo_decides_its_style(tmp_path: Path) -> None:
    """The plugin starts the CLI with RSGEO_OPTION_STYLE=qgis: its one-line errors name the plugin's fields."""
    args = ("embed", str(shared("RGB.byte.tif")), "-o", str(tmp_path / "x.gpkg"), "--model", "test:hash", "--batch-size", "0")
    cli = run_cli(*args, check=False)
    qgis = run_cli(*args, check=False, env={"RSGEO_OPTION_STYLE": "qgis"})
    assert cli.returncode == qgis.returncode == 2
    assert cli.stderr.strip() == "rsgeo: error: --batch-size must be at least 1, got 0"
    assert qgis.stderr.strip() == "rsgeo: error: ‘Batch size’ must be at least 1, got 0"


def test_run_command_parses_checks_and_raises_like_the_cli(tmp_path: Path) -> None:
    from rsgeo.cli import run_command

    out = tmp_path / "a.gpkg"
    seen: list[tuple[int, int]] = []
    written = run_command(["embed", str(shared("RGB.byte.tif")), "-o", str(out), "--model", "test:hash", "--chip-size", "128",
                           "--progress=json"], progress=lambda d, t: seen.append((d, t)))
    assert written == out and out.is_file()
    assert seen and seen[-1][0] == seen[-1][1] > 0
    with pytest.raises(OptionError, match="unrecognized arguments: --chipsize"):
        run_command(["embed", str(shared("RGB.byte.tif")), "-o", str(tmp_path / "b.gpkg"), "--chipsize", "9"])
    with pytest.raises(OptionError, match="chip-size must be a positive length"):
        run_command(["embed", str(shared("RGB.byte.tif")), "-o", str(tmp_path / "b.gpkg"), "--chip-size=-5"])
    assert not (tmp_path / "b.gpkg").exists()
