"""Reading a PyTorch Lightning checkpoint (AdaFace's release) without Lightning and without running its code.

A Lightning ``.ckpt`` pickles, next to the tensors, objects of Lightning's and the training
script's classes (hyper-parameters as ``AttributeDict`` or ``argparse.Namespace``, callback
states keyed by callback classes). The full unpickler would import those modules (so
Lightning must be installed) and may run code from the file; the tensors-only unpickler
refuses the file. This reader unpickles with PyTorch's tensors-only allow-list and maps every
other class to an inert stand-in (:class:`Stub`) that only records what the pickle stores in
it; nothing is imported or called. The result keeps only tensors, containers and primitive
values: stand-ins are dropped from containers (and class keys become their dotted names).
"""

from __future__ import annotations

import pickle
import types
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bench.core.errors import DataError

_PRIMITIVE = (str, bytes, int, float, bool, complex, type(None))


class Stub(dict):
    """An object of a class the checkpoint names but that is not loaded: holds its pickled state, does nothing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Stub:  # noqa: PYI034 - pickle calls cls.__new__(cls, *args)
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.stub_args = args

    def __setstate__(self, state: Any) -> None:
        self.stub_state = state

    def append(self, item: Any) -> None:
        self.setdefault("__items__", []).append(item)

    def extend(self, items: Any) -> None:
        for item in items:
            self.append(item)


def _stub_class(module: str, name: str) -> type:
    """A fresh :class:`Stub` subclass standing for ``module.name`` (hashable, so usable as a dict key)."""
    return type(name, (Stub,), {"__module__": f"stub:{module}", "stub_name": f"{module}.{name}"})


def _allowed() -> dict[str, Any]:
    """PyTorch's own allow-list of the tensors-only unpickler (tensor rebuilders, dtypes, containers)."""
    from torch import _weights_only_unpickler

    return dict(_weights_only_unpickler._get_allowed_globals())


class _Unpickler(pickle.Unpickler):
    #: ``module.name`` -> object the pickle may use (set per load).
    allowed: Mapping[str, Any] = MappingProxyType({})

    def find_class(self, module: str, name: str) -> Any:
        found = self.allowed.get(f"{module}.{name}")
        return found if found is not None else _stub_class(module, name)


def _plain(obj: Any) -> Any:
    """``obj`` with every stand-in removed: tensors, containers and primitives only."""
    import torch

    if isinstance(obj, Stub):
        return None
    if isinstance(obj, (torch.Tensor, *_PRIMITIVE)):
        return obj
    if isinstance(obj, dict):
        kept = {}
        for key, value in obj.items():
            key = key.stub_name if isinstance(key, type) and issubclass(key, Stub) else key
            if not isinstance(value, Stub):
                kept[key] = _plain(value)
        return OrderedDict(kept) if isinstance(obj, OrderedDict) else kept
    if isinstance(obj, (list, tuple, set)):
        return type(obj)(_plain(v) for v in obj if not isinstance(v, Stub))
    return None


def load_lightning_checkpoint(path: str | Path) -> Any:
    """The tensors, containers and primitive values of the checkpoint ``path`` (CPU tensors).

    Raises DataError ``PATH: not a PyTorch checkpoint (...)`` for a file that is not one.
    """
    import torch

    path = Path(path)

    class Unpickler(_Unpickler):
        allowed = _allowed()

    module = types.SimpleNamespace(__name__="bench_restricted_pickle", Unpickler=Unpickler,
                                   load=lambda f, **kw: Unpickler(f, **kw).load())
    try:
        # weights_only=False only selects the given unpickler, whose find_class imports nothing.
        data = torch.load(path, map_location="cpu", weights_only=False, pickle_module=module)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - torch reports bad files with many exception types
        raise DataError(f"{path}: not a PyTorch checkpoint ({type(exc).__name__}: {str(exc)[:120]})") from None
    return _plain(data)
