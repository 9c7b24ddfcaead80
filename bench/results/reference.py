"""Reference sets: frozen results of our own runs, and the check of any results folder against one.

A reference set (``results/reference/<name>/``) has the results-folder layout, so ``bench
report --source DIR`` renders it unchanged: ``pauc.csv`` (the latest row of each identity),
``runs/<run_id>.json`` and ``curves/<run_id>.parquet`` of exactly those runs (bootstrap
replicates ``runs/<run_id>.boot.npz``, EVF points ``curves/<run_id>.evf.parquet`` and the
per-image score files the runs name under ``scores/`` too, so tolerances can be re-derived from
the set itself), plus

* ``tolerances.csv``: the identity columns (:data:`bench.results.table.IDENTITY`), ``tol`` and
  ``why``, one row per pAUC row: how far a recomputation may move that number;
* ``MANIFEST.sha256``: ``sha256sum -c`` lines for every other file.

``check_against`` compares a results folder's latest row of each identity with the reference
row of the same identity (every identity column equal, so a folds-1,2 row never meets an
all-folds one): ``ok`` when |Δ| ≤ tol and the comparison counts agree, ``DRIFT`` otherwise;
reference cells absent from the results are ``not reproduced``, result cells absent from the
reference ``not in reference``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.core.errors import DataError
from bench.core.io import atomic_write_text
from bench.results.table import (
    IDENTITY,
    PAUC_COLUMNS,
    latest_per_identity,
    read_pauc_csv,
    read_pauc_rows,
    read_run_record,
)

TOLERANCES = "tolerances.csv"
ONNX = "onnx:"  # prefix of an FR model given as a file: --fr onnx:PATH
MANIFEST = "MANIFEST.sha256"
TOL_COLUMNS: tuple[str, ...] = (*IDENTITY, "tol", "why")
UNDEFINED = "undefined"  # status of a cell whose pAUC is undefined in the reference and here alike
KEPT_AS_WRITTEN = ("README.md",)  # may be written by hand before the first freeze; listed in the manifest too
FROZEN = ("pauc.csv", TOLERANCES, MANIFEST, "runs", "curves", "scores")  # what freeze writes; the rest of a set is hand-written


@dataclass(frozen=True)
class Tolerance:
    """A method's tolerance and its reason, for ``freeze``."""

    tol: float
    why: str


def _key(frame: pd.DataFrame) -> pd.Series:
    return frame[list(IDENTITY)].astype(str).agg("|".join, axis=1)


def _identity_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Identity columns as the text pauc.csv holds (floats like seed 0.0 printed as written)."""
    out = frame[list(IDENTITY)].copy()
    for col in ("discard", "fmr", "seed"):
        out[col] = [repr(float(v)) if col != "seed" else str(int(float(v))) for v in out[col]]
    return out.astype(str)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(folder: Path) -> None:
    """``MANIFEST.sha256`` of every file under ``folder`` but itself, sorted by path."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    atomic_write_text(folder / MANIFEST, "".join(f"{_sha256(p)}  {p.relative_to(folder).as_posix()}\n" for p in files))


