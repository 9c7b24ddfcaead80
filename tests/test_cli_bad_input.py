"""Bad input on the command line: exit code 2, one ``error:`` line naming the file or option, no
traceback, and nothing half-written (issue 10). One row per case; add rows to CASES."""

from __future__ import annotations

import errno
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


def _pauc_csv(folder: Path, *changes: dict[str, str]) -> None:
    """``folder/pauc.csv`` with one row per ``changes`` (a paper-protocol DifFIQA x ArcFace x LFW row otherwise)."""
    from bench.results.table import PAUC_COLUMNS

    base = {"discard": "0.3", "fr": "arcface", "method": "diffiqa", "dataset": "lfw", "pauc": "0.695",
            "edc_variant": "fixed-threshold", "fmr": "0.001", "folds": "all", "quality_rule": "min",
            "template_rule": "min", "quality_fr": "cosface", "method_options": "{}", "fr_options": "{}", "seed": "0",
            "n_mated": "3000", "n_nonmated": "3000", "run_id": "r1"}
    rows = [",".join({**base, **c}.get(col, "") for col in PAUC_COLUMNS) for c in changes]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pauc.csv").write_text("\n".join([",".join(PAUC_COLUMNS), *rows]) + "\n")


def _truncated_pauc_csv(root: Path, _: pytest.MonkeyPatch) -> None:
    _pauc_csv(root / "results", {})
    text = (root / "results" / "pauc.csv").read_text()
    (root / "results" / "pauc.csv").write_text(text + text.splitlines()[1][:20] + "\n")


def _pauc_value(**changes: str) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """A results folder whose one pauc.csv row has ``changes`` (issue 22: values outside their range)."""
    return lambda root, _: _pauc_csv(root / "results", changes)


