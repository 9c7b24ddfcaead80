"""Finding model weight files: an explicit ``--weights`` path or ``BENCH_WEIGHTS/<expected name>``.

Cards list the expected files (``[[weights]]`` with ``file``, ``sha256`` when known and
``source``, where the file is published). A missing file is one error line naming both.
"""

from __future__ import annotations

from pathlib import Path

from bench import paths
from bench.cards import Card
from bench.errors import DataError, MissingWeightsError
from bench.io import sha256_file


def expected_weights(card: Card) -> list[dict]:
    """The ``[[weights]]`` entries of a card (empty when the model needs none)."""
    return list(card.get("weights", []))


def resolve_weights(card: Card, explicit: str | Path | None = None, index: int = 0) -> Path:
    """Path of weight file ``index`` of ``card``; MissingWeightsError when absent.

    ``explicit`` may be the file itself or a folder holding the expected file name.
    """
    entries = expected_weights(card)
    if not entries:
        raise MissingWeightsError(f"{card.path}: {card.name} declares no weight files")
    entry = entries[index]
    name = entry["file"]
    candidates: list[Path] = []
    if explicit is not None:
        p = Path(explicit)
        candidates.append(p / Path(name).name if p.is_dir() else p)
    elif (root := paths.weights_dir()) is not None:
        candidates += [root / name, root / Path(name).name]
    for cand in candidates:
        if cand.is_file():
            return cand
    where = f"looked at {', '.join(map(str, candidates))}" if candidates else "pass --weights PATH or set BENCH_WEIGHTS"
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
