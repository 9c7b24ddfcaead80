"""Bad input on the command line: exit code 2, one ``error:`` line naming the file or option, no
traceback, and nothing half-written (issue 10). One row per case; add rows to CASES."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.datasets import fixtures


class _Mkdir:
    """Unpickling this runs os.mkdir(path): what a hostile weight file can do."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple:
        return (os.mkdir, (self.path,))


@dataclass(frozen=True)
class Case:
    """``argv`` may use {data} (an LFW fixture: 2 folds), {results}, {junk} (random bytes) and
    {evil} (a checkpoint that runs code when fully unpickled); ``expect``: substrings of the error line."""

    id: str
    argv: str
    expect: tuple[str, ...]
    prepare: Callable[[Path, pytest.MonkeyPatch], None] | None = field(default=None)


def _malformed_pairs_line(root: Path, _: pytest.MonkeyPatch) -> None:
    pairs = root / "data" / "lfw" / "pairs.txt"
    lines = pairs.read_text().splitlines()
    lines[1] += "\t3"  # a mated line 'name n1 n2' with an extra token
    pairs.write_text("\n".join(lines) + "\n")


def _cpu_only_torch(_: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)


def _truncated_pauc_csv(root: Path, _: pytest.MonkeyPatch) -> None:
    from bench.results.table import PAUC_COLUMNS

    row = "0.3,arcface,diffiqa,lfw,0.695,,,fixed-threshold,0.001,all,min,min,cosface,{},{},0,3000,3000,r1"
    (root / "results").mkdir()
    (root / "results" / "pauc.csv").write_text(f"{','.join(PAUC_COLUMNS)}\n{row}\n{row[:20]}\n")


RUN = "run --dataset lfw --data-root {data} --results {results} --no-progress"

CASES = [
    Case("option-bad-value", f"{RUN} --method ser-fiq --fr synthetic --method-option passes=abc",
         ("--method-option passes=abc: expected an integer (passes: stochastic forward passes",)),
    Case("option-unknown-key", f"{RUN} --method ser-fiq --fr synthetic --method-option pases=2",
         ("--method-option pases=2", "did you mean passes?")),
    Case("option-on-a-method-without-options", f"{RUN} --method random --fr synthetic --method-option x=1",
         ("--method-option x=1", "unknown option of random")),
    Case("fr-option-unknown-key", f"{RUN} --method random --fr synthetic --fr-option color=BGR",
         ("--fr-option color=BGR", "unknown option of synthetic")),
    Case("option-not-key-value", f"{RUN} --method ser-fiq --fr synthetic --method-option passes",
         ("--method-option 'passes': expected KEY=VALUE",)),
    Case("folds-0", f"{RUN} --method random --fr synthetic --folds 0", ("--folds 0", "has folds 1-2")),
    Case("folds-11", f"{RUN} --method random --fr synthetic --folds 11", ("--folds 11", "has folds 1-2")),
    Case("folds-not-numbers", f"{RUN} --method random --fr synthetic --folds one", ("--folds 'one'",)),
    Case("device-cuda-on-cpu-torch", f"{RUN} --method random --fr synthetic --device cuda",
         ("--device cuda: this torch (", "has no CUDA; use --device cpu"), _cpu_only_torch),
    Case("device-unknown", f"{RUN} --method random --fr synthetic --device gpu", ("--device gpu",)),
    Case("method-weights-random-bytes", f"{RUN} --method cr-fiqa --fr synthetic --weights {{junk}}",
         ("{junk}: not a PyTorch checkpoint (",)),
    Case("fr-weights-random-bytes", f"{RUN} --method random --fr arcface --fr-weights {{junk}}",
         ("{junk}: not a PyTorch checkpoint (",)),
    Case("weights-need-trust", f"{RUN} --method cr-fiqa --fr synthetic --weights {{evil}}",
         ("{evil}: loading needs unpickling of arbitrary objects", "--trust-weights")),
    Case("fr-weights-missing", f"{RUN} --method random --fr arcface", ("arcface", "--fr-weights")),
    Case("pairs-line-extra-token", f"{RUN} --method random --fr synthetic",
         ("pairs.txt:2:", "'name n1 n2'"), _malformed_pairs_line),
    Case("list-datasets-options", "list datasets --options", ("--options",)),
    # Rows of other findings of issue 10 (zero-byte image, `bench report --out` naming an
    # existing file) go here.
    Case("report-out-is-a-file", "report --source published --out {junk}", ("--out {junk}", "is a file, not a folder")),
    Case("datasets-data-root-missing", "datasets --data-root {results}", ("--data-root {results}: not found",)),
    Case("check-edc-variant-unknown", "check --results {results} --edc-variant foo",
         ("--edc-variant foo: unknown EDC variant", "fixed-threshold")),
    Case("check-pauc-csv-truncated", "check --results {results}", ("pauc.csv: line 3:", "truncated"), _truncated_pauc_csv),
]


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_error_line(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    fixtures.write_lfw(tmp_path / "data")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "payload": _Mkdir(marker)}, evil)
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    if case.prepare is not None:
        case.prepare(tmp_path, monkeypatch)
    names = {"data": tmp_path / "data", "results": tmp_path / "results", "junk": junk, "evil": evil}
    before = _files(tmp_path)

    rc = main([part.format(**names) for part in case.argv.split()])

    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("error: "), err
    for text in case.expect:
        assert text.format(**names) in lines[0], lines[0]
    written = {p for p in _files(tmp_path) - before if p.name != "not_run.json"}
    assert not written, f"left behind: {sorted(map(str, written))}"
    assert not marker.exists(), "a weight file ran code without --trust-weights"
