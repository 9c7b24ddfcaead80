"""Progress: one bar per stage over its images, not a new "0/1" bar per checkpoint batch."""

from __future__ import annotations

import re

import pytest

from bench.methods.mock import RandomQuality
from bench.pipeline.runner import RunConfig, run


def test_scoring_shows_one_bar_over_all_images(tmp_path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RandomQuality, "checkpoint_batches", True)  # checkpointed every batch_size images
    record = run(RunConfig(method="random", fr="synthetic", dataset="synthetic", results=tmp_path / "res",
                           cache=tmp_path / "cache", batch_size=8, bootstrap=0, progress=True))
    err = capsys.readouterr().err
    bars = set(re.findall(r"score random \[synthetic\]:\s+\d+%\|[^|]*\|\s*\d+/(\d+)", err))
    assert bars == {str(record["n_images"])}, err[-500:]
    assert not re.search(r"score random:.*0/1\b", err)
