"""rsgeo: remote-sensing CLIP models as GIS layers.

Cut a GeoTIFF scene into georeferenced chips, embed them with a
vision-language model, and write zero-shot land-cover scores and free-text
query similarities as styled GeoPackage layers. ``import rsgeo`` is light:
torch and the models load only when a run needs them.
"""

from __future__ import annotations

from typing import Any

from rsgeo.version import __version__

__all__ = ["__version__", "classify", "embed", "open_result", "query", "ReadOptions", "RunOptions", "QuerySpec", "assess",
           "sample", "refine", "query_archive", "export_results"]


def __getattr__(name: str) -> Any:
    # Lazy: keep `import rsgeo` and `rsgeo --help` fast (no torch, no GDAL).
    if name in ("classify", "embed", "query"):
        from rsgeo import api

        return getattr(api, name)
    if name == "open_result":
        from rsgeo.results import open_result

        return open_result
    if name == "ReadOptions":
        from rsgeo.scene import ReadOptions

        return ReadOptions
    if name == "RunOptions":
        from rsgeo.pipeline import RunOptions

        return RunOptions
    if name == "QuerySpec":
        from rsgeo.answers import QuerySpec

        return QuerySpec
    if name in ("assess", "sample"):  # accuracy assessment (docs/assessment.md)
        from rsgeo import assessment

        return getattr(assessment, name)

    if name == "query_archive":  # one query over many results (docs/archive.md)
        from rsgeo.archive import query_archive

        return query_archive
    if name == "export_results":
        from rsgeo.export import export_results

        return export_results
    if name == "refine":
        from rsgeo.learning import refine

        return refine
    raise AttributeError(f"module 'rsgeo' has no attribute {name!r}")
