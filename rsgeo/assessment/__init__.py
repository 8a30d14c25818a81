"""Accuracy assessment of land-cover layers against reference data (``docs/assessment.md``).

``sample`` draws points to label; ``assess`` compares a map with a raster,
polygon or point reference and writes report.json, report.md and a
confusion-matrix figure, with the stratified estimators of Olofsson et al.
(2014). Modules: ``mapcells`` (the map as cells), ``sampling``,
``samples_file``, ``reference``, ``classmap``, ``accuracy`` (units and error
matrix), ``estimators`` (pure), ``report``, ``compare``, ``api``.
"""

from __future__ import annotations

from rsgeo.assessment.api import AssessmentRun, assess, sample

__all__ = ["AssessmentRun", "assess", "sample"]
