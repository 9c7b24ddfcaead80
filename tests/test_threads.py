"""The per-process thread budget (bench.core.threads) and where the entry points apply it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bench.core import threads
from bench.core.errors import BenchError

VARS = (threads.ENV, *threads.LIBRARY_ENV, threads.WAIT_POLICY[0])


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No thread variables set; monkeypatch restores whatever apply() writes."""
    for name in VARS:
        monkeypatch.delenv(name, raising=False)
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    yield monkeypatch
    torch = sys.modules.get("torch")
    if torch is not None and before is not None:
        torch.set_num_threads(before)


def test_budget_is_cores_per_worker_unless_given(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setattr(threads, "cores", lambda: 8)
    assert threads.budget() == 8
    assert threads.budget(workers=3) == 2
    assert threads.budget(workers=16) == 1
    assert threads.budget(workers=3, threads=5) == 5
    clean_env.setenv(threads.ENV, "3")
    assert threads.budget(workers=4) == 3
    assert threads.budget(workers=4, threads=1) == 1


@pytest.mark.parametrize("given, env", [(0, None), (None, "0"), (None, "two")])
def test_bad_budgets_are_one_line_errors(clean_env: pytest.MonkeyPatch, given: int | None, env: str | None) -> None:
    if env is not None:
        clean_env.setenv(threads.ENV, env)
    with pytest.raises(BenchError, match="--threads|BENCH_THREADS"):
        threads.budget(threads=given)


def test_apply_sets_every_library_and_a_passive_wait(clean_env: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    assert threads.apply(1) == 1
    assert all(os.environ[name] == "1" for name in threads.LIBRARY_ENV)
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert torch.get_num_threads() == 1
    clean_env.setenv("OMP_WAIT_POLICY", "ACTIVE")  # a user's own setting is kept
    threads.apply(2)
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE" and torch.get_num_threads() == 2


def test_explicit_threads_reach_workers(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setattr(threads, "cores", lambda: 4)
    assert threads.configure() == 4 and threads.ENV not in os.environ
    assert threads.worker_env(2) == {threads.ENV: "2"}
    assert threads.configure(3) == 3 and os.environ[threads.ENV] == "3"
    assert threads.worker_env(2) == {threads.ENV: "3"}


def test_pool_workers_apply_the_drivers_share(clean_env: pytest.MonkeyPatch) -> None:
    from bench.pipeline.executors import local

    local._worker_threads({threads.ENV: "1"})
    assert os.environ["OMP_NUM_THREADS"] == "1"


def test_a_fresh_process_gets_its_budget_before_torch_starts() -> None:
    """``bench --threads 1`` in a new process: torch, imported by the subcommand, has one thread."""
    pytest.importorskip("torch")
    code = ("import sys; from bench.cli import main; import bench.cli as c; "
            "c._cmd_list = lambda a: print(__import__('torch').get_num_threads()) or 0; "
            "sys.exit(main(['--threads', '1', 'list', 'methods']))")
    env = {k: v for k, v in os.environ.items() if k not in VARS}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_cli_rejects_a_zero_budget() -> None:
    from bench.cli import main

    assert main(["--threads", "0", "list", "methods"]) == 2
