"""Derive a reference set's tolerances from the cross-machine effect that moves its numbers.

What differs between two machines running the same commit and packages is the CPU kernels
torch dispatches to (vector width, blocking, fused multiply-add), hence the last bits of every
float32 network output: FR embeddings and network-made quality scores. Seeded numpy scores
(``random``) do not change; the ``oracle`` changes through the embeddings only.

1. **Measure** that effect on this machine: the same crops through the same networks once with
   torch's vectorised CPU kernels (as dispatched here) and once with
   ``ATEN_CPU_CAPABILITY=default`` and ``DNNL_MAX_CPU_ISA=SSE41`` (scalar ATen kernels, narrow
   oneDNN convolutions), each in a fresh one-thread process: the relative change of each
   embedding (‖Δe‖ / ‖e‖) and the absolute change of each score, per method. Vector width is
   what differs most between two x86 machines, so this is a stand-in of the right kind and at
   least the size (measured: larger than the 1.4e-5-2.8e-5 pAUC moves DifFIQA showed between the
   reference machine and this one).
2. **Simulate** it on the cells themselves: 200 draws, each perturbing every embedding by
   Gaussian noise of relative size equal to the measured maximum and every network score by
   Gaussian noise of the measured maximum change, recomputing the method's pAUC (the oracle
   re-scored from the perturbed embeddings). The tolerance of a cell is twice the largest
   |ΔpAUC| over the draws, rounded up to one significant digit (at least 1e-6).

Run (after ``make demo`` or on any results folder whose cells are LFW folds 1-2 on dlib):
``.venv/bin/python benchmarks/derive_tolerances.py --results demo-out/results --cache demo-out/cache
--data-root demo-out/data`` (about 4 minutes on 2 cores). Prints the measured sizes and a
tolerance table; ``--write FILE`` writes it as CSV (the identity columns, ``tol``, ``why``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SCALAR_ENV = {"ATEN_CPU_CAPABILITY": "default", "DNNL_MAX_CPU_ISA": "SSE41"}
# Scores made by float32 networks (DifFIQA's Table 4 ablations too).
NETWORK_METHODS = ("ser-fiq", "diffiqa", "diffiqa-r", "ediffiqa", "diffiqa-noflip", "diffiqa-noforward", "diffiqa-t20")
# The weights each dataset's DifFIQA-family cells use (cross-dataset: never trained on what they score).
DEFAULT_WEIGHTS = {"lfw": "weights/dlib150-cfp", "cfp-fp": "weights/dlib150-lfw"}
DRAWS = 200
SAMPLE = 48


def _cell_config(record: dict, args: argparse.Namespace):  # noqa: ANN202 - RunConfig, imported lazily
    """The cell of a run record, recomputable here (DifFIQA-family weights: ``--weights``)."""
    from bench.pipeline.cell import RunConfig

    options = json.loads(record["method_options"] or "{}")
    family = record["method"].startswith(("diffiqa", "ediffiqa"))
    extra = {"method_weights": Path(args.weights[record["dataset"]]).resolve()} if family else {}
    quality_fr = record["quality_fr"] if record["quality_fr"] not in ("", "none", record["fr"]) else None
    return RunConfig(method=record["method"], fr=record["fr"], dataset=record["dataset"], folds=record["folds_selected"],
                     data_root=args.data_root, results=Path(tempfile.mkdtemp()), cache=args.cache, progress=False,
                     bootstrap=0, quality_fr=quality_fr, method_options=options, seed=int(record["seed"]), **extra)


def _records(results: Path, fr: str | None = None, methods: str | None = None) -> list[dict]:
    """The run record of the latest row of each method and seed in ``results``' pauc.csv (only
    FR models whose name starts with ``fr`` and only the comma-separated ``methods``, when given)."""
    import pandas as pd

    rows = pd.read_csv(results / "pauc.csv", dtype=str, keep_default_na=False)
    latest = rows.drop_duplicates(["method", "fr", "dataset", "folds", "seed"], keep="last")
    if fr:
        latest = latest[latest["fr"].str.startswith(fr)]
    if methods:
        latest = latest[latest["method"].isin(methods.split(","))]
    return [json.loads((results / "runs" / f"{run_id}.json").read_text()) for run_id in latest["run_id"]]


def _cell_keys(results: Path) -> dict[tuple[str, float], str]:
    """(run id, discard) → the cell's portable key (:func:`bench.results.reference.portable_keys`)."""
    from bench.results.reference import portable_keys
    from bench.results.table import latest_per_identity, read_pauc_csv

    rows = latest_per_identity(read_pauc_csv(results))
    return {(r, float(d)): k for r, d, k in zip(rows["run_id"], rows["discard"], portable_keys(results, rows), strict=True)}