def verify(folder: Path) -> int:
    """Check ``MANIFEST.sha256``; returns the number of files checked, raises on any difference."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise DataError(f"{manifest}: not found (a reference set is made by `bench reference freeze`)")
    listed = set()
    for n, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise DataError(f"{manifest}:{n}: expected '<sha256>  <path>'")
        path = folder / name
        if not path.is_file():
            raise DataError(f"{path}: listed in {manifest} but missing")
        if _sha256(path) != digest:
            raise DataError(f"{path}: content differs from its sha256 in {manifest}")
        listed.add(name)
    extra = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if p.is_file() and p.name != MANIFEST and p.relative_to(folder).as_posix() not in listed)
    if extra:
        raise DataError(f"{folder / extra[0]}: not listed in {manifest}")
    return len(listed)


def _refuse_overlap(results: Path, out: Path) -> None:
    """A set is never frozen into its own results folder, nor into a folder inside or around it:
    replacing the set would replace (or delete) its own input."""
    res, dst = results.resolve(), out.resolve()
    if res == dst or res.is_relative_to(dst) or dst.is_relative_to(res):
        where = "is" if res == dst else "contains" if res.is_relative_to(dst) else "is inside"
        raise DataError(f"{out}: {where} the results folder {results}; freeze into a folder of its own, "
                        "e.g. results/reference/<name>")


def _kept_entries(out: Path, force: bool) -> list[Path]:
    """The entries of ``out`` a new set keeps: everything but what :func:`freeze` writes.

    ``out`` may be missing, empty or hold only a hand-written README.md; anything else only
    when it is a reference set (it has a MANIFEST.sha256) and ``force`` is given. Then its
    hand-written files (README.md, reproduce.sh, ...) are part of the set and are kept. A
    folder that is not a reference set is never swept into a manifest.
    """
    if not out.exists():
        return []
    if not out.is_dir():
        raise DataError(f"{out}: not a folder")
    entries = sorted(out.iterdir())
    kept = [p for p in entries if p.name not in FROZEN]
    if all(p.name in KEPT_AS_WRITTEN for p in entries):
        return kept
    if not (out / MANIFEST).is_file():
        raise DataError(f"{out}: not empty and not a reference set (no {MANIFEST}); freeze into an empty folder "
                        "(--force replaces only a reference set)")
    if not force:
        raise DataError(f"{out}: not empty; pass --force to replace a reference set")
    return kept


def _install(build: Path, out: Path) -> None:
    """Put the finished set ``build`` at ``out``; an older ``out`` is removed only once it is replaced."""
    if not out.exists():
        os.replace(build, out)
        return
    old = out.parent / f".{out.name}.replaced-{uuid.uuid4().hex[:8]}"
    os.replace(out, old)
    try:
        os.replace(build, out)
    except OSError:
        os.replace(old, out)
        raise
    shutil.rmtree(old)


def freeze(results: Path, out: Path, default: Tolerance, per_method: dict[str, Tolerance] | None = None,
           force: bool = False) -> pd.DataFrame:
    """Copy the latest row of each identity of ``results`` (and its run files) into ``out``.

    Writes pauc.csv, runs/, curves/, tolerances.csv and MANIFEST.sha256; hand-written files
    already in ``out`` are kept (:func:`_kept_entries`). The set is built in a folder beside
    ``out`` and renamed onto it when complete, so a failure leaves ``out`` as it was and
    ``results`` is only read. Returns the tolerance table.
    """
    per_method = per_method or {}
    _refuse_overlap(Path(results), Path(out))
    results, out = Path(results), Path(out).resolve()  # resolved: "." has no name to build beside
    kept = _kept_entries(out, force)
    text, values = read_pauc_rows(results)
    latest = latest_per_identity(values.assign(row=np.arange(len(values))))
    frame, rows = latest.drop(columns="row"), text.iloc[latest["row"].to_numpy()]
    out.parent.mkdir(parents=True, exist_ok=True)
    build = out.parent / f".{out.name}.freeze-{uuid.uuid4().hex[:8]}"
    build.mkdir()
    try:
        for sub in ("runs", "curves"):
            (build / sub).mkdir()
        for run_id in sorted(set(frame["run_id"])):
            for src, dst in ((results / "runs" / f"{run_id}.json", build / "runs"),
                             (results / "curves" / f"{run_id}.parquet", build / "curves"),
                             (results / "runs" / f"{run_id}.boot.npz", build / "runs"),
                             (results / "curves" / f"{run_id}.evf.parquet", build / "curves")):
                if src.is_file():
                    shutil.copy2(src, dst / src.name)
                elif src.name.endswith((".json", f"{run_id}.parquet")):
                    raise DataError(f"{src}: run file of a pauc.csv row is missing")
            _copy_score_file(results, build, results / "runs" / f"{run_id}.json")
        rows[list(PAUC_COLUMNS)].to_csv(build / "pauc.csv", index=False)
        tol = _identity_text(frame)
        chosen = [per_method.get(m, default) for m in frame["method"]]
        tol["tol"] = [repr(t.tol) for t in chosen]
        tol["why"] = [t.why for t in chosen]
        tol.to_csv(build / TOLERANCES, index=False)
        for entry in kept:
            if entry.is_dir() and not entry.is_symlink():
                shutil.copytree(entry, build / entry.name, symlinks=True)
            else:
                shutil.copy2(entry, build / entry.name, follow_symlinks=False)
        write_manifest(build)
        _install(build, out)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return tol


def read_tolerances(folder: Path) -> pd.DataFrame:
    """The reference's tolerances.csv (identity columns as text, ``tol`` float)."""
    path = folder / TOLERANCES
    if not path.is_file():
        raise DataError(f"{path}: not found; a reference set needs per-cell tolerances (bench reference freeze)")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in TOL_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    try:
        frame["tol"] = frame["tol"].astype(float)
    except ValueError as exc:
        raise DataError(f"{path}: a tol value is not a number ({exc})") from None
    if (frame["tol"] < 0).any() or frame["tol"].isna().any():
        raise DataError(f"{path}: tolerances must be numbers >= 0")
    return frame


