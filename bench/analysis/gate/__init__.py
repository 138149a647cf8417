"""The regression gates. `bench gate`: the base commit and the candidate measured side by side on
one host, judged over launches and seeds at a stated false-alarm rate (docs/gate.md). `bench
compare`: a run judged against the committed baseline of its hardware (docs/compare.md).

Read in this order:
- `entry.py`: the one entry of each command (`gate_side_by_side`, `compare_with_baseline`): what
  runs, in what order, from loading or measuring to the rendered report.
- `side_by_side.py`: check the base out in a git worktree, run both sides' `bench run` in
  interleaved rounds (A B, B A, ...), and collect each side's results by round.
- `metrics.py`: the figures both gates judge (step, time-to-target, throughput, init, final
  evaluation, whole-cell wall time, peak memory; the target metric's score) and where each is read
  in a typed result (bench.results.Result).
- `judge.py`: `bench gate`'s verdict per cell and figure, from the exact tests of
  bench.analysis.stats, with Tarone's rule over the whole gate; the verdict words both gates use.
- `baselines.py`: `bench compare`'s committed baselines and the hardware they are matched on.
- `against_baseline.py`: `bench compare`'s verdict per cell and metric, candidate against baseline
  (thresholds, seed intervals, Mann-Whitney U).
- `recheck.py`: `bench compare --recheck`: re-run the cells whose only regressions are speed, and
  keep the regressions the re-run shows too.
- `render.py`: both gates' verdicts as Markdown, JSON and JUnit XML.
- `calibrate.py`: the false-alarm and detection rates of `bench gate` measured (docs/gate.md).

bench/commands/gate.py and bench/commands/compare.py parse the arguments, call the entry, and
print or write what it returns.
"""