def measure_child(args: argparse.Namespace) -> None:
    """In this process (its kernels set by the environment): embeddings and network scores of
    the first ``SAMPLE`` protocol images, saved to ``args.out``."""
    import torch

    from bench.methods.base import ScoreContext
    from bench.pipeline.cell import resolve_cell
    from bench.pipeline.runner import prepare

    torch.set_num_threads(1)
    out: dict[str, np.ndarray] = {}
    for record in _records(args.results, args.fr, args.methods):
        method = record["method"]
        if method not in NETWORK_METHODS or method in out:
            continue
        cell = resolve_cell(_cell_config(record, args))
        prep = prepare(cell)
        idx = prep.scored[:SAMPLE]
        if "embeddings" not in out:
            out["embeddings"] = np.asarray(cell.fr.embed(prep.fr_crops.get(idx)), dtype=np.float64)
        ctx = ScoreContext(dataset=cell.dataset, fr=cell.qfr, crops=prep.method_crops, seed=0, progress=False)
        out[method] = np.asarray(cell.method.score_batch(prep.method_crops.get(idx), idx, ctx), dtype=np.float64)
    np.savez(args.out, **out)


def measure(args: argparse.Namespace) -> dict[str, float]:
    """Relative embedding change and absolute score change per method, vectorised vs scalar kernels."""
    runs = []
    for extra in ({}, SCALAR_ENV):
        with tempfile.NamedTemporaryFile(suffix=".npz", delete=False) as fh:
            path = fh.name
        env = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
        subprocess.run([sys.executable, __file__, "--child", "--out", path, "--cache", str(args.cache),
                        "--data-root", str(args.data_root), "--results", str(args.results),
                        *(a for d, w in args.weights.items() for a in ("--weights", f"{d}={w}")),
                        *(["--fr", args.fr] if args.fr else []), *(["--methods", args.methods] if args.methods else [])],
                       check=True, env=env)
        with np.load(path) as data:
            runs.append({k: data[k] for k in data.files})
        os.unlink(path)
    fast, scalar = runs
    e_rel = np.linalg.norm(fast["embeddings"] - scalar["embeddings"], axis=1) / np.linalg.norm(fast["embeddings"], axis=1)
    sizes = {"embedding_relative": float(e_rel.max())}
    for method in NETWORK_METHODS:
        if method in fast:
            sizes[method] = float(np.abs(fast[method] - scalar[method]).max())
    return sizes


def _round_up(value: float) -> float:
    """Up to one significant digit, at least 1e-6."""
    value = max(value, 1e-6)
    exponent = math.floor(math.log10(value))
    return float(f"{math.ceil(value / 10**exponent)}e{exponent}")  # no binary residue in the CSV


def simulate(args: argparse.Namespace, sizes: dict[str, float]) -> list[dict[str, object]]:
    """Per cell of ``args.results``: the largest |ΔpAUC| over the draws, and the tolerance."""
    import pyarrow.parquet as pq

    from bench.fr.base import normalise
    from bench.methods.base import ScoreContext
    from bench.pipeline.cell import resolve_cell
    from bench.pipeline.runner import prepare
    from bench.pipeline.similarity import compare
    from bench.stats import edc

    keys = _cell_keys(args.results)
    observed = _observed_moves(args)
    out = []
    rng = np.random.default_rng(0)
    for record in _records(args.results, args.fr, args.methods):
        method = record["method"]
        cell = resolve_cell(_cell_config(record, args))
        prep = prepare(cell)
        emb = np.asarray(prep.embeddings, dtype=np.float64)
        table = pq.read_table(args.results / record["score_file"]).to_pandas()
        scores = np.full(len(cell.dataset), np.nan)
        position = {image: k for k, image in enumerate(cell.dataset.image_ids)}
        scores[[position[i] for i in table["image_id"]]] = table["score"].to_numpy()
        discards = sorted(float(d) for d in record["pauc"])

        def paucs(e: np.ndarray, q: np.ndarray) -> np.ndarray:
            comps = compare(cell.protocol, e, np.nan_to_num(q, nan=-np.inf))
            curve = edc.compute_edc("fixed-threshold", comps.mated_similarity, comps.mated_quality,
                                    comps.nonmated_similarity, comps.nonmated_quality, 1e-3)
            return np.array([edc.pauc(curve, d) for d in discards])

        base = paucs(emb, scores)
        worst = np.zeros(len(discards))
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        for _ in range(DRAWS):
            e = emb + sizes["embedding_relative"] * norms * rng.normal(size=emb.shape) / math.sqrt(emb.shape[1])
            if method == "oracle":
                ctx = ScoreContext(dataset=cell.dataset, fr=None, crops=None, embeddings=lambda e=e: normalise(e))
                q = cell.method.score_dataset(np.arange(len(cell.dataset)), ctx).scores
            elif method in sizes:
                q = scores + sizes[method] * rng.normal(size=scores.shape)
            else:
                q = scores
            worst = np.maximum(worst, np.abs(paucs(e, q) - base))
        for d, w in zip(discards, worst, strict=True):
            moved = f"embeddings +-{sizes['embedding_relative']:.0e} relative"
            if method in sizes:
                moved += f", scores +-{sizes[method]:.0e}"
            elif method == "oracle":
                moved += ", oracle re-scored from them"
            key = keys[(record["run_id"], d)]
            seen = observed.get(key, 0.0)
            why = f"{args.scale:g}x the measured kernel change ({moved}) moved pAUC by <= {w:.1e} in {DRAWS} draws"
            if seen:
                why += f"; the reference machine's run differs by {seen:.1e}"
            out.append({"key": key, "method": method, "fr": record["fr"], "dataset": record["dataset"], "folds": record["folds"],
                        "seed": record["seed"], "discard": d, "max_delta": float(w), "observed": seen,
                        "tol": _round_up(2 * max(float(w), seen)), "why": why + "; tol = 2x the larger"})
    return out