def _onnx_by_hash(folder: Path, frame: pd.DataFrame) -> dict[str, str]:
    """``onnx:PATH`` → ``onnx:sha256=HASH`` for the FR models named in ``frame``'s run files.

    A path says where a model was on one machine; its hash says which model it is.
    """
    names: dict[str, str] = {}
    for run_id, fr, quality_fr in frame[["run_id", "fr", "quality_fr"]].drop_duplicates().itertuples(index=False):
        path = folder / "runs" / f"{run_id}.json"
        if not (str(fr).startswith(ONNX) or str(quality_fr).startswith(ONNX)) or not path.is_file():
            continue
        record = read_run_record(path)
        fr_hash = (record.get("fr_provenance") or {}).get("fr_weights_sha256")
        quality_hash = fr_hash if quality_fr == fr else (record.get("score_provenance") or {}).get("quality_fr_weights_sha256")
        for name, digest in ((fr, fr_hash), (quality_fr, quality_hash)):
            if str(name).startswith(ONNX) and digest:
                names[name] = f"{ONNX}sha256={digest}"
    return names


def _portable_key(identity: pd.DataFrame, names: dict[str, str]) -> pd.Series:
    """:func:`_key` with ``onnx:`` paths replaced by their hashes (``names``)."""
    identity = identity.copy()
    for col in ("fr", "quality_fr"):
        identity[col] = identity[col].map(lambda v: names.get(v, v))
    return _key(identity)


def portable_keys(folder: Path, frame: pd.DataFrame) -> pd.Series:
    """Each pauc.csv row's identity as one text, ``onnx:`` paths replaced by the model's hash (from
    the run files under ``folder``): equal keys are the same cell, whichever machine made it."""
    return _portable_key(_identity_text(frame), _onnx_by_hash(folder, frame))


def update_tolerances(folder: Path, derived: pd.DataFrame) -> int:
    """Set ``tol`` and ``why`` of the rows of ``folder``'s tolerances.csv named by ``derived``
    (columns ``key`` (:func:`portable_keys`), ``tol``, ``why``) and rewrite MANIFEST.sha256;
    returns how many rows changed. DataError, writing nothing, for a key the set does not hold."""
    path = folder / TOLERANCES
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    names = _onnx_by_hash(folder, latest_per_identity(read_pauc_csv(folder)))
    position = {key: k for k, key in enumerate(_portable_key(frame[list(IDENTITY)], names))}
    unknown = [key for key in derived["key"] if key not in position]
    if unknown:
        raise DataError(f"{path}: no row for the cell {unknown[0]} ({len(unknown)} derived cell(s) unknown)")
    changed = 0
    for key, tol, why in zip(derived["key"], derived["tol"], derived["why"], strict=True):
        k = position[key]
        changed += (frame.at[k, "tol"], frame.at[k, "why"]) != (repr(float(tol)), str(why))
        frame.at[k, "tol"], frame.at[k, "why"] = repr(float(tol)), str(why)
    atomic_write_text(path, frame.to_csv(index=False))
    write_manifest(folder)
    return changed


def manifest_status(reference: Path) -> str:
    """One line on ``reference``'s MANIFEST.sha256: how many files match it, or that it has none.

    A file that differs from the manifest, or is missing from or absent in it, raises
    (:func:`verify`): a tampered reference is no reference.
    """
    if not (reference / MANIFEST).is_file():
        return f"{reference}: no {MANIFEST}: its files are not verified (a set frozen by `bench reference freeze` has one)"
    return f"{reference}: {verify(reference)} files match {MANIFEST}"


def _compared(o: Any, r: Any, tol: float) -> tuple[float, str, str]:
    """(delta, status, reason) of our row ``o`` against the reference row ``r`` of one identity."""
    ours_note, ref_note = str(o.pauc_note), str(r.pauc_note)
    if ours_note or ref_note:
        if ours_note and ref_note:
            return np.nan, UNDEFINED, ours_note
        return np.nan, "DRIFT", (f"pAUC undefined here ({ours_note})" if ours_note
                                 else f"pAUC undefined in the reference ({ref_note})")
    delta = float(o.pauc) - float(r.pauc)
    counts = (o.n_mated, o.n_nonmated), (r.n_mated, r.n_nonmated)
    if counts[0] != counts[1]:
        return delta, "DRIFT", f"comparisons {int(counts[0][0])}/{int(counts[0][1])} vs {int(counts[1][0])}/{int(counts[1][1])}"
    return (delta, "DRIFT", "|delta| > tol") if abs(delta) > tol else (delta, "ok", "")


