"""Comparison protocols as index arrays: no Python object per pair (IJB-C has 15.6 M).

A :class:`PairProtocol` compares *subjects*: images, or templates when ``templates`` is set
(IJB-C 1:1 verification). ``a[k]``, ``b[k]`` index the subjects of comparison ``k``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.core.errors import DataError


@dataclass(frozen=True)
class Templates:
    """Template membership, one row per (image, template) occurrence.

    ``image[r]`` indexes the dataset's images, ``template[r]`` is a dense template index in
    ``[0, len(template_ids))`` and ``media[r]`` the media (video / photo) id the image came
    from. ``template_ids`` keeps the original ids for provenance and error messages.
    """

    image: np.ndarray
    template: np.ndarray
    media: np.ndarray
    template_ids: np.ndarray

    @property
    def n_templates(self) -> int:
        return int(len(self.template_ids))


def _ranges(values: list[int]) -> str:
    """Sorted integers as runs: ``[1, 2, 3, 5]`` -> ``1-3, 5``."""
    runs: list[list[int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in runs)


@dataclass(frozen=True)
class PairProtocol:
    """Mated / non-mated comparisons between subjects (images or templates)."""

    a: np.ndarray
    b: np.ndarray
    mated: np.ndarray
    fold: np.ndarray | None = None
    templates: Templates | None = None

    def __post_init__(self) -> None:
        n = len(self.a)
        if len(self.b) != n or len(self.mated) != n or (self.fold is not None and len(self.fold) != n):
            raise DataError("protocol arrays a, b, mated, fold differ in length")
        if self.mated.dtype != np.bool_:
            raise DataError("protocol 'mated' must be a boolean array")

    def __len__(self) -> int:
        return int(len(self.a))

    @property
    def n_mated(self) -> int:
        return int(np.count_nonzero(self.mated))

    @property
    def n_nonmated(self) -> int:
        return len(self) - self.n_mated

    def select_folds(self, folds: list[int] | None, name: str = "this protocol") -> PairProtocol:
        """The comparisons of the given folds only (all when ``folds`` is None).

        A fold the protocol does not have is a DataError naming it and the folds there are
        (``name``: the dataset, for the message), rather than an empty selection.
        """
        if folds is None:
            return self
        shown = ",".join(map(str, folds))
        if self.fold is None:
            raise DataError(f"--folds {shown}: {name} has no folds; leave --folds out")
        have = np.unique(self.fold).tolist()
        missing = [f for f in folds if f not in have]
        if missing or not folds:
            raise DataError(f"--folds {shown}: {name} has folds {_ranges(have)}")
        keep = np.isin(self.fold, np.asarray(folds))
        return PairProtocol(self.a[keep], self.b[keep], self.mated[keep], self.fold[keep], self.templates)

    def used_images(self) -> np.ndarray:
        """Sorted indices of the images this protocol compares (through templates if any)."""
        subjects = np.union1d(self.a, self.b)
        if self.templates is None:
            return subjects
        rows = np.isin(self.templates.template, subjects)
        return np.unique(self.templates.image[rows])


def block_folds(n: int, k: int = 10) -> np.ndarray:
    """Folds 1..k as ``k`` equal consecutive blocks of ``n`` items (the last ones absorb a remainder)."""
    return (np.arange(n, dtype=np.int64) * k // max(n, 1) + 1).astype(np.int64)
