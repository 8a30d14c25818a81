"""The issue-6 targets and the printed table of a throughput run."""

from __future__ import annotations

from typing import Any


def _rate(fig: dict[str, Any] | None, key: str = "chips_per_s") -> float:
    return float(fig[key]) if fig else float("nan")


def targets(f: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 6: the measured value, the threshold, met or not."""
    model = _rate(f["model_only"])
    read = _rate(f["rsgeo_read"], "chips_per_cpu_s")
    rows = [
        ("end-to-end / model-only (CPU)", _rate(f["rsgeo_e2e"]) / model, ">=", 0.95),
        ("reading+preprocessing, chips/s per core", read, ">=", 1500.0),
        ("reading+preprocessing vs TorchGeo (per core)", read / _rate(f["torchgeo_read"], "chips_per_cpu_s"), ">=", 3.0),
        ("reading+preprocessing vs naive loop (per core)", read / _rate(f["naive_read"], "chips_per_cpu_s"), ">=", 1.5),
        ("end-to-end vs naive loop", _rate(f["rsgeo_e2e"]) / _rate(f["naive_e2e"]), ">=", 1.0),
        ("end-to-end vs TorchGeo", _rate(f["rsgeo_e2e"]) / _rate(f["torchgeo_e2e"]), ">=", 1.0),
        ("end-to-end vs one chip at a time (README)", _rate(f["rsgeo_e2e"]) / _rate(f["readme_e2e"]), ">=", 1.5),
    ]
    for label, r in (f.get("rss") or {}).items():
        rows.append((f"peak RSS {r['large']['side']:,}^2 / {r['small']['side']:,}^2 ({label})", r["ratio"], "<=", 1.10))
    out = []
    for name, value, op, threshold in rows:
        met = value >= threshold if op == ">=" else value <= threshold
        out.append({"target": name, "value": value, "op": op, "threshold": threshold, "met": bool(met)})
    return out


def table(result: dict[str, Any]) -> str:
    f = result["figures"]
    m = result["machine"]
    model = _rate(f["model_only"])
    lines = [
        f"rsgeo throughput — {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, torch threads {m['torch_threads']}, "
        f"GPU: {m['gpu'] or 'none'}; load {m['load_before'][0]:.1f} -> {m['load_after'][0]:.1f}"
        + ("  [QUICK: smoke run, figures meaningless]" if result["quick"] else ""),
        f"model: open_clip {result['plan']['arch']} (random weights), batch {result['plan']['batch_size']}, fp32",
        "",
        f"{'figure':<52} {'chips':>6} {'chips/s':>9} {'chips/CPU-s':>12} {'ratio':>8}",
        "-" * 91,
    ]

    def row(label: str, fig: dict[str, Any] | None, ratio: float | None = None, ratio_label: str = "") -> None:
        if fig is None:
            return
        r = "" if ratio is None else f"{ratio:.2f}{ratio_label}"
        lines.append(
            f"{label:<52} {fig['chips']:>6} {fig['chips_per_s']:>9.1f} {fig['chips_per_cpu_s']:>12.1f} {r:>8}"
        )

    row("(1) model only, ready tensors", f["model_only"], 1.0)
    row("(2) rsgeo end-to-end (scene -> GeoPackage)", f["rsgeo_e2e"], _rate(f["rsgeo_e2e"]) / model)
    row("(4) naive loop end-to-end", f["naive_e2e"], _rate(f["naive_e2e"]) / model)
    row("(4) TorchGeo 0.8 end-to-end", f["torchgeo_e2e"], _rate(f["torchgeo_e2e"]) / model)
    row("(4) one chip at a time (README), sub-sampled", f["readme_e2e"], _rate(f["readme_e2e"]) / model)
    lines.append("    ratio: to (1)")
    read = _rate(f["rsgeo_read"], "chips_per_cpu_s")
    row("(3) GDAL decode alone (ceiling)", f["gdal_decode"], _rate(f["gdal_decode"], "chips_per_cpu_s") / read)
    row("(3) rsgeo reading+preprocessing (1 thread)", f["rsgeo_read"], 1.0)
    row("(3) same, channel-first batches (open_clip)", f["rsgeo_read_channels_first"], _rate(f["rsgeo_read_channels_first"], "chips_per_cpu_s") / read)
    if f.get("rsgeo_read_all_workers"):
        row(f"(3) same, {f['rsgeo_read_all_workers']['workers']} reader threads", f["rsgeo_read_all_workers"])
    row("(4) naive reading+preprocessing", f["naive_read"], _rate(f["naive_read"], "chips_per_cpu_s") / read)
    row("(4) TorchGeo reading+preprocessing, in process", f["torchgeo_read"], _rate(f["torchgeo_read"], "chips_per_cpu_s") / read)
    row(f"(4) TorchGeo, {f['torchgeo_read_workers']['workers']} DataLoader worker(s)", f["torchgeo_read_workers"])
    lines.append("    ratio: chips/CPU-s relative to rsgeo reading+preprocessing")

    if f.get("batch_sweep"):
        lines += ["", "model-only chips/s by batch size: " + ", ".join(
            f"{b}: {v['chips_per_s']:.1f}" for b, v in f["batch_sweep"].items())]
    lines += ["", f"{'precision':<10} {'model chips/s':>14} {'speed-up':>9} {'e2e chips/s':>12} {'speed-up':>9} {'max |d score|':>14}"]
    for name, p in f["precision"].items():
        if not p.get("runs"):
            lines.append(f"{name:<10} does not run here: {p.get('error')}")
            continue
        lines.append(
            f"{name:<10} {p['model_only']['chips_per_s']:>14.1f} {p['model_speedup']:>9.2f} "
            f"{p['e2e_classify']['chips_per_s']:>12.1f} {p['e2e_speedup']:>9.2f} {p['max_score_deviation']:>14.2e}"
        )
    if f.get("rss"):
        lines.append("")
        for label, r in f["rss"].items():
            mid = f"{r['middle']['side']}^2 {r['middle']['maxrss_mb']:.0f} MB, " if r.get("middle") else ""
            lines.append(
                f"peak RSS ({label}): {r['small']['side']}^2 {r['small']['maxrss_mb']:.0f} MB, {mid}"
                f"{r['large']['side']}^2 {r['large']['maxrss_mb']:.0f} MB, ratio {r['ratio']:.3f} (+{r['growth_mb']:.0f} MB)"
            )
    lines += ["", f"{'target (issue 6)':<52} {'measured':>10}  {'threshold':>10}  met"]
    for t in result["targets"]:
        lines.append(f"{t['target']:<52} {t['value']:>10.2f}  {t['op']} {t['threshold']:<7.2f}  {'yes' if t['met'] else 'NO'}")
    lines += ["", "notes:"] + [f"  - {n}" for n in result["notes"]]
    if "total_s" in result:
        spent = ", ".join(f"{k} {v:.0f} s" for k, v in result.get("phase_s", {}).items())
        lines.append(f"  - whole run: {result['total_s']:.0f} s ({spent})")
    return "\n".join(lines)
