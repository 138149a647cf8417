"""bench: train real workloads to a quality target across a matrix of Accelerate configurations.

The package in layers (each may import the ones below it, never the ones above):

    bench.cli, bench.commands   the command line: one module per `bench <command>`
    bench.analysis              reports, the regression gate, statistics, plots, exports (no torch)
    bench.serving               the sentiment HTTP API and its load test
    bench.harness               matrix, runner, executors, launch, worker, training loop, verification, measurement
    workloads (top-level)       the models and their data preparation, one module per workload
    bench.data                  fetching, verifying and reading the datasets (never imports workloads)
    bench.results, bench.run_meta, bench.errors, bench.paths   the result and run.json formats, one-line
                                errors, locations
"""

__version__ = "0.1.0"
