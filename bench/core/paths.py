"""Where things live: the shipped card folders, the data root, caches, weights, results.

Every location can be set on the command line or by an environment variable, so tests and
CI point the harness at temporary folders and read-only data mirrors. Each is made absolute
when it is resolved (a relative one against the working directory of that moment).
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.core import resources

# The checkout this package was imported from (meaningless for an installed wheel: use the
# folders below, which bench.core.resources finds in either layout).
REPO_ROOT = Path(__file__).resolve().parent.parent.parent
METHOD_CARDS = resources.folder("methods")
DATASET_CARDS = resources.folder("datasets")
FR_CARDS = resources.folder("fr")
PROTOCOLS_DIR = resources.folder("protocols")
PUBLISHED_DIR = resources.folder("results/published")
TEMPLATES_DIR = resources.folder("reports")

DEFAULT_RESULTS = Path("bench-results")


def safe_name(text: str) -> str:
    """``text`` usable as one file-name component (``onnx:/a/b.onnx`` -> ``onnx__a_b.onnx``)."""
    return text.replace(":", "_").replace("/", "_")


def absolute(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute against the working directory of this moment (normalised, links
    kept): a location is fixed once it is resolved, so a later change of the working directory
    never makes a cache or results folder point somewhere else mid-run."""
    return Path(os.path.abspath(path))


def _from_env(arg: str | os.PathLike[str] | None, env: str, default: Path | None) -> Path | None:
    if arg is not None:
        return absolute(arg)
    value = os.environ.get(env)
    if value:
        return absolute(value)
    return None if default is None else absolute(default)


def cards_dirs(arg: str | os.PathLike[str] | None = None) -> list[Path]:
    """Extra card folders: ``--cards DIR`` beats ``BENCH_CARDS`` (several joined by os.pathsep)."""
    if arg is not None:
        return [absolute(arg)]
    return [absolute(p) for p in os.environ.get("BENCH_CARDS", "").split(os.pathsep) if p]


def data_root(arg: str | os.PathLike[str] | None = None) -> Path | None:
    """The data root: ``--data-root`` beats ``BENCH_DATA``; None when neither is set."""
    return _from_env(arg, "BENCH_DATA", None)


def cache_dir(arg: str | os.PathLike[str] | None = None) -> Path:
    """Cache for aligned crops and embeddings: ``--cache`` / ``BENCH_CACHE`` / ~/.cache/fiqa-bench, absolute."""
    path = _from_env(arg, "BENCH_CACHE", Path.home() / ".cache" / "fiqa-bench")
    assert path is not None
    return path


def weights_dir(arg: str | os.PathLike[str] | None = None) -> Path | None:
    """Folder holding model weight files under their expected names (``BENCH_WEIGHTS``)."""
    return _from_env(arg, "BENCH_WEIGHTS", None)


def results_dir(arg: str | os.PathLike[str] | None = None) -> Path:
    """Results folder (``--results`` / ``BENCH_RESULTS`` / ./bench-results), absolute."""
    path = _from_env(arg, "BENCH_RESULTS", DEFAULT_RESULTS)
    assert path is not None
    return path
