"""The report's four plots per workload, drawn from the computed rows (bench/analysis/report.py), PNG.

Figures are built with matplotlib's object API on the Agg canvas (no pyplot state, no display
needed), so a report can be made on a headless CI runner or inside a test.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib import colormaps
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


def _new_figure(height: float = 4.0, width: float = 8.0) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Figure, path: Path) -> None:
    import io

    from bench.results import write_atomic

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    write_atomic(path, buffer.getvalue())  # a failed write leaves the previous plot, not half a PNG


def _colors(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A colour per topology, handed out in the report's scale order (`report.scale_key`: one process,
    then more, then more nodes), so that a legend lists topologies from the smallest up."""
    from bench.analysis.report import scale_key

    first: dict[str, tuple] = {}
    for r in rows:
        first[r["topology"]] = min(first.get(r["topology"], scale_key(r)), scale_key(r))
    cmap = colormaps["tab10"]
    return {t: cmap(i % 10) for i, t in enumerate(sorted(first, key=first.__getitem__))}


def _scale_ordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in the report's order (the model, then scale, then precision): the order they already
    come in from bench/analysis/report.py, restated here so a plot never depends on a caller's order."""
    from bench.analysis.report import row_order_key

    return sorted(rows, key=row_order_key)


def _spread(summary: dict[str, Any]) -> bool:
    """Whether a median/min/max summary has seeds that differ (a whisker worth drawing)."""
    return summary.get("min") is not None and summary.get("max") is not None and summary["max"] > summary["min"]


def _whisker_note(summaries: list[dict[str, Any]], what: str) -> str:
    """The axis label's word on whiskers: drawn where seeds differ, else why there are none."""
    if any(_spread(s) for s in summaries):
        return f"whiskers min-max over {what} where they differ"
    if all((s.get("n") or 0) <= 1 for s in summaries):
        return "one seed: no whiskers"
    return "seeds agree: no whiskers"


DODGE_STEP = 0.025
"""Sideways shift, as a fraction of the x range, between configurations whose points overlap."""
OVERLAP = 0.025
"""Points closer than this fraction of both axes' ranges overlap (markers are ~2% of the axes wide)."""


