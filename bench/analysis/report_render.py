"""Formatting a computed report (bench/analysis/report.py) as Markdown, CSV or JSON. No figure is computed here."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

if TYPE_CHECKING:
    from bench.analysis.report_model import Report, WorkloadReport

DASH = "-"
# Columns kept in the Markdown table even when every row is empty there; the others are dropped
# when empty (a CPU run has no CUDA memory, a tabular workload no tokens/s). CSV and JSON keep all.
IDENTITY_COLUMNS = ("model", "topology", "procs", "precision", "converged", "time-to-target s", "samples/s")


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return DASH
    return f"{value:,.0f}" if digits == 0 else f"{value:.{digits}f}"


def seconds_digits(value: float) -> int:
    return 0 if value >= 100 else 1 if value >= 10 else 2


def fmt_seconds(value: float | None, digits: int | None = None) -> str:
    if value is None:
        return DASH
    return fmt(value, seconds_digits(value) if digits is None else digits)


def fmt_ratio(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f}x"


def fmt_interval(value: float | None, judged: dict[str, Any] | None, invert: bool = False) -> str:
    """A ratio with the mark of a decided claim, '1.73x*' (just the ratio when undecided).
    `invert` is kept for callers that show a speedup (reference time / this time)."""
    text = fmt_ratio(value)
    if value is None or not judged or not judged.get("conclusive"):
        return text
    return f"{text}*"


def fmt_axes(axes: dict[str, Any] | None) -> str:
    """The knob axes away from their defaults, 'compile=inductor, grad_accum=4' (empty for none)."""
    return ", ".join(f"{name}={value}" for name, value in sorted((axes or {}).items()))


def fmt_judged(judged: dict[str, Any] | None) -> str:
    """A comparison in a table cell: '0.80x faster (p 0.004)', '1.02x no difference measured (p 0.40,
    n = 5 vs 5)', '1.30x needs 7 seeds (n = 3 vs 3)', or a dash where one side has no numbers."""
    if not judged or (judged.get("ratio") is None and not judged.get("conclusive")):
        return DASH
    n = f"n = {judged['n_candidate']} vs {judged['n_reference']}"
    p = f"p {judged['p_value']:.2g}" if judged.get("p_value") is not None else ""
    if judged.get("ratio") is None:  # decided, with every seed of a side censored (none reached the target)
        return f"{judged['verdict']} ({p}, {n})"
    if judged["conclusive"]:
        return f"{judged['ratio']:.2f}x {judged['verdict']} ({p})"
    if judged["verdict"] == "needs more seeds":
        return f"{judged['ratio']:.2f}x, needs {judged.get('seeds_needed') or 'more'} seeds ({n})"
    return f"{judged['ratio']:.2f}x {judged['verdict']} ({p}, {n})"


def fmt_percent(value: float | None) -> str:
    if value is None:
        return DASH
    pct = value * 100
    return f"{pct:.0f}%" if pct >= 10 else f"{pct:.1f}%" if pct >= 1 else f"{pct:.2g}%"


def fmt_range(summary: dict[str, Any], formatter=fmt, **kwargs: Any) -> str:
    """'median [min-max]' over seeds; just the median when the seeds agree or only one has a number."""
    if not summary or summary.get("median") is None:
        return DASH
    text = formatter(summary["median"], **kwargs)
    if summary.get("n", 0) > 1 and summary["min"] != summary["max"]:
        text += f" [{formatter(summary['min'], **kwargs)}–{formatter(summary['max'], **kwargs)}]"
    return text


def fmt_seconds_range(summary: dict[str, Any]) -> str:
    """Seconds with the precision the median needs, the same for median, min and max."""
    if not summary or summary.get("median") is None:
        return DASH
    return fmt_range(summary, fmt_seconds, digits=seconds_digits(summary["median"]))


def fmt_flops(value: float | None) -> str:
    if value is None:
        return DASH
    for scale, unit in ((1e12, "TFLOP/s"), (1e9, "GFLOP/s"), (1e6, "MFLOP/s")):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} FLOP/s"


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------


