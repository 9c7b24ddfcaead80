"""A reader for dlib's binary ``.dat`` network files (``serialize(net, out)`` in dlib/dnn).

Written from dlib's serialisation code (dlib/serialize.h, dlib/float_details.h and the
``serialize`` functions of dlib/dnn/{core,tensor,layers,input,loss}.h), so that the weights of
dlib's face-recognition ResNet can be loaded into PyTorch without dlib itself.

The encodings:

* integers: one control byte (low nibble = number of value bytes, bit 0x80 = negative for
  signed types), then that many little-endian magnitude bytes; zero is ``01 00``;
* floats/doubles: a ``float_details`` pair, value = mantissa (int64) * 2**exponent (int16),
  exponents 32000/32001/32002 meaning +inf/-inf/nan;
* strings: length (integer) then the bytes; bools: the ASCII character ``'1'`` or ``'0'``;
* tensors: version 2, then num_samples, k, nr, nc (integers), then the values as raw
  little-endian float32 (dlib deliberately skips its float encoding there);
* alias tensors (views into a layer's ``params``): version 1 then the four dimensions.

A network is written top down: ``add_loss_layer`` writes its version (1), its loss details,
then its subnetwork. Every ``add_layer`` writes its version, *then its subnetwork*, then its
own details followed by three bools and three scratch tensors (the add_layer right above
the input, version 3 in files of dlib 19.x, then also stores its sample expansion factor). Tag and skip layers write only
a version (1) and their subnetwork. So a file reads as: the loss, a run of version numbers from
the top layer down to the input layer, the input layer, then each layer's details from the
bottom up. Tag ids are not stored, so the wiring (which tag a residual adds back) must come
from the network definition; :func:`read_network` returns the layers in file order and the
caller checks them against the architecture it expects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.errors import DataError

_IS_INF, _IS_NINF, _IS_NAN = 32000, 32001, 32002
# Versions written by add_layer (2; 3 by the dlib of 2017 for the layer right above the input),
# add_tag_layer and add_skip_layer (1). A run of versions ends at the input layer's name, whose
# length-prefix is the first integer above this.
_MAX_WRAPPER_VERSION = 3


@dataclass
class Layer:
    """One layer's details as stored: ``kind`` is its version string (``"con_4"``, ...)."""

    kind: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class DlibNetwork:
    """A parsed network: loss, input layer, and the computational layers bottom-up."""

    loss: Layer
    input: Layer
    layers: list[Layer]
    wrapper_versions: list[int]