def _dodge(points: list[list[tuple[float, float]]], xspan: float, yspan: float) -> tuple[list[list[float]], bool]:
    """Sideways offsets that keep overlapping points of different configurations apart.

    `points[i]` are configuration i's (x, y). Points closer than OVERLAP of both ranges are grouped
    (transitively); in a group holding several configurations, configuration j of m (ordered by their
    mean x in the group, then row order, so that no two swap sides) moves by (j - (m-1)/2) * DODGE_STEP
    of the x range. Deterministic; y never moves; a point with no neighbour of another configuration
    stays exactly where it is. Returns the x offsets per point and whether anything moved."""
    flat = [(i, k, x, y) for i, pts in enumerate(points) for k, (x, y) in enumerate(pts)]
    parent = list(range(len(flat)))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a in range(len(flat)):
        for b in range(a + 1, len(flat)):
            if abs(flat[a][2] - flat[b][2]) < OVERLAP * xspan and abs(flat[a][3] - flat[b][3]) < OVERLAP * yspan:
                parent[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for a in range(len(flat)):
        groups.setdefault(root(a), []).append(a)
    offsets = [[0.0] * len(pts) for pts in points]
    moved = False
    for members in groups.values():
        configs = sorted({flat[a][0] for a in members})
        if len(configs) < 2:
            continue
        mean_x = {i: sum(flat[a][2] for a in members if flat[a][0] == i) / sum(flat[a][0] == i for a in members)
                  for i in configs}
        configs.sort(key=lambda i: (mean_x[i], i))
        for a in members:
            i, k = flat[a][0], flat[a][1]
            offsets[i][k] = (configs.index(i) - (len(configs) - 1) / 2) * DODGE_STEP * xspan
        moved = True
    return offsets, moved


BASELINE_STYLES = (("dimgray", "--"), ("saddlebrown", "-."), ("darkslategray", (0, (6, 2))),
                   ("indigo", (0, (4, 1, 1, 1, 1, 1))), ("maroon", (0, (2, 2))))
"""Baseline lines: dark colours apart from the topologies' tab10, and their own dashes."""


def _span(values: list[float]) -> float:
    """A range for axis arithmetic that is never zero: the values' own, else 5% of their size."""
    lo, hi = min(values), max(values)
    return max(hi - lo, 0.05 * max(abs(lo), abs(hi)), 1e-9)


def quality_vs_throughput(w: WorkloadReport) -> Figure | None:
    """Each seed a point: test quality (target metric) against training samples/s; baselines and the
    validation target as horizontal lines.

    The y axis fits the configurations' points: a line (baseline or target) within one points' range
    of them is drawn and the axis grows to show it; one farther away is not drawn (it would squash the
    points into a band) but named in the legend with its value and "above/below the axis". Points of
    different configurations that overlap are shifted apart sideways (`_dodge`), which the title says.
    """
    if not w.target:
        return None
    key = f"test_{w.target['metric']}"
    rows = _scale_ordered([r for r in w.rows if r["trained"] and key in r["per_seed"]])
    series = []
    for r in rows:
        xs, ys = r["per_seed"]["samples_per_s"], r["per_seed"][key]
        pts = [(x, y) for x, y in zip(xs, ys, strict=True) if x is not None and y is not None]
        if pts:
            series.append((r, pts))
    if not series:
        return None
    fig, ax = _new_figure(height=5.0)
    colors = _colors([r for r, _ in series])
    all_x = [x for _, pts in series for x, _ in pts]
    all_y = [y for _, pts in series for _, y in pts]
    lo, hi, yspan = min(all_y), max(all_y), _span(all_y)
    window = (lo - yspan, hi + yspan)  # lines farther than this from the points are only named

    split = w.target.get("split", "val")
    targets = sorted({r["target"]["value"] for r, _ in series if r.get("target")} or {w.target["value"]})
    lines = []  # (label, value, line style)
    for i, b in enumerate(w.baselines):
        value = (b["quality"].get(key) or {}).get("median")
        if value is not None:
            color, dashes = BASELINE_STYLES[i % len(BASELINE_STYLES)]
            lines.append((f"{b['model']} {value:.3g} (baseline, median)", value,
                          {"linestyle": dashes, "linewidth": 1.2, "color": color}))
    for value in targets:
        lines.append((f"{split} target {value:g}", value, {"linestyle": ":", "linewidth": 1.2, "color": "black"}))
    inside = [value for _, value, _ in lines if window[0] <= value <= window[1]]
    shown_lo, shown_hi = min([lo, *inside]), max([hi, *inside])
    pad = 0.08 * max(shown_hi - shown_lo, yspan)
    ylim = (shown_lo - pad, shown_hi + pad)

    offsets, dodged = _dodge([pts for _, pts in series], _span(all_x), ylim[1] - ylim[0])
    handles = []
    for (r, pts), offs in zip(series, offsets, strict=True):
        handles.append(ax.scatter([x + o for (x, _), o in zip(pts, offs, strict=True)], [y for _, y in pts],
                                  marker=MARKERS.get(r["precision"], "x"), color=colors[r["topology"]], s=50,
                                  alpha=0.85, edgecolors="black", linewidths=0.5, label=_label(r)))
    for label, value, style in lines:
        if window[0] <= value <= window[1]:
            handles.append(ax.axhline(value, label=label, **style))
        else:  # named only: an empty line carries the legend entry
            where = "above" if value > window[1] else "below"
            handles.extend(ax.plot([], [], label=f"{label}: {where} the axis, not drawn", **style))
    ax.set_ylim(*ylim)
    ax.set_xlabel("training throughput, samples/s (steady state, all processes)")
    ax.set_ylabel(f"test {w.target['metric']}")
    title = f"{w.name}: quality vs throughput (one point per seed)"
    if dodged:
        title += (f"\npoints of different configurations that overlapped are dodged sideways, {DODGE_STEP:.1%} of the x "
                  "range apart\n(their throughput approximate, their quality exact)")
    ax.set_title(title, fontsize=9 if dodged else None)
    ax.grid(alpha=0.3)
    fig.legend(handles=handles, fontsize=7, loc="outside lower center", ncols=min(3, len(handles)))
    return fig


def time_to_target(w: WorkloadReport) -> Figure | None:
    """Median time-to-target per configuration, whiskers at the fastest and slowest seed where they differ."""
    rows = _scale_ordered([r for r in w.rows if r["trained"]])
    if not rows:
        return None
    fig, ax = _new_figure(1.2 + 0.45 * len(rows))
    labels = [f"{_label(r)} ({r['converged']}/{r['cells']})" for r in rows]
    colors = {p: f"C{i}" for i, p in enumerate(MARKERS)}
    for i, r in enumerate(rows):
        ttt = r["time_to_target_s"]
        if ttt["median"] is None:
            ax.text(0, i, "  target not reached", va="center", fontsize=8, color="firebrick")
            continue
        ax.barh(i, ttt["median"], color=colors.get(r["precision"], "C9"))
        if _spread(ttt):
            ax.errorbar(ttt["median"], i, xerr=[[ttt["median"] - ttt["min"]], [ttt["max"] - ttt["median"]]],
                        fmt="none", ecolor="black", capsize=3, linewidth=1)
        ax.text(ttt["max"], i, f"  {ttt['median']:.1f} s", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # first row on top
    if any(r["converged"] for r in rows):
        ax.margins(x=0.12)
    else:
        ax.set_xlim(0, 1)
        ax.set_xticks([])
    note = _whisker_note([r["time_to_target_s"] for r in rows if r["converged"]], "converged seeds")
    ax.set_xlabel(f"time-to-target, s (median; {note})")
    ax.set_title(f"{w.name}: time to {w.target['metric'] if w.target else 'target'} target per configuration")
    ax.grid(axis="x", alpha=0.3)
    return fig


def convergence(w: WorkloadReport) -> Figure | None:
    """The validation target metric per evaluation, one line per cell, in two panels side by side:
    against training-clock seconds and against samples seen (all processes)."""
    rows = _scale_ordered([r for r in w.rows if r.get("curves")])
    if not rows or not w.target:
        return None
    lines = sum(len(r["curves"]) for r in rows)
    fig = Figure(figsize=(12, 4.5 + 0.12 * max(0, lines - 6)), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    by_seconds, by_samples = fig.subplots(1, 2, sharey=True)
    colors = _colors(rows)
    styles = {"fp32": "-", "tf32": (0, (3, 1, 1, 1)), "bf16": "--", "fp16": ":", "fp8": "-."}
    any_samples = False
    for r in rows:
        for curve in r["curves"]:
            style = {"linestyle": styles.get(r["precision"], "-"), "marker": ".", "color": colors[r["topology"]]}
            by_seconds.plot(curve["seconds"], curve["value"], label=f"{_label(r)} s{curve['seed']}", **style)
            samples = curve.get("samples") or [None] * len(curve["value"])
            pts = [(n, v) for n, v in zip(samples, curve["value"], strict=True) if n is not None]
            if pts:
                any_samples = True
                by_samples.plot(*zip(*pts, strict=True), **style)
    for value in sorted({r["target"]["value"] for r in rows if r.get("target")} or {w.target["value"]}):
        by_seconds.axhline(value, color="black", linewidth=1, linestyle=":", label=f"{w.target.get('split', 'val')} target {value:g}")
        by_samples.axhline(value, color="black", linewidth=1, linestyle=":")
    if not any_samples:
        by_samples.text(0.5, 0.5, "no samples recorded with the curves", transform=by_samples.transAxes,
                        ha="center", va="center", fontsize=9, color="gray")
    by_seconds.set_xlabel("training clock, seconds (steps + evaluation, init excluded)")
    by_samples.set_xlabel("samples seen (all processes)")
    by_seconds.set_ylabel(f"{w.target.get('split', 'val')} {w.target['metric']}")
    for ax in (by_seconds, by_samples):
        ax.grid(alpha=0.3)
    fig.suptitle(f"{w.name}: convergence (one line per cell), against time and against samples")
    fig.legend(handles=by_seconds.get_legend_handles_labels()[0], fontsize=7, loc="outside lower center",
               ncols=min(3, lines + 1))
    return fig


def peak_memory(w: WorkloadReport) -> Figure | None:
    """Peak memory per rank per configuration: host RSS, and CUDA allocated/reserved where measured.
    Whiskers (min-max over seeds) only on the bars whose seeds differ."""
    series = [("peak_rss_mb_per_rank_max", "host RSS per rank"), ("cuda_max_allocated_mb", "CUDA max allocated"),
              ("cuda_max_reserved_mb", "CUDA max reserved")]
    rows = _scale_ordered([r for r in w.rows if r["trained"]])
    series = [(k, name) for k, name in series if any(r[k]["median"] is not None for r in rows)]
    if not rows or not series:
        return None
    fig, ax = _new_figure(1.2 + 0.45 * len(rows) * len(series))
    height = 0.8 / len(series)
    for j, (key, name) in enumerate(series):
        ys = [i + j * height for i in range(len(rows))]
        ax.barh(ys, [r[key]["median"] or 0.0 for r in rows], height=height, label=name, color=f"C{j}")
        spread = [(y, r[key]) for y, r in zip(ys, rows, strict=True) if _spread(r[key])]
        if spread:
            ax.errorbar([s["median"] for _, s in spread], [y for y, _ in spread],
                        xerr=[[s["median"] - s["min"] for _, s in spread], [s["max"] - s["median"] for _, s in spread]],
                        fmt="none", ecolor="black", capsize=2, linewidth=1)
        for y, r in zip(ys, rows, strict=True):
            if r[key]["median"] is not None:
                ax.text(r[key]["max"], y, f"  {r[key]['median']:.0f}", va="center", fontsize=7)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))], [_label(r) for r in rows], fontsize=8)
    ax.invert_yaxis()
    note = _whisker_note([r[key] for key, _ in series for r in rows if r[key]["median"] is not None], "seeds")
    ax.set_xlabel(f"MB (median over seeds; per rank, largest rank) ({note})")
    ax.set_title(f"{w.name}: peak memory per configuration")
    ax.grid(axis="x", alpha=0.3)
    ax.margins(x=0.12)
    fig.legend(fontsize=7, loc="outside lower center", ncols=len(series))
    return fig


PLOTS = (
    ("quality-vs-throughput", "quality vs throughput", quality_vs_throughput),
    ("time-to-target", "time-to-target per configuration", time_to_target),
    ("convergence", "convergence curves", convergence),
    ("peak-memory", "peak memory per configuration", peak_memory),
)


def figures(w: WorkloadReport) -> dict[str, Figure]:
    """Every plot of one workload that has data, built but not saved: {slug: Figure}."""
    built = {slug: build(w) for slug, _, build in PLOTS}
    return {slug: fig for slug, fig in built.items() if fig is not None}


def write_plots(report: Report, out_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """Draw every plot that has data; {workload: [(title, file name relative to out_dir)]}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[tuple[str, str]]] = {}
    for w in report.workloads:
        for slug, title, build in PLOTS:
            fig = build(w)
            if fig is None:
                continue
            filename = f"{w.name}-{slug}.png"
            _save(fig, out_dir / filename)
            written.setdefault(w.name, []).append((f"{w.name}: {title}", filename))
    return written
