"""Cards: the TOML files in ``methods/``, ``datasets/`` and ``fr/`` that describe each entry.

Cards are read without importing any implementation, so ``bench list`` stays fast and never
imports torch. Every convention that changes numbers is a required field: a method card
without ``higher_is_better`` is rejected rather than defaulted (pyiqa's silent default
reported FID the wrong way round).
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from bench import paths
from bench.errors import RegistryError

Kind = Literal["method", "dataset", "fr"]

_FOLDERS: dict[str, Path] = {
    "method": paths.METHOD_CARDS,
    "dataset": paths.DATASET_CARDS,
    "fr": paths.FR_CARDS,
}
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
    if data["name"] != path.stem:
        raise RegistryError(f"{path}: card name {data['name']!r} differs from file name {path.stem!r}")
    return Card(kind=kind, name=data["name"], entry=data["entry"], path=path, data=data)


@cache
def load_cards(kind: Kind) -> dict[str, Card]:
    """All cards of one kind, by registered name, sorted by name."""
    folder = _FOLDERS[kind]
    cards = [_parse(kind, p) for p in sorted(folder.glob("*.toml"))]
    return {c.name: c for c in cards}


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