def quality_keys(report: WorkloadReport, extra_metrics: tuple[str, ...] = ()) -> list[str]:
    """The quality columns: the target metric on val and test, then any metrics asked for on test."""
    present = {key for row in report.rows + report.baselines for key in row["quality"]}
    keys = []
    if report.target:
        keys += [f"val_{report.target['metric']}", f"test_{report.target['metric']}"]
    keys += [resolve_metric(m, present) or m for m in extra_metrics]
    return [k for k in dict.fromkeys(keys) if k in present]


def resolve_metric(name: str, present: set[str]) -> str | None:
    """A `--metrics` name as a quality key: `roc_auc` means the test split's, `uci_sentences_accuracy`
    (split_metric) names another split."""
    for key in (f"test_{name}", name):
        if key in present:
            return key
    return None


def _note(row: dict[str, Any]) -> str:
    others = {s: n for s, n in row["statuses"].items() if s != "converged"}
    busy = [_busy_mark(row, row["trained"], "seeds")] if row.get("busy_host") else []
    return ", ".join([f"{n} {s}" for s, n in others.items()] + busy)


def _busy_mark(row: dict[str, Any], of: int, unit: str) -> str:
    """The mark on a row some of whose cells ran on a busy host (footnote under the table)."""
    return f"busy host ({len(row['busy_host'])}/{of} {unit})"


def busy_host_note(rows: list[dict[str, Any]]) -> str | None:
    """The footnote under a results table naming the cells that ran on a busy host, or None."""
    busy = list({b["id"]: b for r in rows for b in r.get("busy_host") or []}.values())
    if not busy:
        return None

    def load(b: dict[str, Any]) -> str:
        when = [f"{b[k]:.2f} at {k[5:]}" for k in ("load_start", "load_end") if b.get(k) is not None]
        return f"`{b['id']}` {', '.join(when)} on {b['cores']} cores"

    shown = "; ".join(load(b) for b in busy[:5]) + (f"; and {len(busy) - 5} more" if len(busy) > 5 else "")
    return (f"**Busy host**: {len(busy)} cell{'s' if len(busy) != 1 else ''} (marked *busy host* in *note*) started or ended "
            f"with the host's 1-minute load average more than one above the cores they could use ({shown}). Other work queued for "
            "those cores, so their speed figures (time-to-target, samples/s, tokens/s, speedups, scaling, MFU, fit times) "
            "are contaminated; their quality and memory figures are not.")


def table_rows(report: WorkloadReport, extra_metrics: tuple[str, ...] = ()) -> tuple[list[str], list[list[str]]]:
    keys = quality_keys(report, extra_metrics)
    labels = {k: q["label"] for row in report.rows + report.baselines for k, q in row["quality"].items()}
    headers = ["model", "topology", "procs", "precision", "knobs", *(labels[k] for k in keys), "converged",
               "time-to-target s", "TTT olympic s", "samples to target", "samples/s", "tokens/s", "speedup (TTT)",
               "throughput x", "scaling eff.", "RSS/rank MB", "CUDA alloc MB", "CUDA reserved MB",
               "MFU (measured peak)", "MFU (datasheet peak)", "HFU (measured peak)", "note"]
    rows = []
    for r in report.rows:
        rows.append([
            r["model"], r["topology"], DASH if r["processes"] is None else str(r["processes"]), r["precision"],
            fmt_axes(r.get("axes")),
            *(fmt_range(r["quality"].get(k) or {}) for k in keys),
            f"{r['converged']}/{r['cells']}",
            fmt_seconds_range(r["time_to_target_s"]),
            fmt_seconds(r["time_to_target_s"]["olympic_mean"]),
            fmt_range(r["samples_to_target"], fmt, digits=0),
            fmt_range(r["samples_per_s"], fmt, digits=0),
            fmt_range(r["tokens_per_s"], fmt, digits=0),
            fmt_interval(r["speedup_time_to_target"], (r.get("vs_reference") or {}).get("time_to_target_s"), invert=True),
            fmt_interval(r["throughput_ratio"], (r.get("vs_reference") or {}).get("samples_per_s")),
            fmt_percent(r["scaling_efficiency"]),
            fmt_range(r["peak_rss_mb_per_rank_max"], fmt, digits=0),
            fmt_range(r["cuda_max_allocated_mb"], fmt, digits=0),
            fmt_range(r["cuda_max_reserved_mb"], fmt, digits=0),
            fmt_range(r["mfu_measured"], fmt_percent),
            fmt_range(r["mfu_datasheet"], fmt_percent),
            fmt_range(r["hfu_measured"], fmt_percent),
            _note(r),
        ])
    for b in report.baselines:
        rows.append([
            f"{b['model']} (baseline)", "classical", DASH, DASH, "",
            *(fmt_range(b["quality"].get(k) or {}) for k in keys),
            *[DASH] * 15,
            f"baseline, fit {fmt_seconds_range(b['fit_seconds'])} s"
            + (f", {_busy_mark(b, b['cells'], 'cells')}" if b.get("busy_host") else ""),
        ])
    keep = [i for i, h in enumerate(headers) if h in IDENTITY_COLUMNS or any(row[i] not in (DASH, "") for row in rows)]
    return [headers[i] for i in keep], [[row[i] for i in keep] for row in rows]


