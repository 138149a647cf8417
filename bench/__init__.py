"""bench: train real workloads to a quality target across a matrix of Accelerate configurations."""

__version__ = "0.1.0"
