"""Agreement between quality methods: rank correlations and overlap of their lowest-quality sets."""
from __future__ import annotations

import numpy as np
from scipy import stats

from bench.core.errors import DataError


def low_set_overlap(a: np.ndarray, b: np.ndarray, fraction: float = 0.1) -> float:
    """|A∩B|/|A| where A, B are the indices of the lowest ``fraction`` of scores of each method.

    Both sets have the same size k = max(1, round(fraction*n)), so this equals |A∩B|/|B|; ties are broken
    by a stable sort on the image order so the result is deterministic.
    """
    a, b = _check(a, b)
    k = max(1, int(round(fraction * len(a))))
    low_a = set(np.argsort(a, kind="stable")[:k].tolist())
    low_b = set(np.argsort(b, kind="stable")[:k].tolist())
    return len(low_a & low_b) / k


def pair_agreement(a: np.ndarray, b: np.ndarray, fraction: float = 0.1) -> dict[str, float]:
    """Spearman rho, Kendall tau-b and lowest-``fraction`` overlap of two score arrays on the same images."""
    a, b = _check(a, b)
    return {"spearman": float(stats.spearmanr(a, b).statistic),
            "kendall": float(stats.kendalltau(a, b).statistic),
            "low_overlap": low_set_overlap(a, b, fraction)}


def _check(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise DataError(f"agreement needs two 1-D score arrays of equal length >= 2, got {a.shape} and {b.shape}; "
                        "align both methods on the same images first")
    return a, b
