"""The weights this repository ships (weights/): each listed in weights/weights.toml with its
sha256, at most 25 MB, loadable as what its card says, and none unlisted."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import pytest

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
CARD = WEIGHTS / "weights.toml"
MAX_BYTES = 25 * 1024 * 1024
REQUIRED = ("path", "sha256", "method", "domain", "training_data", "scores", "recipe", "command")


def _entries() -> list[dict]:
    return tomllib.loads(CARD.read_text(encoding="utf-8"))["file"]


def test_every_shipped_file_is_listed_once_with_its_hash_and_size_limit() -> None:
    entries = _entries()
    listed = [e["path"] for e in entries]
    assert len(listed) == len(set(listed))
    on_disk = sorted(p.relative_to(WEIGHTS).as_posix() for p in WEIGHTS.rglob("*") if p.is_file() and p != CARD)
    assert sorted(listed) == on_disk
    for entry in entries:
        assert all(entry.get(k) for k in REQUIRED), entry
        path = WEIGHTS / entry["path"]
        assert path.stat().st_size <= MAX_BYTES, path
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], f"{path}: sha256 differs from {CARD}"


@pytest.mark.parametrize("entry", _entries(), ids=lambda e: e["path"])
def test_ddpm_files_load_for_the_domain_their_card_names(entry: dict) -> None:
    if entry["method"] != "diffiqa":
        pytest.skip("not a DDPM")
    from bench.diffusion.checkpoint import load_checkpoint

    ckpt = load_checkpoint(WEIGHTS / entry["path"])
    assert ckpt.domain == entry["domain"] and ckpt.step == entry["steps"]
