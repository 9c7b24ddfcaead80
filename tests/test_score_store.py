"""Score files: schema, provenance metadata, atomic writes and strict validation."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from bench.core.errors import DataError
from bench.core.score_store import REQUIRED_METADATA, read_scores, scores_for, write_scores

META = {k: "x" for k in REQUIRED_METADATA}


def test_round_trip_keeps_ids_scores_and_metadata(tmp_path) -> None:
    path = tmp_path / "s.parquet"
    write_scores(path, ["a.jpg", "b.jpg"], np.array([0.5, -1.25]), {**META, "method": "m"})
    ids, scores, meta = read_scores(path)
    assert ids == ["a.jpg", "b.jpg"] and scores.tolist() == [0.5, -1.25]
    assert meta["method"] == "m"
    schema = pq.read_schema(path)
    assert [str(t) for t in schema.types] == ["string", "double"]


@pytest.mark.parametrize("ids,scores,match", [
    (["a", "a"], [1.0, 2.0], "1 duplicate image id"),
    (["a", "b"], [1.0, np.nan], "NaN or infinite, first: b"),
    (["a", "b"], [np.inf, 1.0], "NaN or infinite, first: a"),
])
def test_bad_scores_are_refused_and_nothing_is_written(tmp_path, ids, scores, match) -> None:
    path = tmp_path / "s.parquet"
    write_scores(path, ["old"], np.array([1.0]), META)
    with pytest.raises(DataError, match=match):
        write_scores(path, ids, np.array(scores), META)
    assert read_scores(path)[0] == ["old"]  # the earlier file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["s.parquet"]  # no temp file left


def test_missing_metadata_is_refused(tmp_path) -> None:
    with pytest.raises(DataError, match="lacks"):
        write_scores(tmp_path / "s.parquet", ["a"], np.array([1.0]), {"method": "m"})


def test_ids_missing_for_the_protocol_name_file_and_count(tmp_path) -> None:
    path = tmp_path / "s.parquet"
    write_scores(path, ["a", "b"], np.array([1.0, 2.0]), META)
    out = scores_for(path, ["a", "c", "b"], needed=np.array([0, 2]))
    assert out[0] == 1.0 and np.isnan(out[1]) and out[2] == 2.0
    with pytest.raises(DataError, match=r"s.parquet: 1 image id\(s\) of the protocol have no score, first: c"):
        scores_for(path, ["a", "c", "b"], needed=np.array([0, 1]))


def test_corrupt_file_is_one_line_error(tmp_path) -> None:
    path = tmp_path / "s.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(DataError, match="not a readable parquet"):
        read_scores(path)
