"""Issue 27: ``make demo``'s report reads the crop cache the demo filled, so it shows face strips.

The demo once built its report without naming its cache, so the report looked in
``$BENCH_CACHE`` / ``~/.cache/fiqa-bench`` and said "No crop cache found" beside a full
``demo-out/cache``. The demo's steps are replaced here by recorders: no data, no model.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest


def test_demo_report_reads_the_demo_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.datasets.fetch
    import bench.pipeline.executors
    import bench.report
    from bench.demo import main

    monkeypatch.delenv("BENCH_CACHE", raising=False)
    monkeypatch.setattr(bench.datasets.fetch, "fetch", lambda *args, **kwargs: None)
    monkeypatch.setattr(bench.pipeline.executors, "execute",
                        lambda *args, **kwargs: SimpleNamespace(failed=[], not_run=[]))
    calls: list[dict] = []
    monkeypatch.setattr(bench.report, "build_report", lambda **kwargs: calls.append(kwargs) or [])
    assert main(["--out", str(tmp_path / "demo")]) == 0
    (call,) = calls
    assert Path(call.get("cache") or "unset") == tmp_path / "demo" / "cache"
