"""Display names: how a report prints an FR model, a method or a dataset — never as a path.

Registered names print as their card's ``paper_name`` (``cosface`` → ``CosFace``). An FR model
given as a file (``--fr onnx:PATH``) prints as ``onnx:<file stem>-<sha256 prefix>``: the path
says where the file lay on one machine, the hash which model it is. Reference sets store
that same name, so ``--fr onnx:mobilefacenet-112-0c9ad2a8`` selects their cells again.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from bench.core.cards import load_cards

ONNX = "onnx:"
HASH_CHARS = 8


def onnx_name(spec: str, sha256: str | None = None) -> str:
    """``onnx:/models/mobilefacenet-112.onnx`` with weights ``0c9ad2a8…`` → ``onnx:mobilefacenet-112-0c9ad2a8``.

    A name already ending in the hash prefix is returned as it is; without a hash the file
    stem alone is kept (``onnx:mobilefacenet-112``).
    """
    stem = PurePosixPath(spec.removeprefix(ONNX).replace("\\", "/")).name
    if stem.lower().endswith(".onnx"):
        stem = stem[: -len(".onnx")]
    tag = (sha256 or "")[:HASH_CHARS].lower()
    if tag and tag != "none" and not stem.endswith(f"-{tag}"):
        stem = f"{stem}-{tag}"
    return ONNX + stem


def fr_name(fr: str, sha256: str | None = None) -> str:
    """The printed name of an FR model: its card's ``paper_name``, :func:`onnx_name` for a file.

    ``none`` (a method without an FR model) stays ``none``; an unknown name is kept, less any
    folder part.
    """
    if fr.startswith(ONNX):
        return onnx_name(fr, sha256)
    card = load_cards("fr").get(fr)
    return card.paper_name if card is not None else PurePosixPath(fr.replace("\\", "/")).name or fr


def card_name(kind: str, name: str) -> str:
    """The printed name of a method or dataset (its card's ``paper_name``; unknown names, less
    any folder part, as they are)."""
    card = load_cards(kind).get(name)  # type: ignore[arg-type]
    return card.paper_name if card is not None else PurePosixPath(name.replace("\\", "/")).name or name
