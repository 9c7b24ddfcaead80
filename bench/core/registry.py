"""A lazy registry of methods, datasets and FR models (built-in, plug-ins, card folders).

Cards (:mod:`bench.core.cards`) name an entry point ``"bench.methods.diffiqa:DifFIQA"``; the module
is imported only when the entry is asked for, and its class registers itself with
``@register_method(name)``.
Nothing heavy is imported at start-up (mteb's eager registry cost 7-9 s per import), and a
card whose module registers under another name is an error, not a silent miss.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from bench.core.cards import Card, Kind, get_card
from bench.core.errors import RegistryError
from bench.core.optional import missing_dependency
from bench.core.paths import safe_name

T = TypeVar("T")
_REGISTRY: dict[str, dict[str, type]] = {"method": {}, "dataset": {}, "fr": {}}


def _register(kind: str, name: str) -> Callable[[type[T]], type[T]]:
    def decorator(cls: type[T]) -> type[T]:
        known = _REGISTRY[kind].get(name)
        if known is not None and known is not cls:
            raise RegistryError(f"{kind} {name!r} registered twice ({known.__qualname__}, {cls.__qualname__})")
        _REGISTRY[kind][name] = cls
        cls.registered_name = name  # type: ignore[attr-defined]
        return cls

    return decorator


def register_method(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: register a FIQA method under ``name`` (must match its card)."""
    return _register("method", name)


def register_dataset(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: register a dataset loader under ``name`` (must match its card)."""
    return _register("dataset", name)


def register_fr(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: register a face-recognition model under ``name`` (must match its card)."""
    return _register("fr", name)


def _import_entry(card: Card, module_name: str) -> ModuleType:
    """The module of a card's entry.

    Cards from a ``--cards DIR`` folder (``card.root``) may name a file, ``path/to/file.py``,
    relative to ``DIR``; a module name is imported with ``DIR`` first on ``sys.path``. A
    missing optional dependency becomes the one-line install hint of :mod:`bench.core.optional`.
    """
    try:
        if card.root is not None and module_name.endswith(".py"):
            return _import_file(card.root / module_name)
        if card.root is not None and str(card.root) not in sys.path:
            sys.path.insert(0, str(card.root))
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing_dependency(exc, f"{card.kind} {card.name}")
        raise RegistryError(f"{card.path}: cannot import {module_name} ({exc})") from exc
    except ImportError as exc:
        raise RegistryError(f"{card.path}: cannot import {module_name} ({exc})") from exc


def _import_file(path: Path) -> ModuleType:
    """Import a Python file once, under a module name derived from its resolved path."""
    path = path.resolve()
    if not path.is_file():
        raise RegistryError(f"{path}: entry file not found (a card's .py entry is relative to its --cards folder)")
    name = f"fiqa_bench_cards_{safe_name(str(path.with_suffix(''))).replace('.', '_').replace('-', '_')}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before running it: dataclasses and pickling look the module up by name.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def resolve(kind: Kind, name: str) -> type:
    """Import the card's entry point and return the class registered under ``name``."""
    card = get_card(kind, name)
    module_name, _, attr = card.entry.partition(":")
    module = _import_entry(card, module_name)
    cls = _REGISTRY[kind].get(name)
    if cls is None or cls.__name__ != attr or getattr(module, attr, None) is not cls:
        raise RegistryError(f"{card.path}: {card.entry} does not register {kind} {name!r}")
    return cls


def create(kind: Kind, name: str, **kwargs: Any) -> Any:
    """Instantiate the registered class with its card: ``cls(card=card, **kwargs)``."""
    cls = resolve(kind, name)
    return cls(card=get_card(kind, name), **kwargs)


def registered(kind: str) -> dict[str, type]:
    """What has been imported and registered so far (for tests)."""
    return dict(_REGISTRY[kind])