def _results_with_a_run(root: Path, _: pytest.MonkeyPatch | None = None) -> None:
    """``root/results``: one run's pauc.csv row, run record and curve, as `bench run` leaves them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    results = root / "results"
    _pauc_csv(results, {}, {"discard": "0.2", "pauc": "0.7"})
    (results / "runs").mkdir()
    (results / "runs" / "r1.json").write_text('{"run_id": "r1", "method": "diffiqa"}')
    (results / "curves").mkdir()
    pq.write_table(pa.table({"discard_fraction": [0.0, 1.0], "fnmr": [0.1, 0.0]}), results / "curves" / "r1.parquet")


def _tampered_reference(root: Path, _: pytest.MonkeyPatch) -> None:
    """``root/results``: a reference set (frozen from another folder) whose pauc.csv was edited afterwards."""
    from bench.results.reference import Tolerance, freeze

    _results_with_a_run(root / "src")
    freeze(root / "src" / "results", root / "results", Tolerance(0.0, "exact"))
    pauc = root / "results" / "pauc.csv"
    pauc.write_text(pauc.read_text().replace("0.695", "0.600"))


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
    # Issue 22: a freeze never deletes its own input, nor sweeps an unrelated folder into a manifest.
    Case("freeze-into-its-results-folder", "reference freeze {results} --results {results} --force",
         ("{results}: is the results folder {results}",), _results_with_a_run),
    Case("freeze-force-into-a-folder-that-is-no-reference-set", "reference freeze {data} --results {results} --force",
         ("{data}: not empty and not a reference set (no MANIFEST.sha256)",), _results_with_a_run),
    Case("check-against-a-tampered-reference", "check --results {results} --against {results}",
         ("results/pauc.csv: content differs from its sha256 in", "MANIFEST.sha256"), _tampered_reference),
    # Issue 22: numbers read from pauc.csv outside their range.
    Case("check-pauc-negative", "check --results {results}", ("pauc.csv: line 2: column 'pauc' is '-0.5'", "[0, inf)"),
         _pauc_value(pauc="-0.5")),
    Case("check-pauc-infinite", "check --results {results}", ("pauc.csv: line 2: column 'pauc' is 'inf'", "[0, inf)"),
         _pauc_value(pauc="inf")),
    Case("check-discard-above-1", "check --results {results}", ("pauc.csv: line 2: column 'discard' is '1.5'", "(0, 1]"),
         _pauc_value(discard="1.5")),
    Case("check-n-mated-negative", "check --results {results}", ("pauc.csv: line 2: column 'n_mated' is '-3'",),
         _pauc_value(n_mated="-3")),
]


def _env_names_junk(variable: str) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """``variable`` (BENCH_RESULTS, BENCH_CACHE) set to a file, not a folder."""
    return lambda root, monkeypatch: monkeypatch.setenv(variable, str(root / "junk.pth"))


def _truncated_run_record(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _results_with_a_run(root, monkeypatch)
    record = root / "results" / "runs" / "r1.json"
    record.write_text(record.read_text()[:20])


# Issue 22, item 6: numbers out of range and folders that are files are refused before any work;
# a truncated run record and an unreachable Ray cluster are one line each.
RUN_SYNTHETIC = "run --method random --fr synthetic --dataset lfw --data-root {data} --no-progress"
CASES += [
    Case("seed-negative", f"{RUN} --method random --fr synthetic --seed -1", ("--seed -1: must be 0 or more",)),
    Case("batch-size-0", f"{RUN} --method random --fr synthetic --batch-size 0", ("--batch-size 0: must be at least 1",)),
    Case("bootstrap-negative", f"{RUN} --method random --fr synthetic --bootstrap -5",
         ("--bootstrap -5: must be 0 or more",)),
    Case("jobs-0", f"{RUN} --method random --fr synthetic --jobs 0", ("--jobs 0: must be at least 1",)),
    Case("results-under-a-file", f"{RUN_SYNTHETIC} --results {{junk}}/sub",
         ("--results {junk}/sub: {junk} is a file, not a folder",)),
    Case("bench-results-names-a-file", RUN_SYNTHETIC, ("BENCH_RESULTS={junk}: it is a file, not a folder",),
         _env_names_junk("BENCH_RESULTS")),
    Case("cache-names-a-file", f"{RUN} --method random --fr synthetic --cache {{junk}}",
         ("--cache {junk}: it is a file, not a folder",)),
    Case("bench-cache-names-a-file", f"{RUN} --method random --fr synthetic",
         ("BENCH_CACHE={junk}: it is a file, not a folder",), _env_names_junk("BENCH_CACHE")),
    Case("report-on-a-truncated-run-record", "report --source {results} --out {data}/report --no-images",
         ("results/runs/r1.json: cannot read run record",), _truncated_run_record),
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
    lost = before - _files(tmp_path)
    assert not lost, f"deleted: {sorted(map(str, lost))}"
    assert not marker.exists(), "a weight file ran code without --trust-weights"


def _children() -> set[int]:
    """Processes whose parent is this one (a Ray driver would start its cluster's here)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            found.add(int(stat.parent.name))
    return found


def test_an_unreachable_ray_cluster_is_one_error_line_and_starts_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 22, item 4: ray.init on a closed port retried for minutes; now the address is tried
    first, within --ray-timeout, and nothing of Ray is started or left running."""
    ray = pytest.importorskip("ray")
    fixtures.write_lfw(tmp_path / "data")
    before = _children()

    rc = main(["run", "--method", "random", "--fr", "synthetic", "--dataset", "lfw", "--data-root",
               str(tmp_path / "data"), "--results", str(tmp_path / "results"), "--no-progress", "--executor", "ray",
               "--ray-address", "127.0.0.1:1", "--ray-timeout", "3"])

    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert err.startswith("error: --ray-address 127.0.0.1:1: no Ray cluster there"), err
    assert not ray.is_initialized()
    assert _children() <= before, "Ray processes left running"
    assert not (tmp_path / "results").exists()


def _failing(monkeypatch: pytest.MonkeyPatch, under: Path, code: int) -> None:
    """The file system refuses work under ``under`` with errno ``code``, as a real one does:
    read-only (EROFS/EACCES: making a folder there fails, and every write there starts with one)
    or full (ENOSPC: a file's write fails halfway, the error naming no file)."""
    real_mkdir, real_write = os.mkdir, Path.write_text

    def mkdir(path: str | os.PathLike[str], *args: object, **kwargs: object) -> None:
        if Path(path) == under or under in Path(path).parents:
            raise OSError(code, os.strerror(code), str(path))
        real_mkdir(path, *args, **kwargs)  # type: ignore[arg-type]

    def write_text(self: Path, data: str, *args: object, **kwargs: object) -> int:
        if under in self.parents:
            real_write(self, data[: len(data) // 2], *args, **kwargs)  # type: ignore[arg-type]
            raise OSError(code, os.strerror(code))
        return real_write(self, data, *args, **kwargs)  # type: ignore[arg-type]

    if code == errno.ENOSPC:
        monkeypatch.setattr(Path, "write_text", write_text)
    else:
        monkeypatch.setattr(os, "mkdir", mkdir)


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.ENOSPC], ids=errno.errorcode.get)
def test_a_refused_write_is_one_error_line_exit_1_and_nothing_half_written(
        code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 22, item 6: a read-only results folder (tests run as root, so chmod cannot make one)
    or a full disk gave a traceback; now one line naming the file and the reason, exit 1 (I/O),
    no temporary file left, and no pauc.csv row or run record of the failed run."""
    fixtures.write_lfw(tmp_path / "data")
    results = tmp_path / "results"
    results.mkdir()
    _failing(monkeypatch, results, code)

    rc = main(["run", "--method", "random", "--fr", "synthetic", "--dataset", "lfw", "--data-root",
               str(tmp_path / "data"), "--results", str(results), "--no-progress", "--bootstrap", "0"])

    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1, err
    assert err.startswith(f"error: {results}/") and f": {os.strerror(code)}" in err, err
    assert not list(tmp_path.rglob("*.tmp")), "a temporary file was left behind"
    assert not (results / "pauc.csv").exists() and not list(results.rglob("runs/*.json"))


def test_dry_run_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 22, item 6: --dry-run recorded its cells that cannot run in
    ./bench-results/runs/not_run.json; it only prints now."""
    fixtures.write_lfw(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BENCH_RESULTS")
    before = _files(tmp_path)

    rc = main(["run", "--method", "random,cr-fiqa", "--fr", "arcface", "--dataset", "lfw", "--data-root",
               str(tmp_path / "data"), "--dry-run"])

    out = capsys.readouterr().out
    assert rc == 0 and out.count("not run    ") == 2, out
    assert _files(tmp_path) == before, f"written: {sorted(map(str, _files(tmp_path) - before))}"
