"""A lazy registry of methods, datasets and FR models.

Cards name an entry point ``"bench.methods.diffiqa:DifFIQA"``; the module is imported only
when the entry is asked for, and its class registers itself with ``@register_method(name)``.
Nothing heavy is imported at start-up (mteb's eager registry cost 7-9 s per import), and a
card whose module registers under another name is an error, not a silent miss.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from bench.cards import Kind, get_card
from bench.errors import RegistryError

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


def resolve(kind: Kind, name: str) -> type:
    """Import the card's entry point and return the class registered under ``name``."""
    card = get_card(kind, name)
    module_name, _, attr = card.entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RegistryError(f"{card.path}: cannot import {module_name} ({exc})") from exc
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
