"""Nothing committed names a folder of the machine it was made on (issue 27).

Reference sets, run records, curve files, shipped checkpoints and docs once carried
absolute paths of the authoring machine (an ``onnx:`` FR model's path, score-file paths, a
DDPM's training-data path). Every file the repository holds (tracked, or new and not
ignored) is scanned as bytes, binaries included, for such a path.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# A home, scratch or work folder at the start of a path: not inside a URL or a relative path
# (``talhassner.github.io/home/...`` and ``../shared`` are fine).
ABSOLUTE = re.compile(rb"(?<![A-Za-z0-9_./~-])/(?:work|root|home|tmp|Users)/[A-Za-z0-9_.-]")
# (file, the exact text allowed there): a test that must name such a path to test it. Keep it short.
ALLOWED: dict[str, tuple[bytes, ...]] = {}


def _repository_files() -> list[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout
    return [REPO / name for name in listed.decode().split("\0") if name and (REPO / name).is_file()]


def find_absolute_paths(path: Path, allowed: tuple[bytes, ...] = ()) -> list[str]:
    """The absolute paths in one file, with a little context each (allowed texts left out)."""
    data = path.read_bytes()
    for text in allowed:
        data = data.replace(text, b"")
    return [data[max(0, m.start() - 30):m.end() + 40].decode("utf-8", "replace") for m in ABSOLUTE.finditer(data)]


def _rooted(folder: bytes) -> bytes:
    """``/`` + folder, spelled so that this file does not hold the paths it tests with."""
    return b"/" + folder


def test_the_scan_finds_what_it_looks_for(tmp_path: Path) -> None:
    cases = {
        b'"fr": "onnx:' + _rooted(b'work/shared/data/models/mfn.onnx"'): 1,
        b'"score_file": "' + _rooted(b'tmp/work/final/scores/x.parquet"'): 1,
        b"\x80\x02X\x1d\x00\x00\x00" + _rooted(b"root/cache/cfp_all.npy"): 1,
        b"cd " + _rooted(b"home/me/fiqa && bench run"): 1,
        b"https://talhassner.github.io/home/projects/Adience/": 0,
        b"--data-root ../shared/data --cache fiqa-cache": 0,
        b"onnx:mobilefacenet-112-0c9ad2a8": 0,
    }
    for k, (content, expected) in enumerate(cases.items()):
        path = tmp_path / f"case{k}"
        path.write_bytes(content)
        assert len(find_absolute_paths(path)) == expected, content
    path.write_bytes(b"x " + _rooted(b"tmp/allowed-here") + b" y")
    assert find_absolute_paths(path, (_rooted(b"tmp/allowed-here"),)) == []


def test_no_committed_file_holds_an_absolute_path_of_the_authoring_machine() -> None:
    found = {}
    for path in _repository_files():
        rel = path.relative_to(REPO).as_posix()
        hits = find_absolute_paths(path, ALLOWED.get(rel, ()))
        if hits:
            found[rel] = hits[:3]
    assert not found, "absolute paths in committed files (name files relative to a root, or by a display name):\n" + \
        "\n".join(f"{p}: {h}" for p, h in sorted(found.items()))
