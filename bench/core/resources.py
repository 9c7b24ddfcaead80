"""The data fiqa-bench ships: cards, published values, report templates, protocol data.

The source tree keeps them in top-level folders (``methods/``, ``datasets/``, ``fr/``,
``protocols/``, ``results/published/``, ``reports/``, ``plans/``); a built wheel carries the
same folders under ``bench/_data/`` (``setup.py`` copies them there at build time). This module
is the one place that knows both layouts, so a checkout, an editable install (which reads the
checkout's folders) and an installed wheel read the same files through the same paths.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from bench.core.errors import RegistryError

# Folders (relative to the project root) that are package data. setup.py copies each one that
# exists at build time; plans/ is optional.
SHIPPED: tuple[str, ...] = (
    "methods",
    "datasets",
    "fr",
    "protocols",
    "results/published",
    "reports",
    "plans",
)
# Where a wheel keeps them inside the package.
PACKAGED = "_data"


def data_root() -> Path:
    """The folder that holds :data:`SHIPPED`: ``bench/_data`` when installed, else the checkout.

    A regular (unzipped) install is required: the templates and cards are read as files.
    """
    package = resources.files("bench")
    if not isinstance(package, Path):
        raise RegistryError(f"{package}: fiqa-bench must be installed as files, not imported from a zip archive")
    packaged = package / PACKAGED
    return packaged if packaged.is_dir() else package.parent


def folder(name: str) -> Path:
    """One of :data:`SHIPPED` by its project-relative name, e.g. ``folder("results/published")``."""
    if name not in SHIPPED:
        raise ValueError(f"{name!r} is not shipped data (known: {', '.join(SHIPPED)})")
    return data_root() / name


def checkout() -> Path | None:
    """The source checkout the package runs from (in place or editable), None for a wheel install."""
    root = data_root()
    return None if root.name == PACKAGED else root
