"""Face-recognition models, one module per model; see :mod:`bench.fr.base` for the interface."""