def check_against(results: Path, reference: Path) -> pd.DataFrame:
    """One row per identity of either side: reference, reproduced, delta, tol, status, reason.

    ``reference``'s MANIFEST.sha256 is verified first (:func:`manifest_status`, its line in
    ``attrs["manifest"]``). A cell whose pAUC is undefined on both sides is ``undefined``
    (counted, not compared); undefined on one side only is a ``DRIFT``.
    """
    manifest = manifest_status(reference)
    ref = latest_per_identity(read_pauc_csv(reference))
    ref_names = _onnx_by_hash(reference, ref)
    tol = read_tolerances(reference)
    tol_by_key = dict(zip(_portable_key(tol[list(IDENTITY)], ref_names), tol["tol"]))
    ours = latest_per_identity(read_pauc_csv(results))
    ref_keys = _portable_key(_identity_text(ref), ref_names)
    our_keys = portable_keys(results, ours)
    ours_by_key = dict(zip(our_keys, ours.itertuples(index=False)))
    rows = []
    for key, r in zip(ref_keys, ref.itertuples(index=False)):
        if key not in tol_by_key:
            raise DataError(f"{reference / TOLERANCES}: no tolerance for the cell {key}")
        base = {c: getattr(r, c) for c in ("discard", "fr", "method", "dataset", "folds", "seed")}
        o = ours_by_key.get(key)
        if o is None:
            rows.append({**base, "reference": r.pauc, "reproduced": np.nan, "delta": np.nan, "tol": tol_by_key[key],
                         "status": "not reproduced", "reason": "", "reference_note": r.pauc_note, "reproduced_note": ""})
            continue
        delta, status, reason = _compared(o, r, tol_by_key[key])
        rows.append({**base, "reference": r.pauc, "reproduced": o.pauc, "delta": delta, "tol": tol_by_key[key],
                     "status": status, "reason": reason, "reference_note": r.pauc_note, "reproduced_note": o.pauc_note})
    ref_set = set(ref_keys)
    for key, o in zip(our_keys, ours.itertuples(index=False)):
        if key not in ref_set:
            rows.append({**{c: getattr(o, c) for c in ("discard", "fr", "method", "dataset", "folds", "seed")},
                         "reference": np.nan, "reproduced": o.pauc, "delta": np.nan, "tol": np.nan,
                         "status": "not in reference", "reason": "", "reference_note": "", "reproduced_note": o.pauc_note})
    table = pd.DataFrame(rows, columns=["discard", "fr", "method", "dataset", "folds", "seed", "reference", "reproduced",
                                        "delta", "tol", "status", "reason", "reference_note", "reproduced_note"])
    table.attrs["manifest"] = manifest
    return table


def _num(value: float, fmt: str, note: str = "") -> str:
    """``value`` as ``fmt``; ``n/a`` for an undefined pAUC (a ``note``), empty for none."""
    return "n/a" if note else "" if pd.isna(value) else format(value, fmt)


def format_against(table: pd.DataFrame, show_not_reproduced: bool = False) -> str:
    """The manifest line (``attrs["manifest"]``), a Markdown-style table (one line per cell)
    and a status count line; an undefined pAUC reads ``n/a``."""
    shown = table if show_not_reproduced else table[table["status"] != "not reproduced"]
    lines = [table.attrs["manifest"]] if table.attrs.get("manifest") else []
    lines += ["| discard | fr | method | dataset | folds | seed | reference | reproduced | delta | tol | status |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in shown.itertuples(index=False):
        status = f"{r.status} ({r.reason})" if r.reason else r.status
        lines.append(f"| {r.discard} | {r.fr} | {r.method} | {r.dataset} | {r.folds} | {int(float(r.seed))} | "
                     f"{_num(r.reference, '.4f', r.reference_note)} | {_num(r.reproduced, '.4f', r.reproduced_note)} | "
                     f"{_num(r.delta, '+.2e')} | "
                     f"{_num(r.tol, 'g')} | {status} |")
    counts = table["status"].value_counts()
    lines.append("; ".join(f"{n} {s}" for s, n in counts.items()))
    undefined = table[table["status"] == UNDEFINED]
    if not undefined.empty:
        lines.append(f"{len(undefined)} cell{'s' if len(undefined) != 1 else ''} undefined on both sides (not compared): "
                     + "; ".join(f"{r.discard:g} {r.fr} {r.method} {r.dataset}: {r.reason}"
                                 for r in undefined.itertuples(index=False)))
    return "\n".join(lines)


def exit_code(table: pd.DataFrame, strict: bool) -> int:
    """1 on any drift, or (``strict``) on any reference cell not reproduced; else 0."""
    if (table["status"] == "DRIFT").any():
        return 1
    return 1 if strict and (table["status"] == "not reproduced").any() else 0


def _copy_score_file(results: Path, build: Path, record_path: Path) -> None:
    """Copy the score file a run record names (relative to its results folder) into the set."""
    score_file = json.loads(record_path.read_text(encoding="utf-8")).get("score_file")
    if not score_file or Path(score_file).is_absolute():
        return
    src, dst = results / score_file, build / score_file
    if src.is_file() and not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
