"""The report's four plots per workload, drawn from the computed rows (bench/analysis/report.py), PNG.

Figures are built with matplotlib's object API on the Agg canvas (no pyplot state, no display
needed), so a report can be made on a headless CI runner or inside a test.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from bench.analysis.report_model import Report, WorkloadReport

MARKERS = {"fp32": "o", "tf32": "v", "bf16": "s", "fp16": "^", "fp8": "D"}
DPI = 110


def _label(row: dict[str, Any]) -> str:
    """A configuration's name on a plot, its knob axes included so that rows differing only in a knob differ."""
    axes = "".join(f" {name}={value}" for name, value in sorted((row.get("axes") or {}).items()))
    return f"{row['model']} {row['topology']} {row['precision']}{axes}"


def _new_figure(height: float = 4.0) -> tuple[Figure, Any]:
    fig = Figure(figsize=(8, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Figure, path: Path) -> None:
    import io

    from bench.results import write_atomic

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    write_atomic(path, buffer.getvalue())  # a failed write leaves the previous plot, not half a PNG


def _colors(rows: list[dict[str, Any]]) -> dict[str, Any]:
    from matplotlib import colormaps

    topologies = list(dict.fromkeys(r["topology"] for r in rows))
    cmap = colormaps["tab10"]
    return {t: cmap(i % 10) for i, t in enumerate(topologies)}


def quality_vs_throughput(w: WorkloadReport, path: Path) -> bool:
    """Each seed a point: test quality (target metric) against training samples/s; baselines as lines."""
    if not w.target:
        return False
    key = f"test_{w.target['metric']}"
    rows = [r for r in w.rows if r["trained"] and key in r["per_seed"]]
    if not rows:
        return False
    fig, ax = _new_figure()
    colors = _colors(rows)
    for r in rows:
        xs, ys = r["per_seed"]["samples_per_s"], r["per_seed"][key]
        points = [(x, y) for x, y in zip(xs, ys, strict=True) if x is not None and y is not None]
        if points:
            ax.scatter(*zip(*points, strict=True), marker=MARKERS.get(r["precision"], "x"), color=colors[r["topology"]], s=50, label=_label(r))
    for i, b in enumerate(w.baselines):
        value = (b["quality"].get(key) or {}).get("median")
        if value is not None:
            ax.axhline(value, linestyle="--", linewidth=1, color=f"C{(i + 3) % 10}", label=f"{b['model']} (baseline, median)")
    ax.set_xlabel("training throughput, samples/s (steady state, all processes)")
    ax.set_ylabel(f"test {w.target['metric']}")
    ax.set_title(f"{w.name}: quality vs throughput (one point per seed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    _save(fig, path)
    return True


def time_to_target(w: WorkloadReport, path: Path) -> bool:
    """Median time-to-target per configuration, whiskers at the fastest and slowest seed."""
    rows = [r for r in w.rows if r["trained"]]
    if not rows:
        return False
    fig, ax = _new_figure(1.2 + 0.45 * len(rows))
    labels = [f"{_label(r)} ({r['converged']}/{r['cells']})" for r in rows]
    colors = {p: f"C{i}" for i, p in enumerate(MARKERS)}
    for i, r in enumerate(rows):
        ttt = r["time_to_target_s"]
        if ttt["median"] is None:
            ax.text(0, i, "  target not reached", va="center", fontsize=8, color="firebrick")
            continue
        err = [[ttt["median"] - ttt["min"]], [ttt["max"] - ttt["median"]]]
        ax.barh(i, ttt["median"], xerr=err, color=colors[r["precision"]], capsize=3)
        ax.text(ttt["max"], i, f"  {ttt['median']:.1f} s", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # first row on top
    if any(r["converged"] for r in rows):
        ax.margins(x=0.12)
    else:
        ax.set_xlim(0, 1)
        ax.set_xticks([])
    ax.set_xlabel("time-to-target, s (median; whiskers min-max over converged seeds)")
    ax.set_title(f"{w.name}: time to {w.target['metric'] if w.target else 'target'} target per configuration")
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path)
    return True


def convergence(w: WorkloadReport, path: Path) -> bool:
    """The validation target metric against training-clock seconds, one line per cell."""
    rows = [r for r in w.rows if r.get("curves")]
    if not rows or not w.target:
        return False
    lines = sum(len(r["curves"]) for r in rows)
    fig, ax = _new_figure(4.5 + 0.12 * max(0, lines - 6))
    colors = _colors(rows)
    styles = {"fp32": "-", "tf32": (0, (3, 1, 1, 1)), "bf16": "--", "fp16": ":", "fp8": "-."}
    for r in rows:
        for curve in r["curves"]:
            ax.plot(curve["seconds"], curve["value"], styles.get(r["precision"], "-"), marker=".",
                    color=colors[r["topology"]], label=f"{_label(r)} s{curve['seed']}")
    for value in sorted({r["target"]["value"] for r in rows if r.get("target")} or {w.target["value"]}):
        ax.axhline(value, color="black", linewidth=1, linestyle=":", label=f"target {value}")
    ax.set_xlabel("training clock, s (steps + evaluation, init excluded)")
    ax.set_ylabel(f"{w.target.get('split', 'val')} {w.target['metric']}")
    ax.set_title(f"{w.name}: convergence (one line per cell)")
    ax.grid(alpha=0.3)
    if lines > 6:  # many cells: the legend goes below the axes instead of over the curves
        fig.legend(fontsize=7, loc="outside lower center", ncols=3)
    else:
        ax.legend(fontsize=7, loc="best")
    _save(fig, path)
    return True


def peak_memory(w: WorkloadReport, path: Path) -> bool:
    """Peak memory per rank per configuration: host RSS, and CUDA allocated/reserved where measured."""
    series = [("peak_rss_mb_per_rank_max", "host RSS per rank"), ("cuda_max_allocated_mb", "CUDA max allocated"),
              ("cuda_max_reserved_mb", "CUDA max reserved")]
    rows = [r for r in w.rows if r["trained"]]
    series = [(k, name) for k, name in series if any(r[k]["median"] is not None for r in rows)]
    if not rows or not series:
        return False
    fig, ax = _new_figure(1.2 + 0.45 * len(rows) * len(series))
    height = 0.8 / len(series)
    for j, (key, name) in enumerate(series):
        ys = [i + j * height for i in range(len(rows))]
        values = [r[key]["median"] or 0.0 for r in rows]
        err = [[(r[key]["median"] or 0) - (r[key]["min"] or 0) for r in rows], [(r[key]["max"] or 0) - (r[key]["median"] or 0) for r in rows]]
        ax.barh(ys, values, height=height, xerr=err, capsize=2, label=name, color=f"C{j}")
        for y, r in zip(ys, rows, strict=True):
            if r[key]["median"] is not None:
                ax.text(r[key]["max"], y, f"  {r[key]['median']:.0f}", va="center", fontsize=7)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))], [_label(r) for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("MB (median over seeds; per rank, largest rank)")
    ax.set_title(f"{w.name}: peak memory per configuration")
    ax.grid(axis="x", alpha=0.3)
    ax.margins(x=0.12)
    fig.legend(fontsize=7, loc="outside lower center", ncols=len(series))
    _save(fig, path)
    return True


PLOTS = (
    ("quality-vs-throughput", "quality vs throughput", quality_vs_throughput),
    ("time-to-target", "time-to-target per configuration", time_to_target),
    ("convergence", "convergence curves", convergence),
    ("peak-memory", "peak memory per configuration", peak_memory),
)


def write_plots(report: Report, out_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """Draw every plot that has data; {workload: [(title, file name relative to out_dir)]}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[tuple[str, str]]] = {}
    for w in report.workloads:
        for slug, title, draw in PLOTS:
            filename = f"{w.name}-{slug}.png"
            if draw(w, out_dir / filename):
                written.setdefault(w.name, []).append((f"{w.name}: {title}", filename))
    return written
