"""Cards: the TOML files in ``methods/``, ``datasets/`` and ``fr/`` that describe each entry.

Three sources, merged; a name given twice is an error (a plug-in cannot shadow a built-in):

* the built-in cards shipped with the package (:mod:`bench.core.resources`);
* installed plug-ins: an entry point in group ``fiqa_bench.methods`` / ``fiqa_bench.fr`` /
  ``fiqa_bench.datasets`` named after the entry, whose value is the card's ``entry``; the card
  ``<name>.toml`` lies in the folder of the entry's top-level package;
* card folders named by ``--cards DIR`` / ``BENCH_CARDS`` (``DIR/methods/*.toml`` ...), whose
  ``entry`` names a module importable from ``DIR`` or a file ``path/to/file.py:Class``
  relative to ``DIR`` (see :mod:`bench.core.registry`).

Cards are read without importing any implementation, so ``bench list`` stays fast and never
imports torch. Every convention that changes numbers is a required field: a method card
without ``higher_is_better`` is rejected rather than defaulted (pyiqa's silent default
reported FID the wrong way round).
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import tomllib
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from bench.core import paths
from bench.core.errors import RegistryError
from bench.core.options import parse_table

Kind = Literal["method", "dataset", "fr"]

_FOLDERS: dict[str, Path] = {
    "method": paths.METHOD_CARDS,
    "dataset": paths.DATASET_CARDS,
    "fr": paths.FR_CARDS,
}
# Folder of each kind inside a --cards DIR, and the entry-point group suffix.
_SUBFOLDER: dict[str, str] = {"method": "methods", "dataset": "datasets", "fr": "fr"}
ENTRY_POINT_GROUP = "fiqa_bench.{folder}"
_REQUIRED: dict[str, tuple[str, ...]] = {
    "method": ("name", "entry", "version", "higher_is_better", "description"),
    "dataset": ("name", "entry", "paper_name", "description"),
    "fr": ("name", "entry", "version", "description"),
}


@dataclass(frozen=True)
class Card:
    """One parsed card. ``data`` keeps every field; the common ones are attributes."""

    kind: str
    name: str
    entry: str
    path: Path
    data: dict[str, Any] = field(repr=False)
    # The --cards / BENCH_CARDS folder the card came from (its entry is relative to it);
    # None for built-in and entry-point cards, whose entry is an installed module.
    root: Path | None = None

    @property
    def paper_name(self) -> str:
        """The name printed in the paper's tables (falls back to the registered name)."""
        return str(self.data.get("paper_name") or self.data.get("paper_row") or self.name)

    @property
    def description(self) -> str:
        return str(self.data.get("description", ""))

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


def _parse(kind: str, path: Path) -> Card:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{path}: not valid TOML ({exc})") from None
    missing = [k for k in _REQUIRED[kind] if k not in data]
    if missing:
        raise RegistryError(f"{path}: card lacks required field(s) {', '.join(missing)}")
    if kind == "method" and not isinstance(data["higher_is_better"], bool):
        raise RegistryError(f"{path}: higher_is_better must be true or false")
    # Malformed option declarations fail when the card is read, not when a run first uses them.
    parse_table(data.get("options"), str(path))
    if data["name"] != path.stem:
        raise RegistryError(f"{path}: card name {data['name']!r} differs from file name {path.stem!r}")
    return Card(kind=kind, name=data["name"], entry=data["entry"], path=path, data=data)


@cache
def load_cards(kind: Kind) -> dict[str, Card]:
    """All cards of one kind (built-in, plug-ins, card folders), by registered name, sorted.

    No built-in card is an error, not an empty registry: it means the package data is missing.
    """
    folder = _FOLDERS[kind]
    builtin = [_parse(kind, p) for p in sorted(folder.glob("*.toml"))]
    if not builtin:
        raise RegistryError(
            f"{folder}: no {kind} cards found; fiqa-bench's package data is missing: reinstall it "
            "(pip install --force-reinstall fiqa-bench) or run it from a checkout"
        )
    merged: dict[str, Card] = {}
    for card in [*builtin, *_entry_point_cards(kind), *_folder_cards(kind)]:
        known = merged.get(card.name)
        if known is not None:
            raise RegistryError(f"{card.path}: {kind} {card.name!r} is defined already by {known.path}; rename one")
        merged[card.name] = card
    return dict(sorted(merged.items()))


def _folder_cards(kind: str) -> list[Card]:
    """Cards of ``--cards`` / ``BENCH_CARDS`` folders (``DIR/methods/*.toml`` ...)."""
    found = []
    for root in paths.cards_dirs():
        if not root.is_dir():
            raise RegistryError(f"{root}: card folder (--cards / BENCH_CARDS) does not exist")
        for path in sorted((root / _SUBFOLDER[kind]).glob("*.toml")):
            found.append(replace(_parse(kind, path), root=root.resolve()))
    return found


def _entry_point_cards(kind: str) -> list[Card]:
    """Cards of installed plug-ins: ``<name>.toml`` in the entry's top-level package folder.

    The package is located, not imported (``find_spec`` of a top-level name loads nothing).
    """
    found = []
    group = ENTRY_POINT_GROUP.format(folder=_SUBFOLDER[kind])
    for ep in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
        where = f"entry point {ep.name} = {ep.value!r} (group {group})"
        top = ep.value.partition(":")[0].split(".")[0]
        spec = importlib.util.find_spec(top)
        if spec is None or not spec.submodule_search_locations:
            raise RegistryError(f"{where}: {top!r} is not an installed package; its card must ship inside a package")
        candidates = [Path(p) / f"{ep.name}.toml" for p in spec.submodule_search_locations]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise RegistryError(f"{where}: card {candidates[0]} not found; ship it as package data")
        card = _parse(kind, path)
        if card.entry != ep.value:
            raise RegistryError(f"{path}: entry {card.entry!r} differs from the {where}; make them equal")
        found.append(card)
    return found


def use_cards_folder(folder: Path) -> None:
    """Read extra cards from ``folder`` (the ``--cards`` option, which replaces ``BENCH_CARDS``).

    It is set as ``BENCH_CARDS`` so that worker processes started later see the same registry.
    """
    os.environ["BENCH_CARDS"] = str(folder.resolve())
    load_cards.cache_clear()


def get_card(kind: Kind, name: str) -> Card:
    """The card called ``name``; an unknown name raises with a "did you mean"."""
    cards = load_cards(kind)
    if name in cards:
        return cards[name]
    close = difflib.get_close_matches(name, list(cards), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(cards)}"
    raise RegistryError(f"unknown {kind} {name!r}{hint}")


def paper_name(kind: Kind, name: str) -> str:
    """Map a registered name to the paper's printed name (identity when no card says so)."""
    card = load_cards(kind).get(name)
    return card.paper_name if card else name


def registered_name(kind: Kind, printed: str) -> str | None:
    """Inverse of :func:`paper_name`: the registered name whose card prints as ``printed``."""
    for card in load_cards(kind).values():
        if card.paper_name == printed:
            return card.name
    return None
