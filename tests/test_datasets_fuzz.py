"""Fuzzing the protocol parsers: any input either parses or raises DataError, nothing else."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.core.errors import DataError
from bench.datasets import parsers

# Text built from the tokens these formats use, so the fuzzer reaches deep into the parsers.
_TOKENS = st.sampled_from(["10", "300", "1", "2", "0", "11", "-1", "Abel_Pacheco", "a.jpg", "../x", "x/y",
                           ",", "1,2", "3,1", "../Data/Images/001/frontal/01.jpg", "\t", " ", "é", "99999", "0001"])
_LINE = st.lists(_TOKENS, max_size=5).map(" ".join)
_TEXT = st.one_of(st.text(max_size=200), st.lists(_LINE, max_size=12).map("\n".join))
FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _ok_or_data_error(fn, *args) -> None:
    try:
        fn(*args)
    except DataError:
        pass


@FUZZ
@given(_TEXT)
def test_fuzz_lfw_pairs(text: str) -> None:
    _ok_or_data_error(parsers.parse_lfw_pairs, text, "pairs.txt")


@FUZZ
@given(_TEXT)
def test_fuzz_paired_lines(text: str) -> None:
    _ok_or_data_error(parsers.parse_paired_lines, text, "pairs_CALFW.txt")


@FUZZ
@given(_TEXT, _TEXT)
def test_fuzz_cfp(list_text: str, split_text: str) -> None:
    try:
        frontal = parsers.parse_cfp_list(list_text, "Pair_list_F.txt", "cfp-dataset/Protocol")
    except DataError:
        frontal = {1: "cfp-dataset/Data/Images/001/frontal/01.jpg"}
    for path in frontal.values():
        assert not path.startswith("..") and not path.startswith("/")
    _ok_or_data_error(parsers.parse_cfp_split, split_text, "same.txt", frontal, {1: "p.jpg", 2: "q.jpg"})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_fuzz_bin_bytes(tmp_path_factory, data: bytes) -> None:
    from bench.datasets.insightface_bin import read_bin

    path: Path = tmp_path_factory.mktemp("bin") / "lfw.bin"
    path.write_bytes(data)
    _ok_or_data_error(read_bin, path)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=120))
def test_fuzz_ijbc_pairs(tmp_path_factory, text: str) -> None:
    import numpy as np

    from bench.datasets.ijbc import read_pairs

    path: Path = tmp_path_factory.mktemp("ijbc") / "pairs.txt"
    path.write_text(text, encoding="utf-8")
    _ok_or_data_error(read_pairs, path, np.array([1, 2, 3], dtype=np.int64))
