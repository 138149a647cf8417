"""The regression gate: the base commit and the candidate measured side by side on one host,
judged over launches and seeds at a stated false-alarm rate (docs/gate.md).

Read in this order:
- `side_by_side.py`: check the base out in a git worktree, run both sides' `bench run` in
  interleaved rounds (A B, B A, ...), and collect each side's results by round.
- `metrics.py`: the figures judged (status, quality, step, time-to-target, init, final
  evaluation, whole-cell wall time, peak memory) and where each is read in a typed result.
- `judge.py`: one verdict per cell and figure, from the exact tests of bench.analysis.stats,
  with Tarone's rule over the whole gate.
- `render.py`: the verdicts as Markdown, JSON and JUnit XML.

`bench compare` judges a run against a committed per-hardware baseline instead:
- `baselines.py`: the committed baselines and the hardware they are matched on.
- `against_baseline.py`: one verdict per cell and metric, candidate against baseline.
- `recheck.py`: re-run the cells whose only regressions are speed, and keep those shown twice.
- `render.py` (`render_compare_*`): those verdicts as Markdown, JSON and JUnit XML.

bench/commands/gate.py and bench/commands/compare.py are the commands.
"""
