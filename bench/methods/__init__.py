"""FIQA methods, one module per method; see :mod:`bench.methods.base` for the interface."""
