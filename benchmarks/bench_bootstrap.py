"""Speed and memory of the pAUC bootstrap at IJB-C size, as ratios to one ``np.sort``.

Run: ``.venv/bin/python benchmarks/bench_bootstrap.py [--replicates 1000]`` (about a minute).

Synthetic IJB-C-shaped cell: 3,531 subjects owning 23,124 templates, 19,557 mated template
pairs (within subjects) and 15,638,932 non-mated ones (between subjects), float32
similarities, qualities with 3 decimals (ties). Units are the subjects (the product rule of
``bench.stats.bootstrap``). Timed: 1,000 replicates at discard limits 0.2 and 0.3, counts drawn
inside the timing. Baseline: one ``np.sort`` of the non-mated similarities in the same run.
Goal: <= 60 s on 2 cores, <= 2 GiB of memory above the inputs (peak RSS is read from
``/proc/self/status``; the inputs are built before the baseline is taken). A naive loop
(materialise each replicate's weights over all comparisons, weighted quantile, EDC) is timed
on a 20x smaller cell and a few replicates, per replicate; so is the recomputed-threshold
variant (2 replicates at full size), which has no tail shortcut.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from bench.stats import bootstrap
from bench.stats.edc import edc, pauc, threshold_at_fmr

N_SUBJECTS = 3_531
N_TEMPLATES = 23_124
N_MATED = 19_557
N_NONMATED = 15_638_932
LIMITS = (0.2, 0.3)


def _peak_rss_mib() -> float:
    """Peak resident set size of this process so far (VmHWM), MiB."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs), so the peak is the run's own."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        pass


def make_cell(scale: float, seed: int = 0) -> tuple[np.ndarray, ...]:
    """An IJB-C-shaped cell ``scale`` times its size: similarities, qualities and subject units."""
    rng = np.random.default_rng(seed)
    n_sub, n_tpl = max(2, int(N_SUBJECTS * scale)), max(4, int(N_TEMPLATES * scale))
    n_m, n_n = int(N_MATED * scale), int(N_NONMATED * scale)
    subject = np.sort(rng.integers(0, n_sub, n_tpl))
    lookalike = rng.normal(0, 0.03, n_sub)  # subject random effect on non-mated similarity
    # Mated: two templates of one subject (a template compared with itself is allowed here).
    ma = rng.integers(0, n_tpl, n_m)
    starts = np.searchsorted(subject, subject[ma])
    ends = np.searchsorted(subject, subject[ma], side="right")
    mb = starts + (rng.random(n_m) * (ends - starts)).astype(np.int64)
    na, nb = rng.integers(0, n_tpl, n_n), rng.integers(0, n_tpl, n_n)
    clash = subject[na] == subject[nb]
    nb[clash] = (nb[clash] + int(n_tpl * 0.5)) % n_tpl  # few remain same-subject: the product rule copes
    m_sim = rng.normal(0.55, 0.15, n_m).astype(np.float32)
    n_sim = (rng.normal(0.0, 0.08, n_n) + lookalike[subject[na]] + lookalike[subject[nb]]).astype(np.float32)
    m_q = np.round(m_sim + rng.normal(0, 0.2, n_m), 3)
    units = bootstrap.units_from_labels("subject", np.concatenate((subject[ma], subject[na])),
                                        np.concatenate((subject[mb], subject[nb])),
                                        np.concatenate((np.ones(n_m, bool), np.zeros(n_n, bool))))
    return m_sim, m_q, n_sim, units


def naive(m_sim: np.ndarray, m_q: np.ndarray, n_sim: np.ndarray, units: bootstrap.Units,
          counts: np.ndarray) -> np.ndarray:
    """The direct way: materialise every replicate and run bench.stats.edc on it."""
    out = []
    for c in counts:
        wm = bootstrap._weights(c[None], units.mated_a, units.mated_b)[0]
        wn = bootstrap._weights(c[None], units.nonmated_a, units.nonmated_b)[0]
        curve = edc(np.repeat(m_sim, wm), np.repeat(m_q, wm), threshold_at_fmr(np.repeat(n_sim, wn), 1e-3))
        out.append([pauc(curve, d) for d in LIMITS])
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=1000)
    args = parser.parse_args()

    m_sim, m_q, n_sim, units = make_cell(1.0)
    inputs_mib = (m_sim.nbytes + m_q.nbytes + n_sim.nbytes
                  + sum(getattr(units, k).nbytes for k in ("mated_a", "mated_b", "nonmated_a", "nonmated_b"))) / 2**20
    start = time.perf_counter()
    np.sort(n_sim)
    sort_s = time.perf_counter() - start
    _reset_peak()
    base_mib = _peak_rss_mib()
    start, cpu = time.perf_counter(), time.process_time()
    result = bootstrap.bootstrap_pauc(m_sim, m_q, n_sim, units, LIMITS, replicates=args.replicates, seed=0)
    boot_s, boot_cpu = time.perf_counter() - start, time.process_time() - cpu
    counts = bootstrap.draw_counts(units.n_units, args.replicates, 0)
    cpu = time.process_time()
    bootstrap.nonmated_totals(units, counts)
    totals_cpu = time.process_time() - cpu
    peak_mib = _peak_rss_mib() - base_mib
    print(f"IJB-C size: {N_MATED:,} mated, {N_NONMATED:,} non-mated, {units.n_units:,} subject units; "
          f"inputs {inputs_mib:.0f} MiB")
    print(f"np.sort baseline {sort_s:.3f} s")
    print(f"bootstrap {args.replicates} replicates: {boot_s:.1f} s = {boot_s / sort_s:.1f}x sort, {boot_cpu:.2f} CPU-s "
          f"(goal <= 1.5 CPU-s); peak memory above inputs {peak_mib:.0f} MiB (goal <= 2048)")
    print(f"  of which the replicates' non-mated totals (unit-pair product): {totals_cpu:.2f} CPU-s")
    print("  95% interval " + ", ".join(f"pAUC@{d}: [{lo:.4f}, {hi:.4f}]"
                                         for d, lo, hi in zip(LIMITS, result.low, result.high)))
    n_q = np.round(np.random.default_rng(2).random(n_sim.size), 3)
    start = time.perf_counter()
    bootstrap.replicate_paucs_recomputed(m_sim, m_q, n_sim, n_q, units, bootstrap.draw_counts(units.n_units, 2, 0),
                                         LIMITS)
    recomputed_s = (time.perf_counter() - start) / 2
    print(f"recomputed-threshold variant: {recomputed_s:.1f} s per replicate "
          f"(x{args.replicates} = {recomputed_s * args.replicates / 60:.0f} min: not for IJB-C)")

    scale, few = 0.05, 5
    m_sim, m_q, n_sim, units = make_cell(scale, seed=1)
    counts = bootstrap.draw_counts(units.n_units, few, 0)
    start = time.perf_counter()
    slow = naive(m_sim, m_q, n_sim, units, counts)
    naive_s = (time.perf_counter() - start) / few
    start = time.perf_counter()
    fast = bootstrap.replicate_paucs(m_sim, m_q, n_sim, units, bootstrap.draw_counts(units.n_units, 200, 0), LIMITS)
    fast_s = (time.perf_counter() - start) / 200
    same = np.array_equal(slow, fast[:few], equal_nan=True)
    print(f"{scale:g} x IJB-C ({len(n_sim):,} non-mated): naive {naive_s * 1e3:.0f} ms/replicate, "
          f"engine {fast_s * 1e3:.1f} ms/replicate ({naive_s / fast_s:.0f}x faster); identical pAUC: {same}")


if __name__ == "__main__":
    main()
