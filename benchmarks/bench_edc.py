"""Speed of the EDC engine at IJB-C size, as ratios to one ``np.sort`` of the non-mated scores.

Run: ``.venv/bin/python benchmarks/bench_edc.py`` (about 0.6 GB of RAM, well under a minute).

Synthetic data: 19,557 mated and 15,638,932 non-mated similarities, float32 as they come
from cosine similarities of float32 embeddings (the engine converts to float64 itself and
that conversion is inside the timed pipeline); a float64 run is timed too. The timed
pipeline is threshold at FMR 1e-3 + fixed-threshold EDC + pAUC at 0.2 and 0.3. Baselines,
timed in the same run: one ``np.sort`` of the same non-mated array (goal <= 3x) and the floor,
one single-point ``np.partition`` of it (goal <= 2x). The threshold alone is timed both ways:
``np.quantile`` of a float64 copy (before) and :func:`bench.stats.edc.linear_quantile` (one
partition + tail minimum, now), and checked bit-identical.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np

from bench.stats.edc import edc, edc_recomputed, linear_quantile, pauc, threshold_at_fmr

N_MATED = 19_557
N_NONMATED = 15_638_932
REPEATS = 3


def _median_seconds(work: Callable[[], object], repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _fixed_pipeline(mated: np.ndarray, mated_q: np.ndarray, nonmated: np.ndarray) -> None:
    curve = edc(mated, mated_q, threshold_at_fmr(nonmated, 1e-3))
    pauc(curve, 0.2)
    pauc(curve, 0.3)


def main() -> None:
    rng = np.random.default_rng(0)
    mated = rng.normal(0.55, 0.15, N_MATED).astype(np.float32)
    nonmated = rng.normal(0.0, 0.08, N_NONMATED).astype(np.float32)
    # Quality correlated with mated similarity, 3 decimals (ties, as real FIQA outputs have).
    mated_q = np.round(mated + rng.normal(0, 0.2, N_MATED), 3).astype(np.float32)
    nonmated_q = np.round(rng.random(N_NONMATED), 3).astype(np.float32)
    print(f"IJB-C size: {N_MATED:,} mated, {N_NONMATED:,} non-mated; median of {REPEATS}")
    for dtype in (np.float32, np.float64):
        scores = nonmated.astype(dtype)
        sort_s = _median_seconds(lambda: np.sort(scores))
        convert_s = _median_seconds(lambda: scores.astype(np.float64))
        k = int((scores.size - 1) * (1 - 1e-3))
        floor_s = _median_seconds(lambda: np.partition(scores, k))
        numpy_s = _median_seconds(lambda: np.quantile(scores.astype(np.float64), 1 - 1e-3, method="linear"))
        ours_s = _median_seconds(lambda: linear_quantile(scores, 1 - 1e-3))
        same = linear_quantile(scores, 1 - 1e-3) == float(np.quantile(scores.astype(np.float64), 1 - 1e-3))
        fixed_s = _median_seconds(lambda: _fixed_pipeline(mated.astype(dtype), mated_q, scores))
        print(f"[{np.dtype(dtype).name} input] np.sort baseline {sort_s:.3f} s; one np.partition (floor) {floor_s:.3f} s; "
              f"float64 conversion alone {convert_s:.3f} s ({convert_s / floor_s:.2f}x partition)")
        print(f"  threshold: np.quantile of a float64 copy {numpy_s:.3f} s = {numpy_s / floor_s:.2f}x partition; "
              f"linear_quantile {ours_s:.3f} s = {ours_s / floor_s:.2f}x partition; bit-identical: {same}")
        print(f"  fixed-threshold (threshold + EDC + pAUC@0.2,0.3): {fixed_s:.3f} s "
              f"= {fixed_s / sort_s:.2f}x sort (goal <= 3x) = {fixed_s / floor_s:.2f}x partition (goal <= 2x)")
    sort_s = _median_seconds(lambda: np.sort(nonmated))
    start = time.perf_counter()
    curve = edc_recomputed(mated, mated_q, nonmated, nonmated_q, 1e-3)
    pauc(curve, 0.2)
    pauc(curve, 0.3)
    recomputed_s = time.perf_counter() - start
    print(f"recomputed-threshold (20 grid points, float32 input, once): {recomputed_s:.3f} s "
          f"= {recomputed_s / sort_s:.2f}x sort")


if __name__ == "__main__":
    main()
