"""Where things live: the shipped card folders, the data root, caches, weights, results.

Every location can be set on the command line or by an environment variable, so tests and
CI point the harness at temporary folders and read-only data mirrors.
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


def _from_env(arg: str | os.PathLike[str] | None, env: str, default: Path | None) -> Path | None:
    if arg is not None:
        return Path(arg)
    value = os.environ.get(env)
    if value:
        return Path(value)
    return default


def cards_dirs(arg: str | os.PathLike[str] | None = None) -> list[Path]:
    """Extra card folders: ``--cards DIR`` beats ``BENCH_CARDS`` (several joined by os.pathsep)."""
    if arg is not None:
        return [Path(arg)]
    return [Path(p) for p in os.environ.get("BENCH_CARDS", "").split(os.pathsep) if p]


def data_root(arg: str | os.PathLike[str] | None = None) -> Path | None:
    """The data root: ``--data-root`` beats ``BENCH_DATA``; None when neither is set."""
    return _from_env(arg, "BENCH_DATA", None)


def cache_dir(arg: str | os.PathLike[str] | None = None) -> Path:
    """Cache for aligned crops and embeddings: ``--cache`` / ``BENCH_CACHE`` / ~/.cache/fiqa-bench."""
    path = _from_env(arg, "BENCH_CACHE", Path.home() / ".cache" / "fiqa-bench")
    assert path is not None
    return path


def weights_dir(arg: str | os.PathLike[str] | None = None) -> Path | None:
    """Folder holding model weight files under their expected names (``BENCH_WEIGHTS``)."""
    return _from_env(arg, "BENCH_WEIGHTS", None)


def results_dir(arg: str | os.PathLike[str] | None = None) -> Path:
    """Results folder (``--results`` / ``BENCH_RESULTS`` / ./bench-results)."""
    path = _from_env(arg, "BENCH_RESULTS", DEFAULT_RESULTS)
    assert path is not None
    return path
