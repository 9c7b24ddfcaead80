"""Coverage and width of percentile and BCa bootstrap intervals of the pAUC (issue 24), by simulation.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_intervals.py [--sets 200] [--replicates 1000]``
(about 10 CPU-minutes at the defaults). Not a timed test: it prints numbers for the notes.

Generating model (as ``tests/test_bootstrap.py``'s coverage test): subjects with random effects
on mated (``a_s``) and non-mated (``b_s``) similarity, image qualities U(0, 1), pair quality
``min``; mated similarity ``0.5 + a_s + 0.3 p + e``, non-mated ``b_s + b_t + e'``. Its true pAUC
at discard 0.3, FMR 1e-3, has a closed form (:func:`true_pauc`). Two designs:

* dense: 100 subjects x 4 images, every pair compared (600 mated, 79,200 non-mated: about 79
  non-mated comparisons above the FMR 1e-3 threshold);
* sparse (LFW-like): 1,500 subjects x 3 images, 3,000 mated pairs drawn within subjects and
  3,000 non-mated pairs between subjects (LFW View 2's counts: the threshold rests on the top 3
  non-mated similarities).

Per design and data set: the point pAUC, the subject bootstrap (``--replicates``, seed = data
set index) and both intervals from the same replicates. Printed per design and interval:
coverage of the true pAUC (with its binomial standard error), mean width, the ideal width (the
2.5-97.5 % spread of the point estimates over the data sets), and how often the truth lies
below / above the interval; plus the mean share of replicates above the point estimate.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import integrate, stats

from bench.stats import bootstrap

SA, SE, SB, SN, LIMIT, FMR = 0.10, 0.15, 0.05, 0.10, 0.3, 1e-3


def true_pauc() -> float:
    """The model's pAUC at LIMIT (population threshold and EDC), by numerical integration."""
    threshold = stats.norm.ppf(1 - FMR) * np.sqrt(2 * SB**2 + SN**2)
    spread = np.hypot(SA, SE)

    def error_density(p: float) -> float:
        return stats.norm.cdf((threshold - 0.5 - 0.3 * p) / spread) * 2 * (1 - p)

    def fnmr(x: float) -> float:
        return integrate.quad(error_density, 1 - np.sqrt(1 - x), 1)[0] / (1 - x)

    return integrate.quad(fnmr, 0, LIMIT)[0] / (LIMIT * fnmr(0))


def _similarities(rng, subj_a, subj_b, q_a, q_b, n_subjects):
    a, b = rng.normal(0, SA, n_subjects), rng.normal(0, SB, n_subjects)
    mated = subj_a == subj_b
    pq = np.minimum(q_a, q_b)
    sim = np.where(mated, 0.5 + a[subj_a] + 0.3 * pq + rng.normal(0, SE, subj_a.size),
                   b[subj_a] + b[subj_b] + rng.normal(0, SN, subj_a.size))
    units = bootstrap.units_from_labels("subject", subj_a, subj_b, mated)
    return sim[mated], pq[mated], sim[~mated], units


def dense_cell(rng: np.random.Generator):
    subj = np.repeat(np.arange(100), 4)
    q = rng.random(subj.size)
    ia, ib = np.triu_indices(subj.size, 1)
    return _similarities(rng, subj[ia], subj[ib], q[ia], q[ib], 100)


def sparse_cell(rng: np.random.Generator, n_subjects: int = 1500, per: int = 3, n_pairs: int = 3000):
    subj = np.repeat(np.arange(n_subjects), per)
    q = rng.random(subj.size)
    within = np.array([(s * per + i, s * per + j) for s in range(n_subjects) for i in range(per)
                       for j in range(i + 1, per)])
    mated = within[rng.choice(len(within), n_pairs, replace=False)]
    ia, ib = rng.integers(0, subj.size, (2, 4 * n_pairs))
    keep = subj[ia] != subj[ib]
    non = np.stack([ia[keep], ib[keep]], axis=1)[:n_pairs]
    pairs = np.concatenate([mated, non])
    return _similarities(rng, subj[pairs[:, 0]], subj[pairs[:, 1]], q[pairs[:, 0]], q[pairs[:, 1]], n_subjects)


def run(design, n_sets: int, replicates: int, seed: int, truth: float) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    points, above = [], []
    bounds = {kind: [] for kind in bootstrap.INTERVALS}
    for i in range(n_sets):
        m_sim, m_q, n_sim, units = design(rng)
        counts = bootstrap.draw_counts(units.n_units, replicates, i)
        reps = bootstrap.replicate_paucs(m_sim, m_q, n_sim, units, counts, [LIMIT], FMR)
        ones = np.ones((1, units.n_units), dtype=np.int32)
        point = bootstrap.replicate_paucs(m_sim, m_q, n_sim, units, ones, [LIMIT], FMR)[0]
        jack = bootstrap.jackknife_paucs(m_sim, m_q, n_sim, units, [LIMIT], FMR)
        points.append(point[0])
        finite = reps[np.isfinite(reps[:, 0]), 0]
        above.append(np.mean(finite > point[0]))
        bounds["percentile"].append([x[0] for x in bootstrap.percentile_interval(reps)])
        bounds["bca"].append([x[0] for x in bootstrap.bca_interval(reps, point, jack)])
    ideal = np.subtract(*np.quantile(points, [0.975, 0.025]))
    out = {"ideal width": ideal, "mean point": float(np.mean(points)),
           "share of replicates above point": float(np.mean(above))}
    for kind, b in bounds.items():
        b = np.array(b)
        ok = np.isfinite(b).all(axis=1)
        lo, hi = b[ok, 0], b[ok, 1]
        cover = np.mean((lo <= truth) & (truth <= hi))
        out[kind] = (cover, np.sqrt(cover * (1 - cover) / ok.sum()), float(np.mean(hi - lo)),
                     float(np.mean(truth < lo)), float(np.mean(truth > hi)), int((~ok).sum()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=200, help="simulated data sets per design (default 200)")
    parser.add_argument("--replicates", type=int, default=1000, help="bootstrap replicates per data set")
    args = parser.parse_args()
    truth = true_pauc()
    print(f"true pAUC@{LIMIT} (FMR {FMR:g}) = {truth:.4f}; {args.sets} data sets x {args.replicates} replicates")
    for name, design in (("dense", dense_cell), ("sparse (LFW-like)", sparse_cell)):
        start = time.process_time()
        res = run(design, args.sets, args.replicates, 24, truth)
        print(f"\n{name}: mean point {res['mean point']:.4f}, ideal width {res['ideal width']:.4f}, "
              f"replicates above the point {100 * res['share of replicates above point']:.1f} % "
              f"({time.process_time() - start:.0f} CPU-s)")
        print("| interval | coverage | mean width | width / ideal | truth below | truth above | undefined |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for kind in bootstrap.INTERVALS:
            cover, se, width, below, above, bad = res[kind]
            print(f"| {kind} | {100 * cover:.1f} % ± {100 * se:.1f} | {width:.4f} | "
                  f"{width / res['ideal width']:.2f} | {100 * below:.1f} % | {100 * above:.1f} % | {bad} |")


if __name__ == "__main__":
    main()