class DatReader:
    """Sequential decoder of dlib's serialisation primitives over an in-memory buffer."""

    def __init__(self, data: bytes, source: str = "<bytes>") -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.source = source

    def fail(self, problem: str) -> DataError:
        """A DataError naming the source and the byte offset of the problem."""
        return DataError(f"{self.source}: {problem} at byte {self.pos}")

    def _take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise self.fail(f"file ends early (wanted {n} more bytes)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def peek_int(self) -> int:
        """The next signed integer, without consuming it."""
        start = self.pos
        try:
            return self.read_int()
        finally:
            self.pos = start

    def read_int(self, signed: bool = True) -> int:
        """A dlib packed integer (signed or unsigned)."""
        control = self._take(1)[0]
        size = control & 0x0F
        negative = bool(control & 0x80)
        if size == 0 or size > 8 or control & 0x70 or (negative and not signed):
            self.pos -= 1
            raise self.fail(f"bad integer control byte 0x{control:02x}")
        value = int.from_bytes(self._take(size), "little")
        return -value if negative else value

    def read_float(self) -> float:
        """A float or double stored as a ``float_details`` (mantissa, exponent) pair."""
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise self.fail("float in dlib's old ASCII format (not supported)")
        mantissa = self.read_int()
        exponent = self.read_int()
        if exponent == _IS_INF:
            return float("inf")
        if exponent == _IS_NINF:
            return float("-inf")
        if exponent == _IS_NAN:
            return float("nan")
        return float(np.ldexp(float(mantissa), exponent))

    def read_str(self) -> str:
        n = self.read_int(signed=False)
        raw = bytes(self._take(n))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            self.pos -= n
            raise self.fail("non-ASCII string") from None

    def read_bool(self) -> bool:
        ch = bytes(self._take(1))
        if ch not in (b"0", b"1"):
            self.pos -= 1
            raise self.fail(f"bad bool byte {ch!r}")
        return ch == b"1"

    def read_tensor(self) -> np.ndarray:
        """A resizable_tensor as float32 [num_samples, k, nr, nc]."""
        version = self.read_int()
        if version != 2:
            raise self.fail(f"tensor version {version} (only 2 is supported)")
        shape = tuple(self.read_int() for _ in range(4))
        count = int(np.prod(shape))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def read_alias(self) -> tuple[int, int, int, int]:
        version = self.read_int()
        if version != 1:
            raise self.fail(f"alias_tensor version {version} (only 1 is supported)")
        n, k, nr, nc = (self.read_int() for _ in range(4))
        return n, k, nr, nc

    def at_end(self) -> bool:
        return self.pos == len(self.data)


def _read_details(r: DatReader) -> Layer:
    """One layer's details, dispatched on its version string."""
    kind = r.read_str()
    f: dict[str, Any] = {}
    if kind == "input_rgb_image_sized":
        f["avg_rgb"] = (r.read_float(), r.read_float(), r.read_float())
        f["nr"], f["nc"] = r.read_int(False), r.read_int(False)
    elif kind == "con_4":
        f["params"] = r.read_tensor()
        for key in ("num_filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"):
            f[key] = r.read_int()
        f["filters"], f["biases"] = r.read_alias(), r.read_alias()
        f["multipliers"] = tuple(r.read_float() for _ in range(4))
    elif kind == "affine_":
        f["params"] = r.read_tensor()
        f["gamma"], f["beta"] = r.read_alias(), r.read_alias()
        f["mode"] = r.read_int()
    elif kind in ("max_pool_2", "avg_pool_2"):
        for key in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"):
            f[key] = r.read_int()
    elif kind in ("relu_", "add_prev_"):
        pass
    elif kind == "fc_2":
        f["num_outputs"], f["num_inputs"] = r.read_int(False), r.read_int(False)
        f["params"] = r.read_tensor()
        f["weights"], f["biases"] = r.read_alias(), r.read_alias()
        f["bias_mode"] = r.read_int()
        f["multipliers"] = tuple(r.read_float() for _ in range(4))
    elif kind == "loss_metric_2":
        f["margin"], f["distance_threshold"] = r.read_float(), r.read_float()
    else:
        raise r.fail(f"unsupported dlib layer {kind!r}")
    return Layer(kind, f)


def _read_add_layer_tail(r: DatReader, version: int) -> None:
    """Skip an add_layer's bookkeeping after its details: 3 bools and 3 (empty) tensors.

    Version 3 (only the add_layer right above the input layer) also stores its sample
    expansion factor.
    """
    for _ in range(3):
        r.read_bool()
    for _ in range(3):
        r.read_tensor()
    if version == 3:
        r.read_int(signed=False)


def parse_network(data: bytes, source: str = "<bytes>") -> DlibNetwork:
    """Parse a serialised ``add_loss_layer`` network (see the module docstring)."""
    r = DatReader(data, source)
    if (version := r.read_int()) != 1:
        raise r.fail(f"add_loss_layer version {version}, expected 1 (not a dlib network file?)")
    loss = _read_details(r)
    versions: list[int] = []
    while (v := r.peek_int()) <= _MAX_WRAPPER_VERSION:
        if v < 1:
            raise r.fail(f"bad layer version {v}")
        versions.append(r.read_int())
    if not versions or versions[-1] == 1:
        raise r.fail("no add_layer directly above the input layer")
    input_layer = _read_details(r)
    layers: list[Layer] = []
    # add_layer entries (versions 2/3) carry details; tag/skip entries (1) carry none.
    for v in reversed(versions):
        if v == 1:
            continue
        layers.append(_read_details(r))
        _read_add_layer_tail(r, v)
    if not r.at_end():
        raise r.fail(f"{len(r.data) - r.pos} unexpected trailing bytes")
    return DlibNetwork(loss=loss, input=input_layer, layers=layers, wrapper_versions=versions)


def read_network(path: str | Path) -> DlibNetwork:
    """Parse the dlib network file at ``path``; a malformed file raises DataError naming it."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: dlib network file not found")
    return parse_network(p.read_bytes(), str(p))

