"""Exact parsers of the text protocol files (LFW/XQLFW pairs, CALFW/CPLFW pairs, CFP lists).

Each parser takes the file's text and a ``source`` label (the path, for messages) and either
returns the pairs or raises one DataError ``source:line: problem: 'offending text'``. They
never touch the disk, so they are fuzzed directly (tests/test_datasets_fuzz.py).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

import numpy as np

from bench.core.errors import DataError
from bench.datasets.protocol import block_folds

MAX_IMAGE_NUMBER = 9999  # LFW names images <name>_%04d.jpg


@dataclass(frozen=True)
class RawPairs:
    """Pairs as image paths (relative to the images folder), before indexing."""

    a: list[str]
    b: list[str]
    mated: np.ndarray
    fold: np.ndarray | None


def _bad(source: str, line: int, problem: str, text: str) -> DataError:
    shown = text if len(text) <= 80 else text[:77] + "..."
    return DataError(f"{source}:{line}: {problem}: {shown!r}")


def _lines(text: str) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers."""
    return [(k + 1, s) for k, s in enumerate(text.splitlines()) if s.strip()]


def _safe_name(name: str) -> bool:
    """A file or folder name that cannot leave the dataset folder."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\0" not in name


def _int(token: str) -> int | None:
    """A non-negative decimal integer of at most 12 digits, else None."""
    return int(token) if token.isascii() and token.isdigit() and len(token) <= 12 else None


def _image_number(token: str) -> int | None:
    value = _int(token)
    return value if value is not None and 1 <= value <= MAX_IMAGE_NUMBER else None


def lfw_image(name: str, number: int) -> str:
    """LFW's file naming: ``<name>/<name>_%04d.jpg``."""
    return f"{name}/{name}_{number:04d}.jpg"


def parse_lfw_pairs(text: str, source: str) -> RawPairs:
    """LFW View 2 ``pairs.txt`` (also XQLFW's ``xqlfw_pairs.txt``).

    Header ``folds n`` (``10 300``), then per fold ``n`` mated lines ``name n1 n2`` and ``n``
    non-mated lines ``name1 n1 name2 n2``; fold of pair k is ``k // (2 n) + 1``. A one-number
    header (View 1 files) gives a single fold.
    """
    lines = _lines(text)
    if not lines:
        raise DataError(f"{source}: empty pairs file")
    head_no, head = lines[0]
    head_tokens = head.split()
    if not 1 <= len(head_tokens) <= 2 or any(_int(t) is None for t in head_tokens):
        raise _bad(source, head_no, "expected a header 'folds pairs_per_class' (e.g. '10 300')", head)
    sizes = [int(t) for t in head_tokens]
    if min(sizes) < 1:
        raise _bad(source, head_no, "header counts must be positive", head)
    a: list[str] = []
    b: list[str] = []
    mated: list[bool] = []
    for no, line in lines[1:]:
        tokens = line.split()
        if len(tokens) == 3:
            name, n1, n2 = tokens[0], _image_number(tokens[1]), _image_number(tokens[2])
            if not _safe_name(name) or n1 is None or n2 is None:
                raise _bad(source, no, "expected 'name n1 n2' with image numbers 1..9999", line)
            a.append(lfw_image(name, n1))
            b.append(lfw_image(name, n2))
            mated.append(True)
        elif len(tokens) == 4:
            name1, n1, name2, n2 = tokens[0], _image_number(tokens[1]), tokens[2], _image_number(tokens[3])
            if _int(name2) is not None:
                # No LFW name is a number: this is a mated line 'name n1 n2' with a token too many.
                raise _bad(source, no, "expected 'name n1 n2' (mated) or 'name1 n1 name2 n2' (non-mated); "
                           "the third token is a number, not a name", line)
            if not _safe_name(name1) or not _safe_name(name2) or n1 is None or n2 is None:
                raise _bad(source, no, "expected 'name1 n1 name2 n2' with image numbers 1..9999", line)
            a.append(lfw_image(name1, n1))
            b.append(lfw_image(name2, n2))
            mated.append(False)
        else:
            raise _bad(source, no, f"expected 3 tokens (mated) or 4 tokens (non-mated), got {len(tokens)}", line)
    if not a:
        raise DataError(f"{source}: no pairs after the header")
    if len(sizes) == 2:
        folds, per_class = sizes
        if folds * 2 * per_class != len(a):
            raise DataError(f"{source}: header says {folds} folds x {per_class} mated + {per_class} non-mated, found {len(a)} pairs")
        fold = np.arange(len(a), dtype=np.int64) // (2 * per_class) + 1
    else:
        fold = np.ones(len(a), dtype=np.int64)
    return RawPairs(a, b, np.asarray(mated, dtype=bool), fold)


