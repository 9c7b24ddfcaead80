"""Dataset loaders, one module per dataset; see :mod:`bench.datasets.base` for the interface."""
