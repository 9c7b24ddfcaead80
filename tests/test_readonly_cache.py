"""Issue 22, item 5: a filled cache that this user may not write (a lab's shared crops and
embeddings) serves reads; only missing work needs write access, and then one line names the folder.

Permission bits do not stop root, so as root the reading side runs in a forked child that drops
to ``nobody`` (everything it needs is imported before the fork); other users just lose write
permission on the cache with ``chmod -R a-w``.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from bench.cli import main
from bench.core import registry
from bench.core.errors import DataError
from bench.datasets.crops import CropStore
from bench.pipeline.embeddings import embed_dataset

NOBODY = 65534


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder every user can read and traverse (pytest's own temp folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="fiqa-ro-"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    shutil.rmtree(folder)


def read_only(folder: Path) -> None:
    """``chmod -R a-w folder`` (reading and traversing stay allowed)."""
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def as_reader(fn: Callable[[], None]) -> None:
    """Call ``fn`` as a user the permission bits apply to: this process when it is not root,
    else a forked child that drops to nobody; a failure in the child fails the test with its traceback."""
    if os.geteuid() != 0:
        fn()
        return
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe and its exit code
        os.close(rd)
        code = 0
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            fn()
        except BaseException:  # noqa: BLE001 - pytest's failures too: all go back through the pipe
            os.write(wr, traceback.format_exc().encode())
            code = 1
        os._exit(code)
    os.close(wr)
    report = b""
    while chunk := os.read(rd, 65536):
        report += chunk
    os.close(rd)
    _, status = os.waitpid(pid, 0)
    assert status == 0, report.decode()


def _synthetic() -> tuple:
    fr = registry.create("fr", "synthetic")
    dataset = registry.create("dataset", "synthetic").load(Path("."))
    return fr, dataset, dataset.protocol.used_images()


def test_a_filled_read_only_cache_serves_crops_and_embeddings(shared: Path) -> None:
    fr, dataset, used = _synthetic()
    cache = shared / "cache"
    expected = np.array(embed_dataset(fr, CropStore(dataset, fr.domain, cache), used, progress=False)[used])
    crops_before = CropStore(dataset, fr.domain, cache).get(used)
    read_only(cache)
    files = {p: p.stat().st_mtime_ns for p in cache.rglob("*")}

    def read() -> None:
        store = CropStore(dataset, fr.domain, cache)
        assert_array_equal(store.get(used), crops_before)
        assert_array_equal(embed_dataset(fr, store, used, progress=False)[used], expected)

    as_reader(read)
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*")} == files  # nothing written, nothing added


def test_bench_run_reads_a_read_only_cache(shared: Path) -> None:
    args = ["run", "--method", "oracle", "--fr", "synthetic", "--dataset", "synthetic", "--bootstrap", "0",
            "--no-progress", "--cache", str(shared / "cache")]
    assert main([*args, "--results", str(shared / "mine")]) == 0
    read_only(shared / "cache")
    theirs = shared / "theirs"
    theirs.mkdir(mode=0o777)
    theirs.chmod(0o777)

    def run() -> None:
        assert main([*args, "--results", str(theirs)]) == 0

    as_reader(run)
    assert len(list((theirs / "runs").glob("*.json"))) == 1


def test_missing_work_in_a_read_only_cache_is_one_line_naming_the_folder(shared: Path) -> None:
    fr, dataset, used = _synthetic()
    cache, partial = shared / "cache", shared / "partial"
    store = CropStore(dataset, fr.domain, cache)
    store.ensure(used, progress=False)
    embed_dataset(fr, store, used[:50], progress=False)  # every crop, a quarter of the embeddings
    CropStore(dataset, fr.domain, partial).ensure(used[:50], progress=False)  # a quarter of the crops
    read_only(shared)

    def ask_for_more() -> None:
        with pytest.raises(DataError) as err:
            embed_dataset(fr, CropStore(dataset, fr.domain, cache), used, progress=False)
        message = str(err.value)
        assert "\n" not in message and "not writable" in message and str(cache / "embeddings") in message
        assert f"{len(used) - 50} embedding(s)" in message
        with pytest.raises(DataError) as err:
            CropStore(dataset, fr.domain, partial).ensure(used, progress=False)
        message = str(err.value)
        assert "\n" not in message and "not writable" in message and str(partial / "crops") in message

    as_reader(ask_for_more)