def parse_paired_lines(text: str, source: str, n_folds: int = 10) -> RawPairs:
    """CALFW / CPLFW ``pairs_*.txt``: no header, two consecutive ``filename label`` lines per pair.

    Label 0 = non-mated, 1..``n_folds`` = mated in that fold; both lines of a pair carry the
    same label. Non-mated pairs carry no fold, so the rule here is: the non-mated pairs, in file
    order, form ``n_folds`` equal consecutive blocks (block k = fold k). The official files list
    300 non-mated pairs per fold in fold order, so this gives 300 per fold.
    """
    lines = _lines(text)
    if not lines:
        raise DataError(f"{source}: empty pairs file")
    if len(lines) % 2:
        no, line = lines[-1]
        raise _bad(source, no, "odd number of lines: this line has no partner", line)
    a: list[str] = []
    b: list[str] = []
    labels: list[int] = []
    for k in range(0, len(lines), 2):
        entries = []
        for no, line in lines[k : k + 2]:
            tokens = line.split()
            if len(tokens) != 2 or not _safe_name(tokens[0]) or _int(tokens[1]) is None:
                raise _bad(source, no, "expected 'filename label'", line)
            label = int(tokens[1])
            if label > n_folds:
                raise _bad(source, no, f"label must be 0 (non-mated) or 1..{n_folds} (mated fold)", line)
            entries.append((tokens[0], label))
        (name1, label1), (name2, label2) = entries
        if label1 != label2:
            no, line = lines[k + 1]
            raise _bad(source, no, f"label {label2} differs from the previous line's {label1} (same pair)", line)
        a.append(name1)
        b.append(name2)
        labels.append(label1)
    lab = np.asarray(labels, dtype=np.int64)
    mated = lab > 0
    fold = lab.copy()
    fold[~mated] = block_folds(int(np.count_nonzero(~mated)), n_folds)
    return RawPairs(a, b, mated, fold)


def parse_cfp_list(text: str, source: str, base: str) -> dict[int, str]:
    """CFP ``Pair_list_F.txt`` / ``Pair_list_P.txt``: ``index relpath`` lines.

    ``relpath`` is relative to the Protocol folder (``../Data/Images/001/frontal/01.jpg``);
    ``base`` is the Protocol folder relative to the dataset folder. Returned paths are
    relative to the dataset folder and may not leave it.
    """
    out: dict[int, str] = {}
    for no, line in _lines(text):
        tokens = line.split()
        if len(tokens) != 2 or _int(tokens[0]) is None:
            raise _bad(source, no, "expected 'index relative/path.jpg'", line)
        index = int(tokens[0])
        if index in out:
            raise _bad(source, no, f"index {index} listed twice", line)
        path = posixpath.normpath(posixpath.join(base, tokens[1].replace("\\", "/")))
        if tokens[1].startswith("/") or path == "." or path.startswith("../") or path == ".." or "\0" in path:
            raise _bad(source, no, "path leaves the dataset folder", line)
        out[index] = path
    if not out:
        raise DataError(f"{source}: empty image list")
    return out


def parse_cfp_split(text: str, source: str, frontal: dict[int, str], profile: dict[int, str]) -> tuple[list[str], list[str]]:
    """CFP ``Split/FP/NN/same.txt`` or ``diff.txt``: ``f,p`` lines, 1-based indices into the
    frontal and profile lists. Returns the (frontal, profile) image paths per pair."""
    a: list[str] = []
    b: list[str] = []
    for no, line in _lines(text):
        tokens = [t.strip() for t in line.split(",")]
        if len(tokens) != 2 or _int(tokens[0]) is None or _int(tokens[1]) is None:
            raise _bad(source, no, "expected 'frontal_index,profile_index'", line)
        f, p = int(tokens[0]), int(tokens[1])
        if f not in frontal:
            raise _bad(source, no, f"frontal index {f} is not in Pair_list_F.txt", line)
        if p not in profile:
            raise _bad(source, no, f"profile index {p} is not in Pair_list_P.txt", line)
        a.append(frontal[f])
        b.append(profile[p])
    return a, b
