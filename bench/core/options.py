"""Options declared on cards: each method / FR option has a type, a default and one line of help.

A card declares its options as tables::

    [options.passes]
    type = "int"          # int, float, bool or str
    default = 100
    help = "stochastic forward passes"
    choices = [...]       # optional: the only values allowed

:func:`resolve` turns what the user gave (text from ``--method-option KEY=VALUE``, or typed
values from Python) into every declared option with its default filled in and its type
checked. An undeclared key is an error with a did-you-mean, never silently ignored: a typo
would otherwise run the defaults under a name that claims otherwise. ``non_default`` holds
only the options that differ from their defaults, so a run spelling out a default shares the
identity (and the score file) of a run that leaves it out.

This module reads cards only; it never imports torch.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.core.errors import BenchError, RegistryError

if TYPE_CHECKING:
    from bench.core.cards import Card

TYPES = ("int", "float", "bool", "str")
_FIELDS = {"type", "default", "help", "choices"}
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")
_EXPECTED = {"int": "an integer", "float": "a finite number", "bool": "true or false", "str": "text"}
_FLAGS = {"method": "--method-option", "fr": "--fr-option"}


class OptionError(BenchError):
    """An option given by the user is undeclared or has a value of the wrong type."""


@dataclass(frozen=True)
class OptionSpec:
    """One declared option of a card."""

    name: str
    type: str
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class ResolvedOptions:
    """Every declared option (defaults filled, typed) and the subset differing from the defaults."""

    values: dict[str, Any]
    non_default: dict[str, Any]


def _typed(kind: str, value: Any) -> Any:
    """``value`` as option type ``kind``; ValueError when it is not one.

    Text is parsed (it comes from the command line); typed values must already be of the
    type, except that an int is a valid float and a path a valid str.
    """
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            return int(value.strip())
        raise ValueError
    if kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            number = float(value.strip())
        else:
            raise ValueError
        if not math.isfinite(number):
            raise ValueError
        return number
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    raise ValueError


def _card_typed(kind: str, value: Any) -> Any:
    """A card value as type ``kind``. Cards are TOML-typed, so text is never parsed as a number or bool."""
    if isinstance(value, str) and kind != "str":
        raise ValueError
    return _typed(kind, value)


def parse_table(table: Any, source: str) -> dict[str, OptionSpec]:
    """The option declarations of a card's ``[options]`` table; RegistryError naming ``source`` if malformed."""
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise RegistryError(f"{source}: 'options' must be a table of [options.NAME] tables (type, default, help)")
    specs: dict[str, OptionSpec] = {}
    for name, decl in table.items():
        where = f"{source}: [options.{name}]"
        if not _NAME.match(name):
            raise RegistryError(f"{where}: option names are lower-case letters, digits and '_'")
        if not isinstance(decl, dict):
            raise RegistryError(f"{where}: expected a table with type, default and help, got {decl!r}")
        missing = sorted({"type", "default", "help"} - set(decl))
        if missing:
            raise RegistryError(f"{where}: lacks {', '.join(missing)}")
        unknown = sorted(set(decl) - _FIELDS)
        if unknown:
            raise RegistryError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_FIELDS))}")
        kind = decl["type"]
        if kind not in TYPES:
            raise RegistryError(f"{where}: type must be one of {', '.join(TYPES)}, got {kind!r}")
        text = decl["help"]
        if not isinstance(text, str) or not text.strip() or "\n" in text:
            raise RegistryError(f"{where}: help must be one non-empty line of text")
        try:
            default = _card_typed(kind, decl["default"])
        except ValueError:
            raise RegistryError(f"{where}: default {decl['default']!r} is not {_EXPECTED[kind]}") from None
        choices = None
        if "choices" in decl:
            raw = decl["choices"]
            if not isinstance(raw, list) or not raw:
                raise RegistryError(f"{where}: choices must be a non-empty list")
            try:
                choices = tuple(_card_typed(kind, c) for c in raw)
            except ValueError:
                raise RegistryError(f"{where}: every choice must be {_EXPECTED[kind]}") from None
            if default not in choices:
                raise RegistryError(f"{where}: default {default!r} is not one of the choices {list(choices)}")
        specs[name] = OptionSpec(name=name, type=kind, default=default, help=text.strip(), choices=choices)
    return specs


def declared(card: Card) -> dict[str, OptionSpec]:
    """The options ``card`` declares, by name (empty when it declares none)."""
    return parse_table(card.get("options"), str(card.path))


def _shown(value: Any) -> str:
    """A value as the user would type it on the command line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return os.fspath(value) if isinstance(value, (str, os.PathLike)) else repr(value)


def _either(choices: tuple[Any, ...]) -> str:
    """``a, b or c``."""
    shown = [_shown(c) for c in choices]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def resolve(card: Card, given: dict[str, Any], flag: str | None = None) -> ResolvedOptions:
    """Every option of ``card`` typed and with defaults filled in from the ``given`` ones.

    ``flag`` names the command-line option in messages (default ``--method-option`` or
    ``--fr-option`` by the card's kind). Raises OptionError for an undeclared key (with a
    did-you-mean) or a value that is not of the declared type or not one of the choices.
    """
    flag = flag or _FLAGS.get(card.kind, "option")
    specs = declared(card)
    values = {name: spec.default for name, spec in specs.items()}
    non_default: dict[str, Any] = {}
    for key, raw in given.items():
        spec = specs.get(key)
        if spec is None:
            close = difflib.get_close_matches(key, list(specs), n=1)
            hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(specs) or 'none'}"
            raise OptionError(f"{flag} {key}={_shown(raw)}: unknown option of {card.name}; {hint} "
                              f"(bench list {'fr' if card.kind == 'fr' else 'methods'} --options)")
        try:
            value = _typed(spec.type, raw)
        except ValueError:
            raise OptionError(f"{flag} {key}={_shown(raw)}: expected {_EXPECTED[spec.type]} ({key}: {spec.help})") from None
        if spec.choices is not None and value not in spec.choices:
            raise OptionError(f"{flag} {key}={_shown(raw)}: expected {_either(spec.choices)} ({key}: {spec.help})")
        values[key] = value
        if value != spec.default:
            non_default[key] = value
    return ResolvedOptions(values=values, non_default=dict(sorted(non_default.items())))


def describe(card: Card) -> list[str]:
    """One aligned line per declared option: name, type (or choices), default and help (``bench list --options``)."""
    rows = [(spec.name, spec.type if spec.choices is None else "|".join(map(_shown, spec.choices)),
             _shown(spec.default) if spec.default != "" else '""', spec.help) for spec in declared(card).values()]
    if not rows:
        return []
    widths = [max(len(row[k]) for row in rows) for k in range(3)]
    return [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}" for a, b, c, d in rows]
