"""Reading results: reports, the regression gate (compare, recheck), statistics, plots, exports.

Works from result files alone and never imports torch: a report or a comparison runs on a
machine with only the results folder. The one exception is `recheck`, which re-runs a cell
through bench.harness when the gate asks for it.
"""
