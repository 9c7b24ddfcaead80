"""A small Python API for people who already have quality scores and similarities.

The functions call the same code as ``bench run`` and ``bench report`` (:mod:`bench.stats.edc`,
:mod:`bench.pipeline.similarity`, :func:`bench.report.build_report`); nothing is re-implemented here.

>>> result = evaluate(similarity=[0.9, 0.2, 0.8, 0.1, 0.3], mated=[1, 1, 1, 0, 0],
...                   quality_a=[0.9, 0.1, 0.5, 0.5, 0.5], quality_b=[0.8, 0.9, 0.7, 0.5, 0.5],
...                   discards=(0.5,))
>>> result.n_mated, result.n_nonmated, round(result.pauc[0.5], 4)
(3, 2, 0.6667)

Bootstrap confidence intervals (:mod:`bench.stats.bootstrap`) take the same per-comparison arrays
as :func:`evaluate` (mated similarity and pair quality, non-mated similarity) plus the
resampling units; :attr:`Evaluation.comparisons` keeps those arrays for that purpose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from bench.core.errors import DataError
from bench.datasets.protocol import PairProtocol
from bench.pipeline.similarity import Comparisons, compare
from bench.stats import edc as edc_engine

DEFAULT_DISCARDS: tuple[float, ...] = (0.2, 0.3)


@dataclass(frozen=True)
class Evaluation:
    """An EDC curve, its normalised pAUC at each discard limit, and the comparisons behind it."""

    curve: edc_engine.Edc
    pauc: dict[float, float]
    comparisons: Comparisons

    @property
    def n_mated(self) -> int:
        return len(self.comparisons.mated_similarity)

    @property
    def n_nonmated(self) -> int:
        return len(self.comparisons.nonmated_similarity)


def _oriented(quality: npt.ArrayLike, higher_is_better: bool, name: str) -> np.ndarray:
    """Qualities as higher-is-better floats; NaN (no score) ranks lowest, as in ``bench run``."""
    values = np.asarray(quality, dtype=np.float64)
    if values.ndim != 1:
        raise DataError(f"{name}: expected a 1-D array of qualities, got shape {values.shape}")
    values = values if higher_is_better else -values
    return np.nan_to_num(values, nan=-np.inf)


def _finish(comps: Comparisons, variant: str, fmr: float, discards: Sequence[float]) -> Evaluation:
    if len(comps.mated_similarity) == 0 or len(comps.nonmated_similarity) == 0:
        raise DataError("need at least one mated and one non-mated comparison")
    curve = edc_engine.compute_edc(variant, comps.mated_similarity, comps.mated_quality,
                                   comps.nonmated_similarity, comps.nonmated_quality, fmr)
    return Evaluation(curve, {float(d): edc_engine.pauc(curve, float(d)) for d in discards}, comps)


def evaluate(similarity: npt.ArrayLike, mated: npt.ArrayLike, quality_a: npt.ArrayLike, quality_b: npt.ArrayLike, *,
             higher_is_better: bool = True, variant: str = "fixed-threshold", fmr: float = 1e-3,
             discards: Sequence[float] = DEFAULT_DISCARDS, quality_rule: str = "min") -> Evaluation:
    """EDC and pAUC from per-comparison arrays.

    ``similarity[i]`` is comparison i's similarity (higher = more alike), ``mated[i]`` whether
    both images show the same person, ``quality_a[i]`` / ``quality_b[i]`` the qualities of its
    two images (lower-is-better scores: pass ``higher_is_better=False``). ``variant`` is
    ``fixed-threshold`` (the paper's) or ``recomputed-threshold``; ``quality_rule`` makes the
    pair quality (``min``, ``mean``, ``product``). Conventions: :mod:`bench.stats.edc`.
    """
    sim = np.asarray(similarity, dtype=np.float64)
    is_mated = np.asarray(mated).astype(bool)
    q_a = _oriented(quality_a, higher_is_better, "quality_a")
    q_b = _oriented(quality_b, higher_is_better, "quality_b")
    if not (sim.ndim == 1 and len(sim) == len(is_mated) == len(q_a) == len(q_b)):
        raise DataError(f"similarity, mated, quality_a and quality_b must be 1-D and of equal length, got "
                        f"{sim.shape}, {is_mated.shape}, {q_a.shape}, {q_b.shape}")
    pq = edc_engine.pair_quality(q_a, q_b, quality_rule)
    comps = Comparisons(sim[is_mated], pq[is_mated], sim[~is_mated], pq[~is_mated])
    return _finish(comps, variant, fmr, discards)


def evaluate_frame(frame: pd.DataFrame, *, similarity: str = "similarity", mated: str = "mated",
                   quality_a: str = "quality_a", quality_b: str = "quality_b", **options: object) -> Evaluation:
    """:func:`evaluate` on the columns of a DataFrame (one row per comparison); ``options`` as there."""
    missing = [c for c in (similarity, mated, quality_a, quality_b) if c not in frame.columns]
    if missing:
        raise DataError(f"DataFrame lacks column(s) {', '.join(missing)} (has: {', '.join(map(str, frame.columns))})")
    return evaluate(frame[similarity].to_numpy(), frame[mated].to_numpy(), frame[quality_a].to_numpy(),
                    frame[quality_b].to_numpy(), **options)  # type: ignore[arg-type]


def evaluate_embeddings(embeddings: npt.ArrayLike, quality: npt.ArrayLike, a: npt.ArrayLike, b: npt.ArrayLike,
                        mated: npt.ArrayLike, *, higher_is_better: bool = True, variant: str = "fixed-threshold",
                        fmr: float = 1e-3, discards: Sequence[float] = DEFAULT_DISCARDS,
                        quality_rule: str = "min") -> Evaluation:
    """EDC and pAUC from per-image FR embeddings [N, D] and qualities [N] and a pair list.

    Comparison i is images ``a[i]`` and ``b[i]`` (row indices); similarities are cosine, as
    ``bench run`` computes them (:func:`bench.pipeline.similarity.compare`).
    """
    emb = np.asarray(embeddings, dtype=np.float32)
    q = _oriented(quality, higher_is_better, "quality")
    if emb.ndim != 2 or len(emb) != len(q):
        raise DataError(f"embeddings must be [N, D] with one quality per row, got {emb.shape} and {q.shape}")
    ia, ib = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if len(ia) and (min(ia.min(), ib.min()) < 0 or max(ia.max(), ib.max()) >= len(emb)):
        raise DataError(f"pair indices must lie in [0, {len(emb)})")
    protocol = PairProtocol(ia, ib, np.asarray(mated).astype(bool))
    return _finish(compare(protocol, emb, q, quality_rule), variant, fmr, discards)


def render_report(results: str | Path | None, out: str | Path, *, discard: float = 0.3,
                  tables: list[str] | None = None, edc_variant: str | None = None) -> list[Path]:
    """Write the report of a results folder (``None``: the published tables) into ``out``.

    The same function as ``bench report --source RESULTS --out OUT``; returns the files written.
    """
    from bench.report import build_report

    return build_report(results=None if results is None else Path(results),
                        source="published" if results is None else str(results), discard=discard, out=Path(out),
                        tables=tables, edc_variant=edc_variant)
