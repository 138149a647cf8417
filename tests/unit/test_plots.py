"""The report's plots (bench/analysis/plots.py), asserted through matplotlib's objects, not pixels.

Built from the hand-made fixture run (tests/fixtures/report-run, described in tests/{unit,e2e}/test_report.py):
alpha's configurations score test f1 0.40-0.57 against a val f1 target of 0.5, its baselines are
random_forest (median test f1 0.65) and svm_rbf (0.5); beta has one seed per configuration.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from matplotlib.container import ErrorbarContainer

from bench.analysis import plots
from bench.analysis.report import build_report

FIXTURE = Path(__file__).parent.parent / "fixtures" / "report-run"


@pytest.fixture(scope="module")
def report():
    return build_report(FIXTURE, measure_peaks=False)


def _workload(report, name: str):
    return copy.deepcopy(next(w for w in report.workloads if w.name == name))


def _row(w, topology: str, precision: str) -> dict:
    return next(r for r in w.rows if (r["topology"], r["precision"]) == (topology, precision))


def _legend_texts(fig) -> list[str]:
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    return [t.get_text() for legend in legends for t in legend.get_texts()]


def _points(w, key: str = "test_f1") -> list[tuple[float, float]]:
    return [(x, y) for r in w.rows if r["trained"]
            for x, y in zip(r["per_seed"]["samples_per_s"], r["per_seed"][key], strict=True)
            if x is not None and y is not None]


def _with_two_node_row(w) -> None:
    """A trained cpu-2node fp32 row (2 processes on 2 nodes), copied from cpu-ddp2 fp32, put first."""
    two_node = copy.deepcopy(_row(w, "cpu-ddp2", "fp32"))
    two_node.update(topology="cpu-2node", nodes=2, id="alpha-gru__cpu-2node__fp32-trained")
    two_node["per_seed"]["samples_per_s"] = [x * 2 for x in two_node["per_seed"]["samples_per_s"]]
    w.rows = [two_node, *[r for r in w.rows if r["topology"] != "cpu-2node"]]


def test_quality_axis_fits_the_points_and_names_a_far_baseline(report):
    w = _workload(report, "alpha")
    w.baselines.append({"model": "far_model", "quality": {"test_f1": {"median": 0.05}}})
    fig = plots.quality_vs_throughput(w)
    (ax,) = fig.axes
    low, high = ax.get_ylim()
    assert all(low <= y <= high for _, y in _points(w))
    assert not low <= 0.05 <= high  # the far baseline does not squash the points
    drawn = {line.get_label(): line for line in ax.get_lines() if len(line.get_ydata())}
    assert all(0.05 not in list(line.get_ydata()) for line in drawn.values())
    texts = _legend_texts(fig)
    assert "far_model 0.05 (baseline, median): below the axis, not drawn" in texts
    # a baseline near the points is drawn where it is and labelled with its value
    assert list(drawn["random_forest 0.65 (baseline, median)"].get_ydata()) == pytest.approx([0.65, 0.65])
    assert low <= 0.65 <= high


def test_a_baseline_above_the_points_says_so(report):
    w = _workload(report, "alpha")
    w.baselines.append({"model": "oracle", "quality": {"test_f1": {"median": 0.99}}})
    fig = plots.quality_vs_throughput(w)
    assert fig.axes[0].get_ylim()[1] < 0.99
    assert "oracle 0.99 (baseline, median): above the axis, not drawn" in _legend_texts(fig)


def test_quality_plot_draws_the_validation_target_as_a_labelled_dotted_line(report):
    fig = plots.quality_vs_throughput(_workload(report, "alpha"))
    (target,) = [line for line in fig.axes[0].get_lines() if line.get_label() == "val target 0.5"]
    assert list(target.get_ydata()) == [0.5, 0.5] and target.get_linestyle() == ":"
    assert "val target 0.5" in _legend_texts(fig)


def test_quality_values_are_plotted_as_they_are(report):
    w = _workload(report, "alpha")
    fig = plots.quality_vs_throughput(w)
    plotted = sorted((x, y) for c in fig.axes[0].collections for x, y in c.get_offsets())
    assert plotted == sorted(_points(w))  # nothing overlaps in the fixture: nothing dodged
    assert "dodged" not in fig.axes[0].get_title()


def test_overlapping_points_of_different_configurations_are_dodged_sideways(report):
    w = _workload(report, "alpha")
    ddp, ref = _row(w, "cpu-ddp2", "fp32"), _row(w, "cpu-1proc", "fp32")
    ddp["per_seed"]["samples_per_s"] = list(ref["per_seed"]["samples_per_s"])  # on top of each other
    ddp["per_seed"]["test_f1"] = list(ref["per_seed"]["test_f1"])
    fig = plots.quality_vs_throughput(w)
    ax = fig.axes[0]
    by_label = {c.get_label(): c.get_offsets() for c in ax.collections}
    ones, twos = by_label["gru cpu-1proc fp32"], by_label["gru cpu-ddp2 fp32"]
    assert list(ones[:, 1]) == list(twos[:, 1]) == ref["per_seed"]["test_f1"]  # quality exact
    assert all(a < x < b for a, x, b in zip(ones[:, 0], ref["per_seed"]["samples_per_s"], twos[:, 0], strict=True))
    assert "dodged sideways" in ax.get_title()


def test_dodge_moves_only_points_that_overlap_another_configuration():
    offsets, moved = plots._dodge([[(100.0, 0.5), (300.0, 0.9)], [(100.0, 0.5)], [(200.0, 0.1)]], xspan=200, yspan=1)
    step = plots.DODGE_STEP * 200
    assert moved and offsets == [[-step / 2, 0.0], [step / 2], [0.0]]
    assert plots._dodge([[(1.0, 1.0)], [(2.0, 2.0)]], xspan=1, yspan=1) == ([[0.0], [0.0]], False)


def test_convergence_has_a_seconds_panel_and_a_samples_panel(report):
    w = _workload(report, "alpha")
    fig = plots.convergence(w)
    by_seconds, by_samples = fig.axes
    assert "seconds" in by_seconds.get_xlabel() and "samples" in by_samples.get_xlabel()
    curves = [c for r in w.rows for c in r["curves"]]
    data = [line for line in by_samples.get_lines() if line.get_linestyle() != ":"]
    assert len(data) == len(curves) == 12
    assert sorted(tuple(line.get_xdata()) for line in data) == sorted(tuple(c["samples"]) for c in curves)
    assert "val target 0.5" in _legend_texts(fig)


def test_convergence_without_samples_keeps_the_seconds_panel(report):
    w = _workload(report, "beta")
    for r in w.rows:
        for c in r["curves"]:
            del c["samples"]  # a report made by an older bench: curves without samples
    by_seconds, by_samples = plots.convergence(w).axes
    assert len(by_seconds.get_lines()) == 3  # two cells and the target
    assert "no samples recorded" in by_samples.texts[0].get_text()


def test_memory_bars_have_no_whiskers_when_no_seeds_differ(report):
    (ax,) = plots.peak_memory(_workload(report, "beta")).axes  # one seed per configuration
    assert not [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert ax.get_xlabel().endswith("(one seed: no whiskers)")


def test_memory_whiskers_only_where_seeds_differ(report):
    w = _workload(report, "alpha")  # host RSS 390-410 MB for cpu-1proc fp32; 380 twice, 450 five times
    (ax,) = plots.peak_memory(w).axes
    (bars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    (segment,) = bars.lines[2][0].get_segments()
    assert [x for x, _ in segment] == [390, 410]
    assert "whiskers min-max over seeds where they differ" in ax.get_xlabel()


def test_time_to_target_whiskers_only_where_seeds_differ(report):
    (ax,) = plots.time_to_target(_workload(report, "beta")).axes
    assert not [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert "one seed: no whiskers" in ax.get_xlabel()


def test_legends_and_colours_follow_scale_whatever_the_row_order(report):
    w = _workload(report, "alpha")
    _with_two_node_row(w)  # the 2-node row first: plots must still put it last
    w.rows.reverse()
    fig = plots.quality_vs_throughput(w)
    configurations = [t for t in _legend_texts(fig) if t.startswith("gru ")]
    assert configurations == ["gru cpu-1proc fp32", "gru cpu-1proc bf16", "gru cpu-ddp2 fp32", "gru cpu-2node fp32"]
    colors = plots._colors(w.rows)  # CPU before GPU, then processes, then nodes
    assert list(colors) == ["cpu-1proc", "cpu-ddp2", "cpu-2node", "gpu-1"]
    labels = [t.get_text() for t in plots.peak_memory(w).axes[0].get_yticklabels()]
    assert labels == configurations
    convergence = [t for t in _legend_texts(plots.convergence(w)) if t.startswith("gru ")]
    assert [t.rsplit(" ", 1)[0] for t in convergence] == [c for c in configurations for _ in range(5 if "fp32" in c else 2)]


def test_write_plots_saves_every_built_figure(report, tmp_path):
    w = _workload(report, "beta")
    assert set(plots.figures(w)) == {"quality-vs-throughput", "time-to-target", "convergence", "peak-memory"}
    written = plots.write_plots(report, tmp_path)
    assert [name for _, name in written["beta"]] == [f"beta-{slug}.png" for slug in plots.figures(w)]