def convergence_lines(report: WorkloadReport) -> list[str]:
    """The reference-convergence check (MLPerf RCP-style) as a table, with the flagged configurations named."""
    if not report.convergence:
        return []
    rows = [[f"`{c['id']}`", c["converged"], fmt_range(c["samples_to_target"], fmt, digits=0),
             fmt_range(c["reference_samples"], fmt, digits=0), fmt_judged(c),
             "**needs more samples**" if c["flag"] else "" if c["reached"] else "did not reach the target"]
            for c in report.convergence]
    flagged = [f"`{c['id']}`" for c in report.convergence if c["flag"]]
    out = ["", "### Reference convergence", "",
           "Samples to target (converged seeds) of each configuration against its reference, the single-process fp32 "
           "run of the same model: a configuration the report decides needs more samples (exact rank test, Holm over the "
           "report's claims) changed the optimisation with its precision, world size or knob, not only the clock.",
           "", tabulate(rows, headers=["configuration", "converged", "samples to target", "reference", "ratio, verdict (p)",
                                       "flag"], tablefmt="github", disable_numparse=True)]
    if flagged:
        out += ["", f"**Needs significantly more samples than the reference:** {', '.join(flagged)}."]
    return out


def _payback(entry: dict[str, Any]) -> list[str]:
    """compile s, step off -> on, payback step: what the compile knob's table adds."""
    pay = entry.get("payback")
    if not pay:
        return [DASH, DASH, "compile time not recorded" if entry.get("off_id") else DASH]
    steps = f"{fmt(pay['step_off_s'] and pay['step_off_s'] * 1000, 1)} -> {fmt(pay['step_on_s'] and pay['step_on_s'] * 1000, 1)}"
    if pay["never"]:
        when = "never (compiled steps are not faster)"
    elif pay["payback_steps"] is None:
        when = "unknown (no step medians)"
    else:
        when = f"step {pay['payback_steps']:,.0f}"
    return [fmt_seconds(pay["compile_s"]), steps, when]


