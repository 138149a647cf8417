"""Running cells: matrix -> launch -> worker -> training loop -> verification -> result file.

Everything that trains or launches lives here. Imports torch and accelerate (most modules lazily,
so that `bench report` and `bench --help` stay light); may use bench.data and the workloads.
"""
