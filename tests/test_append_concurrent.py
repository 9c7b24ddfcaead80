"""Two runs appending to one results folder at once must keep every row (bench.core.io.append_text)."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from bench.core.io import append_text

WRITERS, ROWS = 4, 25


def _writer(args: tuple[str, int]) -> None:
    target, k = args
    for r in range(ROWS):
        append_text(target, f"{k},{r}\n", header="writer,row\n")


def test_concurrent_appends_keep_every_row(tmp_path: Path) -> None:
    target = tmp_path / "results" / "pauc.csv"
    with mp.get_context("fork").Pool(WRITERS) as pool:
        pool.map(_writer, [(str(target), k) for k in range(WRITERS)])
    lines = target.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "writer,row"
    assert sorted(lines[1:]) == sorted(f"{k},{r}" for k in range(WRITERS) for r in range(ROWS))
    assert [p.name for p in target.parent.iterdir() if p.suffix == ".tmp"] == []
