"""Reading PyTorch checkpoint files, safely by default: the one place the package calls ``torch.load``.

A pickle can run any code while it is read, so a weight file is first read with PyTorch's
tensors-only unpickler (``weights_only=True``). A file that unpickler refuses because it
names other Python objects (Lightning checkpoints pickle their hyper-parameters) is read in
full only when the user says they trust it (``--trust-weights``); otherwise the error names
the objects it would create. Anything else that fails is not a checkpoint: one line naming
the file, never a traceback.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

from bench.core.errors import DataError
from bench.core.optional import require

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _unsafe_globals(path: Path, exc: Exception) -> list[str]:
    """The Python objects (module.name) the file would create beyond tensors and containers."""
    torch = require("torch", "reading a PyTorch checkpoint")

    if zipfile.is_zipfile(path):
        try:
            return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except Exception:  # noqa: BLE001 - a zip that PyTorch cannot scan is not a checkpoint
            return []
    # Legacy (non-zip) checkpoints cannot be scanned; the refusal names the first offender.
    return _GLOBAL.findall(str(exc))[:1]


def _reason(exc: BaseException, path: Path) -> str:
    """Why a file is not a checkpoint, in a few words."""
    if path.stat().st_size == 0:
        return "empty file"
    if isinstance(exc, EOFError):
        return "file ends early"
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    first = first.split(". ")[0][:120]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def load_checkpoint(path: str | Path, trust: bool = False) -> Any:
    """The object stored in the PyTorch file ``path``, with tensors on the CPU.

    Tensors, containers and primitive values load without ``trust``. A file that needs other
    objects unpickled (which can run code from the file) raises DataError unless ``trust``;
    a file that is not a PyTorch checkpoint at all raises DataError ``PATH: not a PyTorch
    checkpoint (...)``.
    """
    torch = require("torch", "reading a PyTorch checkpoint")

    path = Path(path)
    try:
        with warnings.catch_warnings():
            # Plain pickles of another protocol draw a warning before the refusal reported below.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - torch reports bad files with many exception types
        refused = exc
    if not isinstance(refused, pickle.UnpicklingError):
        raise DataError(f"{path}: not a PyTorch checkpoint ({_reason(refused, path)})") from None
    if trust:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001 - any failure of the full unpickler means a bad file
            raise DataError(f"{path}: not a PyTorch checkpoint ({_reason(exc, path)})") from None
    unsafe = _unsafe_globals(path, refused)
    if not unsafe:
        raise DataError(f"{path}: not a PyTorch checkpoint ({_reason(refused, path)})") from None
    raise DataError(f"{path}: loading needs unpickling of arbitrary objects ({', '.join(unsafe)}), which can run "
                    "code from the file; pass --trust-weights if you trust where it came from") from None
