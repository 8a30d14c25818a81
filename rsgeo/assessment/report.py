"""The report folder of ``rsgeo assess``: report.json, report.md and the confusion-matrix figure.

The folder is built beside its target under a temporary name and moved into
place in one rename, so an interrupted or failed run leaves no half report.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rsgeo.assessment.accuracy import Assessment
from rsgeo.assessment.estimators import Z95
from rsgeo.definitions import schema
from rsgeo.errors import OutputError, OutputExistsError, opt


def _num(v: float) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else round(float(v), 6)


def report_dict(a: Assessment, compared: Sequence[Assessment] = ()) -> dict[str, Any]:
    """Everything report.json holds (areas in m² and ha; CIs are 95 % half widths, ±)."""
    e = a.estimates
    per_class = []
    for i, name in enumerate(e.classes):
        per_class.append({
            "class": name,
            "map_classes": sorted(m for m, r in a.matching.assessed.items() if r == name),
            "sample_count_map": int(e.counts[i].sum()),
            "sample_count_reference": int(e.counts[:, i].sum()),
            "stratum_weight": _num(e.weights[i]),
            "map_area_m2": _num(e.map_area[i]),
            "users_accuracy": _num(e.users_accuracy[i]), "users_accuracy_ci95": _num(Z95 * e.users_accuracy_se[i]),
            "producers_accuracy": _num(e.producers_accuracy[i]),
            "producers_accuracy_ci95": _num(Z95 * e.producers_accuracy_se[i]),
            "f1": _num(e.f1[i]),
            "area_m2": _num(e.area[i]), "area_m2_ci95": _num(Z95 * e.area_se[i]),
            "area_ha": _num(e.area[i] / 1e4), "area_ha_ci95": _num(Z95 * e.area_se[i] / 1e4),
        })
    return {
        "report_version": schema.REPORT_VERSION,
        "map": a.map_source,
        "reference": a.reference_source,
        "reference_kind": a.reference_kind,
        "unit": a.unit,
        "crs": a.crs,
        "purity_threshold": a.purity_threshold,
        "classes": list(e.classes),
        "class_matching": dict(a.matching.assessed),
        "unmatched_map_classes": list(a.matching.unmatched_map),
        "reference_classes_no_map_class_stands_for": [c for c in e.classes if c not in a.matching.assessed.values()],
        "confusion_matrix": {"rows": "map class", "columns": "reference class", "counts": e.counts.astype(int).tolist()},
        "proportions": np.round(e.proportions, 8).tolist(),
        "sample_count": int(e.counts.sum()),
        "overall_accuracy": _num(e.overall_accuracy), "overall_accuracy_ci95": _num(Z95 * e.overall_accuracy_se),
        "kappa": _num(e.kappa),
        "per_class": per_class,
        "excluded": a.excluded,
        "estimator": "stratified (Olofsson et al. 2014, eq. 1-11); strata = map classes after the class map",
        "worst_confused": a.worst_confused(),
        "compared": [summary(c) for c in (a, *compared)] if compared else [],
    }


def summary(a: Assessment) -> dict[str, Any]:
    """One row of the comparison table."""
    e = a.estimates
    return {
        "map": a.map_source, "units": int(e.counts.sum()),
        "overall_accuracy": _num(e.overall_accuracy), "overall_accuracy_ci95": _num(Z95 * e.overall_accuracy_se),
        "kappa": _num(e.kappa), "mean_f1": _num(float(np.nanmean(e.f1))) if np.isfinite(e.f1).any() else None,
    }


def comparison_table(rows: Sequence[dict[str, Any]]) -> str:
    """The comparison as an aligned text table (what ``rsgeo assess --compare`` prints)."""
    head = ("map", "units", "OA", "±95%", "kappa", "mean F1")
    body = [
        (str(r["map"]), str(r["units"]), _fmt(r["overall_accuracy"]), _fmt(r["overall_accuracy_ci95"]),
         _fmt(r["kappa"]), _fmt(r["mean_f1"]))
        for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in (head, *body)]
    return "\n".join(lines)


def _fmt(v: Any, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def markdown(d: dict[str, Any]) -> str:
    """report.md: the report for people."""
    classes = d["classes"]
    out = [f"# Accuracy of {d['map']}", "",
           f"Reference: `{d['reference']}` ({d['reference_kind']}); unit: {d['unit']}; "
           f"{d['sample_count']} units compared. Estimator: {d['estimator']}.", ""]
    out += [f"**Overall accuracy** {_fmt(d['overall_accuracy'])} ± {_fmt(d['overall_accuracy_ci95'])} (95 % CI); "
            f"kappa {_fmt(d['kappa'])}.", ""]
    if d["unmatched_map_classes"]:
        out += [f"Map classes matching no reference class (left out): {', '.join(d['unmatched_map_classes'])}.", ""]
    orphans = d["reference_classes_no_map_class_stands_for"]
    if orphans:
        out += [f"Reference classes no map class stands for (all omission): {', '.join(orphans)}.", ""]
    out += ["## Error matrix (sample counts; rows: map, columns: reference)", "",
            "| map \\ reference | " + " | ".join(classes) + " | total |",
            "|---|" + "---|" * (len(classes) + 1)]
    for name, row in zip(classes, d["confusion_matrix"]["counts"]):
        out.append(f"| {name} | " + " | ".join(str(v) for v in row) + f" | {sum(row)} |")
    out += ["", "## Per class", "",
            "| class | map area (ha) | W | n | user's acc. | producer's acc. | F1 | adjusted area (ha) |",
            "|---|---|---|---|---|---|---|---|"]
    for c in d["per_class"]:
        out.append(
            f"| {c['class']} | {_fmt(_ha(c['map_area_m2']), 2)} | {_fmt(c['stratum_weight'])} | {c['sample_count_map']} | "
            f"{_fmt(c['users_accuracy'])} ± {_fmt(c['users_accuracy_ci95'])} | "
            f"{_fmt(c['producers_accuracy'])} ± {_fmt(c['producers_accuracy_ci95'])} | {_fmt(c['f1'])} | "
            f"{_fmt(c['area_ha'], 2)} ± {_fmt(c['area_ha_ci95'], 2)} |"
        )
    out += ["", f"![confusion matrix]({schema.REPORT_FIGURE})", ""]
    if d["worst_confused"]:
        key = "tile_id" if "tile_id" in d["worst_confused"][0] else "raster_cell"
        where = "select `tile_id` in the layer" if key == "tile_id" else "zoom to the coordinates (a raster cell: row x width + column)"
        out += ["## Worst-confused units", "", f"Coordinates in {d['crs']}. In QGIS: {where}.", "",
                f"| {key} | x | y | map | reference | purity |", "|---|---|---|---|---|---|"]
        for w in d["worst_confused"]:
            out.append(f"| {w[key]} | {w['x']:.1f} | {w['y']:.1f} | {w['map_class']} | {w['reference_class']} | {w['purity']:.2f} |")
        out.append("")
    if d["compared"]:
        out += ["## Compared", "", "```", comparison_table(d["compared"]), "```", ""]
    excluded = {k: v for k, v in d["excluded"].items() if v}
    if excluded:
        out += ["Left out: " + "; ".join(f"{k.replace('_', ' ')}: {v:g}" for k, v in excluded.items()) + ".", ""]
    return "\n".join(out)


def _ha(m2: float | None) -> float | None:
    return None if m2 is None else m2 / 1e4


def figure(a: Assessment, path: Path) -> None:
    """The error matrix as a PNG (counts, each row shaded by its share)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    e = a.estimates
    counts = e.counts.astype(float)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    k = len(e.classes)
    side = 1.6 + 0.55 * k
    fig = Figure(figsize=(side + 1.2, side))
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(k), e.classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), e.classes, fontsize=8)
    ax.set_xlabel("reference")
    ax.set_ylabel("map")
    ax.set_title(f"{a.map_source}\nOA {e.overall_accuracy:.3f}, kappa {e.kappa:.3f}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the map class's units")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def check_report_dir(path: Path, *, overwrite: bool) -> None:
    """Refuse, before any work, a report folder that cannot or must not be written."""
    if not path.parent.is_dir():
        raise OutputError(f"the folder {path.parent} does not exist; create it or choose another {opt('output')} path")
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path} is a file; {opt('output')} names the report folder")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise OutputExistsError(f"{path} already holds files; pass {opt('overwrite')} to replace them, or choose another {opt('output')} folder")


def write_report(path: Path, a: Assessment, compared: Sequence[Assessment] = (), *, overwrite: bool = False) -> dict[str, Any]:
    """Write the report folder atomically; returns report.json's content."""
    check_report_dir(path, overwrite=overwrite)
    d = report_dict(a, compared)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        (tmp / schema.REPORT_JSON).write_text(json.dumps(d, indent=2) + "\n", encoding="utf-8")
        (tmp / schema.REPORT_MARKDOWN).write_text(markdown(d), encoding="utf-8")
        figure(a, tmp / schema.REPORT_FIGURE)
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"cannot write the report {path} ({exc.strerror or exc}); check the folder's permissions") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return d
