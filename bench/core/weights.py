"""Finding model weight files: an explicit ``--weights`` / ``--fr-weights`` file or folder, or ``BENCH_WEIGHTS``.

Cards list the expected files (``[[weights]]`` with ``file``, ``sha256`` when known and
``source``, where the file is published). A missing file is one error line naming both.
"""

from __future__ import annotations

from pathlib import Path

from bench.core import paths
from bench.core.cards import Card
from bench.core.errors import DataError, MissingWeightsError
from bench.core.io import sha256_file


def expected_weights(card: Card) -> list[dict]:
    """The ``[[weights]]`` entries of a card (empty when the model needs none)."""
    return list(card.get("weights", []))


def _in_folder(folder: Path, name: str) -> list[Path]:
    """Where a folder may hold the card's file ``name``: under its relative path, then by its base name."""
    return list(dict.fromkeys([folder / name, folder / Path(name).name]))


def resolve_weights(card: Card, explicit: str | Path | None = None, index: int = 0, flag: str | None = None) -> Path:
    """Path of weight file ``index`` of ``card``; MissingWeightsError when absent.

    ``explicit`` may be the file itself or a folder, looked into exactly as ``BENCH_WEIGHTS``
    is. ``flag`` is the command-line option that gives it, for the message (default
    ``--fr-weights`` for FR models, ``--weights`` for methods).
    """
    flag = flag or ("--fr-weights" if card.kind == "fr" else "--weights")
    entries = expected_weights(card)
    if not entries:
        raise MissingWeightsError(f"{card.path}: {card.name} declares no weight files")
    entry = entries[index]
    name = entry["file"]
    candidates: list[Path] = []
    if explicit is not None:
        p = Path(explicit)
        candidates += _in_folder(p, name) if p.is_dir() else [p]
    elif (root := paths.weights_dir()) is not None:
        candidates += _in_folder(root, name)
    for cand in candidates:
        if cand.is_file():
            return cand
    hint = f"pass {flag} FILE_OR_FOLDER or set BENCH_WEIGHTS"
    where = f"looked at {', '.join(map(str, candidates))}; {hint}" if candidates else hint
    source = entry.get("source", "see the card")
    raise MissingWeightsError(
        f"{card.name}: weight file {name!r} not found ({where}); published at {source}"
    )


def verified_sha256(card: Card, path: Path, index: int = 0) -> str:
    """sha256 of ``path``; a mismatch with the card's recorded hash is an error."""
    digest = sha256_file(path)
    expected = expected_weights(card)[index].get("sha256") if expected_weights(card) else None
    if expected and expected != digest:
        raise DataError(f"{path}: sha256 {digest[:12]}… differs from the card's {expected[:12]}… ({card.path})")
    return digest