def knob_lines(report: WorkloadReport) -> list[str]:
    """Per knob axis: each configuration with it turned against the same configuration at its default."""
    out: list[str] = []
    for section in report.knobs:
        axis, entries = section["axis"], section["entries"]
        first = next((e for e in entries if e.get("memory")), {})
        memory = (first.get("memory") or {}).get("label", "peak memory per rank")
        quality = next((e["quality"]["label"] for e in entries if e.get("quality")), "quality")
        headers = ["configuration", f"against ({axis}={section['default']})", "time-to-target", "end to end (cell wall)",
                   "samples/s", memory, quality]
        if axis == "compile":
            headers += ["compile s", "median step ms off -> on", "pays back at"]
        rows = []
        for e in entries:
            if e.get("time_to_target_s") is None:
                why = "no run of this configuration at the default" if e["off_id"] is None else "one side has no numbers"
                rows.append([f"`{e['id']}`", f"`{e['off_id']}`" if e["off_id"] else DASH, why,
                             *[DASH] * (len(headers) - 3)])
                continue
            ttt = e["time_to_target_s"]
            reached = (fmt_judged(ttt) if ttt.get("ratio") is not None
                       else f"target reached by {e['converged']} on, {e['off_converged']} off")
            rows.append([f"`{e['id']}`", f"`{e['off_id']}`", reached,
                         *(fmt_judged(e.get(k)) for k in ("cell_wall_s", "samples_per_s", "memory", "quality")),
                         *(_payback(e) if axis == "compile" else [])])
        out += ["", f"### What turning it on did: {axis}", "",
                f"Each configuration with `{axis}` away from its default against the same configuration with "
                f"`{axis}={section['default']}` (its other axes as they are): the ratio on / off over seeds and what the report decides.",
                "", tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)]
        if axis == "compile":
            out += ["", "Pays back at: the compile time (measured apart, `knobs.compile.compile_s`) divided by what "
                    "compiling saves per step (median step off - median step on); never when compiled steps are not faster."]
    return out


def _target_line(report: WorkloadReport) -> str:
    if not report.target:
        return "No cell of this workload trained, so its target is not known from the results."
    def words(t: dict[str, Any]) -> str:
        sign = ">=" if t.get("higher_is_better", True) else "<="
        return f"{t.get('split', 'val')} {t['metric']} {sign} {t['value']}"

    by_model = {r["model"]: words(r["target"]) for r in report.rows if r.get("target")}
    if len(set(by_model.values())) > 1:  # variants of one workload may be calibrated to different targets
        text = "; ".join(f"{model}: {t}" for model, t in by_model.items())
    else:
        text = words(report.target)
    return f"Target: {text} (time-to-target stops at the first evaluation that meets it)."


def hardware_line(env: dict[str, Any]) -> str:
    if not env.get("cpu_model"):
        return "hardware not recorded"
    gpus = env.get("gpus") or []
    gpu = f"{len(gpus)} x {gpus[0]}" if gpus else "no GPU"
    return f"{env.get('cpu_count', '?')}-core {env.get('cpu_model', 'unknown CPU')}, {gpu}"


def _host_line(env: dict[str, Any]) -> str:
    """Memory and load when the run started (recorded since bench env was added)."""
    memory = env.get("memory_total_mb")
    load = env.get("load_average")
    return (f"- Host: {'memory unknown' if memory is None else f'{memory / 1024:.1f} GiB memory'}; load average "
            + (", ".join(f"{x:.2f}" for x in load) + " (1, 5, 15 min)" if load else "unknown")
            + f" when the run started, on {env.get('usable_cores', '?')} usable cores")


def _peaks_table(report: Report) -> str:
    peaks = report.peaks
    if not peaks:
        return f"Peak FLOP/s: {report.peaks_source}."
    rows = []
    for device in ("cpu", "cuda"):
        entry = peaks.get(device)
        if not entry:
            continue
        for dtype, value in (entry.get("measured") or {}).items():
            sheet = (entry.get("datasheet") or {}).get(dtype)
            rows.append([device, entry.get("name", ""), dtype, fmt_flops(value),
                         f"{fmt_flops(sheet)} ({entry.get('datasheet_name')})" if sheet else DASH])
    text = tabulate(rows, headers=["device", "name", "dtype", "measured peak", "datasheet peak"], tablefmt="github")
    return (
        f"Peak FLOP/s ({report.peaks_source}; {peaks.get('method', 'method not recorded')}). "
        "*MFU (measured peak)* divides each cell's training FLOP/s (FLOPs per sample counted by "
        "torch's FlopCounterMode x steady samples/s) by the measured peak for the dtype the cell computed in; "
        "a CPU peak is the whole host's, which the ranks share, a GPU peak is per device and multiplied by the "
        "processes. *MFU (datasheet peak)* uses the vendor's dense figure where the GPU is known. "
        "A cell that computed in bf16 or fp16 on a CPU without instructions for it (no avx512_bf16 or "
        "AMX; the result's environment records the CPU's flags) gets no MFU: the peak of an emulated "
        "precision is no measure of the hardware.\n\n" + text
    )


