"""Shared fixtures: isolated cache/results folders and the location of the shared real data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.core import paths

SHARED_DATA = paths.REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _isolated_session_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Module- and session-scoped fixtures run before the per-test isolation below: without
    this they would read and write the user's ~/.cache/fiqa-bench and ./bench-results (and a
    report built there would show whatever another process left in that cache)."""
    base = tmp_path_factory.mktemp("session-env")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_CACHE", str(base / "cache"))
        mp.setenv("BENCH_RESULTS", str(base / "results"))
        mp.delenv("BENCH_WEIGHTS", raising=False)
        yield


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own cache and results folder; no test writes into the repo."""
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BENCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("BENCH_WEIGHTS", raising=False)


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, skipping the test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available at {path}")
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread: the test machine's 2 cores are shared, and oversubscription stalls."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
