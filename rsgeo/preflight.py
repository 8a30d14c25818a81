"""Checks made before any chip is encoded: what the run writes, and what it will ask.

Every mistake here is one :class:`~rsgeo.errors.OptionError` line (exit 2)
before the model is loaded or a pixel read, so a mistake never costs a whole
scene's encoding: an output that is the input scene itself (compared by file
identity, so a symlink, a hard link or ``./a/../x.tif`` is caught too), example
tiles and locations that fall outside the chip grid.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from rsgeo.errors import OptionError, opt
from rsgeo.grid import ChipGrid
from rsgeo.questions import QueryQuestion, Question
from rsgeo.sources import SceneSource


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file: the same inode when both exist, else the same resolved path."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def refuse_output_is_input(scene: SceneSource, output: Path) -> None:
    """Refuse ``-o`` naming the scene being read: replacing it would destroy the input."""
    if scene.remote:
        return
    if same_file(scene.local, output):
        raise OptionError(
            f"{opt('output')} {output} is the scene {scene.local.name} itself; writing the result there would destroy "
            f"the scene: choose another {opt('output', 'OUT.gpkg')} path"
        )


_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def looks_like_result(path: Path) -> bool:
    """A ``.gpkg`` file given to classify/query is read as a result (and checked as one), unless it is a TIFF."""
    if path.suffix.lower() != ".gpkg" or not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head not in _TIFF_MAGIC


def check_questions(questions: Sequence[Question] | None, grid: ChipGrid) -> None:
    """Example tiles and locations of the queries must fall on the grid (checked before encoding)."""
    from rsgeo.answers import example_tiles

    for question in questions or ():
        if not isinstance(question, QueryQuestion):
            continue
        for spec in question.specs:
            for t in (*spec.positive_tiles, *spec.negative_tiles):
                if not 0 <= int(t) < len(grid):
                    raise OptionError(
                        f"tile {t} is outside the chip grid (tile ids 0 to {len(grid) - 1}, {grid.n_rows} rows of "
                        f"{grid.n_cols}); give a tile id of the tiles layer"
                    )
            example_tiles(grid, (), (*spec.positive_locations, *spec.negative_locations))