def seeds_auto_lines(report: Report) -> list[str]:
    """'Seeds chosen automatically': each configuration's seed count and why it stopped (--seeds auto)."""
    auto = report.seeds_auto
    if not auto:
        return []
    out = ["", "## Seeds chosen automatically", "",
           f"`bench run --seeds auto`: every configuration started with {auto['start']} seeds; after each round, each "
           "configuration whose time-to-target against its reference was still undecided at the design's per-look "
           f"level ({report.alpha:.2g}, alpha spent over the looks that can decide) got one more seed, and so did that "
           f"reference, up to {auto['max']} seeds ({auto['rounds']} round{'s' if auto['rounds'] != 1 else ''}; docs/report.md)."]
    if not auto["done"]:
        out[-1] += " The run stopped before every comparison was decided; `bench run --resume` continues it."
    rows = [[f"`{c['id']}`", fmt(c["seeds"], 0) if isinstance(c["seeds"], int) else DASH, c["stopped"],
             fmt_judged(c["time_to_target"])] for c in auto["cells"]]
    out += ["", tabulate(rows, headers=["configuration", "seeds", "stopped because", "time-to-target vs reference"],
                         tablefmt="github", disable_numparse=True)]
    return out


def render_markdown(report: Report, plots: dict[str, list[tuple[str, str]]] | None = None,
                    extra_metrics: tuple[str, ...] = (), command: str | None = None) -> str:
    env, meta = report.environment, report.meta
    out = [f"# Benchmark report: {report.run_id}", ""]
    out.append(
        f"{report.cell_count} cell{'s' if report.cell_count != 1 else ''} from `{report.run_dir}` on **{hardware_line(env)}**"
        + (f", run with `{meta.command}`" if meta.command else "")
        + (f"; {report.launch_seconds / 60:.1f} min of cell launches, end to end" if report.launch_seconds else "") + "."
    )
    decided = (f"only when Holm's rule over all {report.claims} comparisons of this report decides it, so that the "
               f"chance of any false call is at most {report.alpha:.2g}" if report.claims else
               "only when an exact test decides it; at one seed a side none can, and this report calls no difference")
    out.append("Figures are medians over seeds with [min–max] where there are several; a comparison is a ratio over "
               f"seeds (Hodges-Lehmann) with an exact rank test, called a difference (and marked *) {decided}; "
               "column meanings and the statistics are in docs/report.md.")
    for w in report.workloads:
        out += ["", f"## {w.name}", "", _target_line(w), ""]
        for line in w.data:  # the data files read, and whether cells read different content
            out += [line, ""]
        out += ["### Verdict", ""]
        out += [f"- {line}" for line in w.verdict]
        headers, rows = table_rows(w, extra_metrics)
        out += ["", "### Results", "", tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)]
        busy = busy_host_note(w.rows + w.baselines)
        if busy:
            out += ["", busy]
        if w.not_converged:
            out += ["", "Seeds that trained to their budget without meeting the target:", ""]
            for c in w.not_converged:
                best = c.get("best") or {}
                reached = f"; best val {best['metric']} {fmt(best['value'])} vs target {best['target']}" if best else ""
                out.append(f"- `{c['id']}`: {c['reason']}{reached}")
        out += convergence_lines(w) + knob_lines(w)
        for title, filename in (plots or {}).get(w.name, []):
            out += ["", f"![{title}]({filename})"]
    out += seeds_auto_lines(report)
    out += ["", "## Cells without numbers", ""]
    if report.without_numbers:
        out.append("Every cell that produced no figures, and why (none is left out of the tables above by accident):")
        out.append("")
        rows = [[f"`{c['id']}`", c["status"], c["reason"] + (f" (last stderr: `{c['last_stderr_line']}`)" if c.get("last_stderr_line") else "")]
                for c in report.without_numbers]
        out.append(tabulate(rows, headers=["cell", "status", "reason"], tablefmt="github", disable_numparse=True))
    else:
        out.append("None: every cell of the run trained or fitted its baselines.")
    out += ["", "## Environment", ""]
    packages = ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items())
    out += [
        f"- Hardware: {hardware_line(env)} (`{env.get('hardware_class', '?')}`), host `{env.get('host', '?')}`, "
        f"{env.get('torch_threads', '?')} torch threads",
        f"- Software: Python {env.get('python', '?')} on {env.get('platform', '?')}; {packages}",
        *([_host_line(env)] if "load_average" in env or "memory_total_mb" in env else []),
        f"- Code: git commit `{env.get('git_commit') or 'unknown'}`",
        f"- Run started: {env.get('date_utc', 'unknown')}",
        f"- Command: `{meta.command or 'not recorded (no run.json)'}`",
    ]
    if meta.matrix:
        filters = ", ".join(f"{k}={v}" for k, v in (meta.filters or {}).items() if v) or "none"
        out.append(f"- Matrix: `{meta.matrix}`, filters: {filters}")
    if command:
        out.append(f"- This report: `{command}`")
    out += ["", _peaks_table(report), ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# CSV and JSON
# ---------------------------------------------------------------------------------------------

SUMMARY_FIELDS = ("samples_per_s", "tokens_per_s", "peak_rss_mb_per_rank_max", "peak_rss_mb_sum", "cuda_max_allocated_mb",
                  "cuda_max_reserved_mb", "flops_per_sample", "mfu_measured", "mfu_datasheet", "samples_to_target", "fit_seconds")


def flat_rows(report: Report) -> list[dict[str, Any]]:
    """One flat dict per configuration and per baseline model, every workload."""
    flat = []
    for w in report.workloads:
        for r in w.rows + w.baselines:
            row: dict[str, Any] = {
                "workload": w.name,
                "kind": r["kind"],
                "model": r["model"],
                "topology": r.get("topology", ""),
                "processes": r.get("processes", ""),
                "device": r.get("device", ""),
                "precision": r.get("precision", ""),
                "target_metric": (w.target or {}).get("metric", ""),
                "target_value": (w.target or {}).get("value", ""),
                "cells": r["cells"],
                "converged": r.get("converged", ""),
                "statuses": ";".join(f"{k}:{v}" for k, v in (r.get("statuses") or {}).items()),
                "reference": r.get("reference", ""),
                "knobs": fmt_axes(r.get("axes")),
                "speedup_time_to_target": r.get("speedup_time_to_target", ""),
                "throughput_ratio": r.get("throughput_ratio", ""),
                "scaling_efficiency": r.get("scaling_efficiency", ""),
                "busy_host_cells": len(r.get("busy_host") or []),
            }
            for name, judged in (r.get("vs_reference") or {}).items():  # ratio to the reference and its verdict
                row.update({f"{name}_ratio_{k}": judged.get(k) for k in ("ratio", "p_value")}
                           | {f"{name}_ratio_verdict": judged.get("verdict")})
            ttt = r.get("time_to_target_s") or {}
            row.update({f"time_to_target_s_{k}": ttt.get(k, "") for k in ("median", "min", "max", "olympic_mean")})
            for key in SUMMARY_FIELDS:
                summary = r.get(key) or {}
                row.update({f"{key}_{k}": summary.get(k, "") for k in ("median", "min", "max")})
            for key, summary in sorted(r["quality"].items()):
                row.update({f"{key}_{k}": summary.get(k, "") for k in ("median", "min", "max")})
            flat.append({k: ("" if v is None else v) for k, v in row.items()})
    return flat


def render_csv(report: Report) -> str:
    rows = flat_rows(report)
    fields = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _strict(value: Any) -> Any:
    """NaN/inf (e.g. an undefined ROC-AUC) as null: strict JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def render_json(report: Report) -> str:
    # run.json as it is on disk (RunMeta.to_json), not every field of RunMeta
    return json.dumps(_strict({**dataclasses.asdict(report), "meta": report.meta.to_json()}), indent=2,
                      allow_nan=False) + "\n"