def _observed_moves(args: argparse.Namespace) -> dict[str, float]:
    """|pAUC here - pAUC in ``--against``| per cell (portable key) present in both: a move between two real runs."""
    from bench.results.reference import portable_keys
    from bench.results.table import latest_per_identity, read_pauc_csv

    if args.against is None:
        return {}
    ref = latest_per_identity(read_pauc_csv(args.against))
    ours = latest_per_identity(read_pauc_csv(args.results))
    theirs = dict(zip(portable_keys(args.against, ref), ref["pauc"], strict=True))
    return {k: abs(float(p) - float(theirs[k])) for k, p in zip(portable_keys(args.results, ours), ours["pauc"], strict=True)
            if k in theirs and np.isfinite(float(p)) and np.isfinite(float(theirs[k]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path("demo-out/results"))
    ap.add_argument("--cache", type=Path, default=Path("demo-out/cache"))
    ap.add_argument("--data-root", type=Path, default=Path("demo-out/data"))
    ap.add_argument("--write", type=Path, help="write the tolerance table (CSV) here")
    ap.add_argument("--sizes", help="skip the measurement: the sizes as JSON, as printed by an earlier run")
    ap.add_argument("--scale", type=float, default=10.0,
                    help="multiply the measured perturbation sizes (default 10: one machine's scalar kernels stand in "
                         "for every other machine's, and the reference machine's DifFIQA run differs by more than 1x gives)")
    ap.add_argument("--against", type=Path, help="a reference set made on another machine: its moves enter the tolerance")
    ap.add_argument("--weights", action="append", metavar="DATASET=DIR", default=[],
                    help="DifFIQA-family weights folder of a dataset's cells (default: lfw=weights/dlib150-cfp, "
                         "cfp-fp=weights/dlib150-lfw, as make demo and the reference sets)")
    ap.add_argument("--fr", help="only cells whose FR model name starts with this (e.g. dlib, onnx:): one size per FR")
    ap.add_argument("--methods", help="only these methods' cells (comma-separated; the draws of the others stay as "
                                      "an earlier run drew them: one generator runs through the cells in order)")
    ap.add_argument("--update", type=Path, help="write the derived tolerances into this reference set's tolerances.csv "
                                                "(cells matched by identity, ONNX models by hash) and its manifest")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.weights = {**DEFAULT_WEIGHTS, **dict(w.split("=", 1) for w in args.weights)}
    args.cache, args.data_root, args.results = args.cache.resolve(), args.data_root.resolve(), args.results.resolve()
    if args.child:
        measure_child(args)
        return
    sizes = json.loads(args.sizes) if args.sizes else measure(args)
    print(json.dumps(sizes))
    sizes = {k: v * args.scale for k, v in sizes.items()}
    print("measured (vectorised vs scalar kernels, "
          f"{SAMPLE} LFW images): " + ", ".join(f"{k} {v:.2e}" for k, v in sizes.items()))
    table = simulate(args, sizes)
    print("| method | fr | dataset | folds | seed | discard | max simulated |ΔpAUC| | observed | tol |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in table:
        print(f"| {row['method']} | {row['fr']} | {row['dataset']} | {row['folds']} | {row['seed']} | {row['discard']:g} | "
              f"{row['max_delta']:.2e} | {row['observed']:.1e} | {row['tol']:g} |")
    if args.write or args.update:
        import pandas as pd

        frame = pd.DataFrame(table)
        if args.write:
            frame.to_csv(args.write, index=False)
        if args.update:
            from bench.results.reference import update_tolerances

            print(f"{args.update}: {update_tolerances(args.update.resolve(), frame)} tolerance rows changed")


if __name__ == "__main__":
    main()
