"""Checking ``--device`` before any work, so that a missing GPU is one line and not a traceback."""

from __future__ import annotations

import re
from typing import Any

from bench.core.errors import BenchError
from bench.core.optional import require

_CUDA = re.compile(r"cuda(?::(\d+))?\Z")


def check_device(device: str) -> None:
    """Raise BenchError unless ``device`` is ``cpu``, or ``cuda[:N]`` that this torch can use.

    ``cpu`` needs no torch import, so commands that never reach torch stay light.
    """
    if device == "cpu":
        return
    match = _CUDA.match(device)
    if match is None:
        raise BenchError(f"--device {device}: expected cpu, cuda or cuda:N")
    torch = require("torch", "a CUDA device")

    if not torch.cuda.is_available():
        why = "has no CUDA" if torch.version.cuda is None else "finds no usable CUDA device"
        raise BenchError(f"--device {device}: this torch ({torch.__version__}) {why}; use --device cpu")
    count = torch.cuda.device_count()
    if match.group(1) is not None and int(match.group(1)) >= count:
        raise BenchError(f"--device {device}: only {count} CUDA device(s) (cuda:0 to cuda:{count - 1}); "
                         f"use --device cuda:0 or --device cpu")


def autocast_dtype(precision: str) -> Any:
    """The torch autocast dtype of a ``precision`` option: None for fp32 (no autocast, the
    official setting of every method), ``torch.bfloat16`` / ``torch.float16`` otherwise."""
    torch = require("torch", f"precision {precision}")
    dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in dtypes:
        raise BenchError(f"precision {precision!r}: expected one of {', '.join(dtypes)}")
    return dtypes[precision]
