"""Before/after table of issue 22's cases: each one run as ``bench`` command lines on two trees.

Run: ``.venv/bin/python benchmarks/bad_input_table.py [--before a1664d3] [--only ID ...]`` (about
5 minutes on 2 cores; prints a Markdown table on stdout, progress on stderr).

The "before" tree is a ``git worktree`` of ``--before`` (made in a scratch folder, removed at the
end) or the folder ``--before-tree``; "after" is this checkout. Both run with this Python, with
``PYTHONPATH`` pointing at the tree, each case in its own scratch folder as the working directory
(so nothing lands in the checkout). A cell reads ``exit code: first line of stderr``, then what
was observed on disk where the exit code alone does not show the finding (files deleted, a value
recorded). "hung" means the command was killed after ``--hang-after`` seconds.

The read-only and disk-full cases need the real failure: they run in a private mount namespace
(``unshare -m``; root only) with a read-only bind mount or a 16 KiB tmpfs, which vanish with the
command. Without that permission they are reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BEFORE = "a1664d3"
SYNTHETIC = ["--method", "random", "--fr", "synthetic", "--dataset", "synthetic", "--no-progress", "--bootstrap", "0"]


@dataclass
class Result:
    """One command's outcome: exit code (None when killed as hung), stdout and stderr."""

    rc: int | None
    out: str
    err: str


class Ctx:
    """One case on one tree: its scratch folder (the working directory) and how to run bench there."""

    def __init__(self, tree: Path, work: Path, hang_after: float) -> None:
        self.tree = tree
        self.work = work
        self.hang_after = hang_after
        work.mkdir(parents=True)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
        env.update(PYTHONPATH=str(self.tree), BENCH_CACHE=str(self.work / "cache"), PYTHONDONTWRITEBYTECODE="1")
        env.update(extra)
        return env

    def bench(self, *args: str, env: dict[str, str] | None = None, mount: str | None = None, after: str = ":",
              timeout: float | None = None) -> Result:
        """``python -m bench ARGS`` in the scratch folder; ``mount``: shell run first in a private
        mount namespace (the mounts vanish with the command), ``after``: shell run there after it."""
        cmd = [sys.executable, "-m", "bench", *args]
        if mount is not None:
            script = f'{mount} && {{ "$@"; rc=$?; {after}; exit $rc; }}'
            cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *cmd]
        proc = subprocess.Popen(cmd, cwd=self.work, env=env or self.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout or self.hang_after)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            return Result(None, out, err)
        return Result(proc.returncode, out, err)

    def python(self, code: str) -> None:
        """Run setup code with the tree's package importable."""
        subprocess.run([sys.executable, "-c", code], cwd=self.work, env=self.env(), check=True)

    def files(self, folder: str) -> list[str]:
        root = self.work / folder
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


Observation = tuple[Result, str]


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "(stderr empty)"
    if any(line.startswith("Traceback") for line in lines):
        return f"Traceback … {lines[-1]}"
    return lines[0]


def _cell(res: Result, hang_after: float, note: str, work: Path) -> str:
    if res.rc is None:
        head = f"hung (killed after {hang_after:g} s)"
    elif res.rc < 0:
        head = f"killed by {signal.Signals(-res.rc).name}: {_first_line(res.err)}"
    else:
        head = f"{res.rc}: {_first_line(res.err)}"
    text = f"{head} — {note}" if note else head
    # Paths relative to the case's scratch folder, so the two columns read alike.
    text = text.replace(f"{work.resolve()}/", "").replace(f"{work}/", "")
    return text.replace("|", "\\|").replace("\n", " ")[:400]


def _run(ctx: Ctx, results: str = "res", *extra: str) -> Result:
    return ctx.bench("run", *SYNTHETIC, "--results", results, *extra)


def _must(res: Result, what: str) -> None:
    if res.rc != 0:
        raise RuntimeError(f"setup step {what} failed ({res.rc}): {_first_line(res.err)}")


# --- item 1: a freeze never deletes its input --------------------------------------------------

def freeze_into_results(ctx: Ctx) -> Observation:
    _must(_run(ctx), "run")
    before = len(ctx.files("res/runs"))
    res = ctx.bench("reference", "freeze", "res", "--results", "res", "--force")
    return res, f"res/runs: {before} → {len(ctx.files('res/runs'))} file(s)"


def freeze_force_unrelated(ctx: Ctx) -> Observation:
    _must(_run(ctx), "run")
    (ctx.work / "ref").mkdir()
    (ctx.work / "ref" / "notes.txt").write_text("someone's notes\n")
    res = ctx.bench("reference", "freeze", "ref", "--results", "res", "--force")
    manifest = ctx.work / "ref" / "MANIFEST.sha256"
    swept = manifest.is_file() and "notes.txt" in manifest.read_text()
    kept = (ctx.work / "ref" / "notes.txt").is_file()
    return res, f"notes.txt {'kept' if kept else 'deleted'}, {'in' if swept else 'not in'} MANIFEST"


# --- item 2: an undefined pAUC ------------------------------------------------------------------

def _nan_run(ctx: Ctx) -> Result:
    return _run(ctx, "res", "--fmr", "0.99")  # every mated pair above the threshold: FNMR 0 at zero discard


def nan_run(ctx: Ctx) -> Observation:
    res = _nan_run(ctx)
    rows = (ctx.work / "res" / "pauc.csv").read_text().splitlines() if (ctx.work / "res" / "pauc.csv").is_file() else []
    return res, f"stdout: {res.out.splitlines()[0] if res.out else '-'}; pauc.csv rows: {len(rows) - 1 if rows else 0}"


def nan_then_check(ctx: Ctx) -> Observation:
    _nan_run(ctx)
    return ctx.bench("check", "--results", "res"), ""


def nan_then_report(ctx: Ctx) -> Observation:
    _nan_run(ctx)
    return ctx.bench("report", "--source", "res", "--out", "rep", "--no-images"), ""


def check_published(ctx: Ctx) -> Observation:
    return ctx.bench("check", "--results", str(ctx.tree / "results" / "published" / "diffiqa_ijcb2023")), ""


# --- item 3: concurrent runs sharing a score file -----------------------------------------------

def race(ctx: Ctx, tries: int = 5) -> Observation:
    failed: list[Result] = []
    for k in range(tries):
        procs = []
        for folds in ("1", "2", "1,2"):
            cmd = [sys.executable, "-m", "bench", "run", *SYNTHETIC, "--results", f"race{k}", "--folds", folds]
            procs.append(subprocess.Popen(cmd, cwd=ctx.work, env=ctx.env(BENCH_CACHE=str(ctx.work / f"cache{k}")),
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            if proc.returncode != 0:
                failed.append(Result(proc.returncode, "", err))
    first = failed[0] if failed else Result(0, "", "")
    return first, f"{len(failed)} of {3 * tries} concurrent runs failed"


# --- item 4: Ray on an unreachable cluster ------------------------------------------------------

def ray_unreachable(ctx: Ctx) -> Observation:
    return _run(ctx, "res", "--executor", "ray", "--ray-address", "127.0.0.1:1"), ""


# --- item 5: a read-only, filled cache ----------------------------------------------------------

def read_only_cache(ctx: Ctx) -> Observation:
    _must(_run(ctx, "res1"), "run filling the cache")
    cache = ctx.work / "cache"
    res = ctx.bench("run", *SYNTHETIC, "--results", "res2",
                    mount=f"mount --bind {cache} {cache} && mount -o remount,bind,ro {cache}")
    return res, ""


# --- item 6: tracebacks, refusals, --dry-run ----------------------------------------------------

def seed_negative(ctx: Ctx) -> Observation:
    return _run(ctx, "res", "--seed", "-1"), ""


def batch_size_zero(ctx: Ctx) -> Observation:
    return _run(ctx, "res", "--batch-size", "0"), ""


def bench_results_file(ctx: Ctx) -> Observation:
    (ctx.work / "afile").write_text("not a folder\n")
    return ctx.bench("run", *SYNTHETIC, env=ctx.env(BENCH_RESULTS=str(ctx.work / "afile"))), ""


def cache_file(ctx: Ctx) -> Observation:
    (ctx.work / "afile").write_text("not a folder\n")
    return _run(ctx, "res", "--cache", "afile"), ""


def _leftovers(ctx: Ctx, folder: str) -> str:
    """Temporary files the failed command left in ``folder``."""
    tmp = [f for f in ctx.files(folder) if f.endswith(".tmp")]
    return f"temporary files left: {len(tmp)}"


def read_only_results(ctx: Ctx) -> Observation:
    (ctx.work / "res").mkdir()
    res = ctx.bench("run", *SYNTHETIC, "--results", "res",
                    mount="mount --bind res res && mount -o remount,bind,ro res")
    return res, ""


def _disk_full(ctx: Ctx, size: str) -> Observation:
    (ctx.work / "res").mkdir()
    # The tmpfs vanishes with the command: copy what it held to res.after first, to look at.
    res = ctx.bench("run", *SYNTHETIC, "--results", "res", mount=f"mount -t tmpfs -o size={size} tmpfs res",
                    after="cp -a res res.after")
    return res, _leftovers(ctx, "res.after")


def disk_full(ctx: Ctx) -> Observation:
    return _disk_full(ctx, "16k")  # full before the first score part


def disk_full_at_merge(ctx: Ctx) -> Observation:
    return _disk_full(ctx, "72k")  # room for the score part, not for the merged score file


def report_truncated_run(ctx: Ctx) -> Observation:
    _must(_run(ctx, "res", "--bootstrap", "10"), "run")
    run = next((ctx.work / "res" / "runs").glob("*.json"))
    run.write_text(run.read_text()[:200])
    return ctx.bench("report", "--source", "res", "--out", "rep", "--no-images"), ""


def bootstrap_negative(ctx: Ctx) -> Observation:
    return _run(ctx, "res", "--bootstrap", "-5"), ""


def jobs_zero(ctx: Ctx) -> Observation:
    return _run(ctx, "res", "--jobs", "0"), ""


def dry_run_writes_nothing(ctx: Ctx) -> Observation:
    res = ctx.bench("run", "--method", "random,cr-fiqa", "--fr", "arcface", "--dataset", "lfw", "--dry-run")
    written = [f for f in ctx.files(".") if not f.startswith("cache")]
    return res, f"files written: {', '.join(written) or 'none'}"


# --- item 7: silent wrongness -------------------------------------------------------------------

def _frozen(ctx: Ctx) -> None:
    _must(_run(ctx), "run")
    _must(ctx.bench("reference", "freeze", "ref", "--results", "res"), "freeze")


def against_tampered(ctx: Ctx) -> Observation:
    _frozen(ctx)
    tol = ctx.work / "ref" / "tolerances.csv"
    tol.write_text(tol.read_text().replace(",0.0,", ",0.5,", 1) if ",0.0," in tol.read_text() else tol.read_text() + "\n")
    res = ctx.bench("check", "--results", "res", "--against", "ref")
    said = "MANIFEST" in res.out + res.err
    return res, f"MANIFEST {'mentioned' if said else 'not mentioned'}"


def against_no_manifest(ctx: Ctx) -> Observation:
    _frozen(ctx)
    (ctx.work / "ref" / "MANIFEST.sha256").unlink()
    res = ctx.bench("check", "--results", "res", "--against", "ref")
    said = "MANIFEST" in res.out + res.err
    return res, f"MANIFEST {'mentioned' if said else 'not mentioned'}"


def swapped_curve(ctx: Ctx) -> Observation:
    _must(ctx.bench("run", "--method", "random,oracle", "--fr", "synthetic", "--dataset", "synthetic",
                    "--no-progress", "--bootstrap", "0", "--results", "res"), "runs")
    a, b = sorted((ctx.work / "res" / "curves").glob("*.parquet"))[:2]
    tmp = a.with_suffix(".swap")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    return ctx.bench("report", "--source", "res", "--out", "rep", "--no-images"), ""


def _lfw_protocol_images(pairs: Path) -> list[str]:
    """The images pairs.txt uses (LFW naming), the ones a score file must cover."""
    used = set()
    for line in pairs.read_text().splitlines()[1:]:
        parts = line.split()
        named = [(parts[0], parts[1]), (parts[0], parts[2])] if len(parts) == 3 else [(parts[0], parts[1]), (parts[2], parts[3])]
        used.update(f"{name}/{name}_{int(n):04d}.jpg" for name, n in named)
    return sorted(used)


def import_wrong_identity(ctx: Ctx) -> Observation:
    ctx.python("from pathlib import Path\nfrom bench.datasets import fixtures\nfixtures.write_lfw(Path('data'))")
    images = _lfw_protocol_images(ctx.work / "data" / "lfw" / "pairs.txt")
    lines = [f"{image} {k / 100:.2f}" for k, image in enumerate(images)]
    name = images[0].split("/")[1]
    other = next(image.split("/")[0] for image in images if not name.startswith(image.split("/")[0]))
    lines[0] = f"{other}/{name} 0.00"  # the file name exists, under another identity's folder
    (ctx.work / "scores.txt").write_text("\n".join(lines) + "\n")
    res = ctx.bench("import-scores", "scores.txt", "--method", "pcnet", "--dataset", "lfw", "--data-root", "data",
                    "--results", "res")
    return res, f"`{other}/{name}`; stdout: {res.out.strip() or '-'}"


def compare_other_folds(ctx: Ctx) -> Observation:
    _must(ctx.bench("run", *SYNTHETIC, "--results", "res", "--folds", "1"), "run random")
    _must(ctx.bench("run", "--method", "oracle", *SYNTHETIC[2:], "--results", "res", "--folds", "2"), "run oracle")
    return ctx.bench("compare", "--results", "res", "--method", "random", "--method", "oracle"), ""


# --- item 8: recorded stage costs ---------------------------------------------------------------

def _timings(ctx: Ctx) -> str:
    records = [json.loads(p.read_text()) for p in sorted((ctx.work / "res" / "runs").glob("*.json"))
               if p.name != "not_run.json" and not p.name.endswith(".boot.json")]
    parts = []
    for rec in records:
        t = rec.get("timings", {})
        shown = {k: v for k, v in t.items() if k in ("align", "embed", "score") or "shared" in k}
        parts.append(f"{rec.get('method')}: " + ", ".join(_stage(k, v) for k, v in shown.items()))
    return "; ".join(parts) or "no run record"


def _stage(name: str, value: object) -> str:
    """One recorded stage time: seconds, or a record with its seconds and whether it was shared."""
    if isinstance(value, dict):
        shared = f" shared by {value.get('cells', '?')} cells" if value.get("shared") else ""
        return f"{name} {float(value.get('seconds', float('nan'))):.3g}{shared}"
    return f"{name} {float(value):.3g}" if isinstance(value, (int, float)) else f"{name} {json.dumps(value)}"


def plan_timings(ctx: Ctx) -> Observation:
    res = ctx.bench("run", "--method", "random,oracle", *SYNTHETIC[2:], "--results", "res")
    return res, "recorded s: " + _timings(ctx)


def ray_timings(ctx: Ctx) -> Observation:
    res = ctx.bench("run", *SYNTHETIC, "--results", "res", "--executor", "ray", "--jobs", "1", timeout=300)
    return res, "recorded s: " + _timings(ctx)


@dataclass(frozen=True)
class Case:
    """One finding of issue 22 (``item``) as a command line."""

    id: str
    item: int
    what: str
    run: Callable[[Ctx], Observation]
    mounts: bool = False


CASES = [
    Case("freeze-into-results", 1, "`reference freeze R --results R --force`", freeze_into_results),
    Case("freeze-force-unrelated", 1, "`reference freeze D --force`, D holds notes.txt", freeze_force_unrelated),
    Case("nan-pauc-run", 2, "`run --fmr 0.99` (FNMR 0 at zero discard)", nan_run),
    Case("nan-then-check", 2, "`check` on that folder", nan_then_check),
    Case("nan-then-report", 2, "`report` on that folder", nan_then_report),
    Case("check-published", 2, "`check --results results/published/diffiqa_ijcb2023`", check_published),
    Case("race-shared-score-file", 3, "3 concurrent runs, --folds 1 / 2 / 1,2, 5 tries", race),
    Case("ray-unreachable", 4, "`run --executor ray --ray-address 127.0.0.1:1`", ray_unreachable),
    Case("read-only-cache", 5, "`run` with a filled, read-only cache", read_only_cache, mounts=True),
    Case("seed-negative", 6, "`run --seed -1`", seed_negative),
    Case("batch-size-zero", 6, "`run --batch-size 0`", batch_size_zero),
    Case("bench-results-file", 6, "`BENCH_RESULTS=FILE run`", bench_results_file),
    Case("cache-file", 6, "`run --cache FILE`", cache_file),
    Case("read-only-results", 6, "`run --results R`, R read-only", read_only_results, mounts=True),
    Case("disk-full", 6, "`run --results R`, R a 16 KiB tmpfs", disk_full, mounts=True),
    Case("disk-full-at-merge", 6, "`run --results R`, R a 72 KiB tmpfs", disk_full_at_merge, mounts=True),
    Case("report-truncated-run", 6, "`report` with a truncated runs/*.json", report_truncated_run),
    Case("bootstrap-negative", 6, "`run --bootstrap -5`", bootstrap_negative),
    Case("jobs-zero", 6, "`run --jobs 0`", jobs_zero),
    Case("dry-run-writes-nothing", 6, "`run --dry-run` with cells that cannot run", dry_run_writes_nothing),
    Case("against-tampered", 7, "`check --against D`, D/tolerances.csv edited", against_tampered),
    Case("against-no-manifest", 7, "`check --against D`, D/MANIFEST.sha256 deleted", against_no_manifest),
    Case("swapped-curve", 7, "`report`, two curves/*.parquet swapped", swapped_curve),
    Case("import-wrong-identity", 7, "`import-scores`, a file under another identity's folder", import_wrong_identity),
    Case("compare-other-folds", 7, "`compare` of runs on folds 1 and 2", compare_other_folds),
    Case("plan-timings", 8, "plan run of 2 cells, fresh cache: recorded stage times", plan_timings),
    Case("ray-timings", 8, "`run --executor ray --jobs 1`: recorded stage times", ray_timings),
]


def _can_mount() -> bool:
    try:
        probe = ["unshare", "-m", "--propagation", "private", "true"]
        return subprocess.run(probe, capture_output=True, check=False).returncode == 0
    except OSError:
        return False


def _measure(case: Case, tree: Path, work: Path, hang_after: float, mounts: bool) -> str:
    if case.mounts and not mounts:
        return "skipped: needs a private mount namespace (root)"
    ctx = Ctx(tree, work, hang_after)
    try:
        res, note = case.run(ctx)
    except (RuntimeError, OSError, subprocess.SubprocessError, StopIteration, ValueError) as exc:
        return f"could not measure: {exc}"
    return _cell(res, hang_after, note, work)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", default=BEFORE, help=f"commit of the 'before' tree (default {BEFORE})")
    ap.add_argument("--before-tree", type=Path, help="an existing checkout to use as 'before' instead")
    ap.add_argument("--after-tree", type=Path, default=REPO, help="the 'after' checkout (default: this one)")
    ap.add_argument("--only", nargs="*", help="case ids (default: all)")
    ap.add_argument("--hang-after", type=float, default=60.0, help="seconds before a command counts as hung (default 60)")
    args = ap.parse_args()
    cases = [c for c in CASES if not args.only or c.id in args.only]
    mounts = _can_mount()
    scratch = Path(tempfile.mkdtemp(prefix="bad-input-table-"))
    before = args.before_tree
    made_worktree = before is None
    try:
        if made_worktree:
            before = scratch / "before"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(before), args.before],
                           check=True, capture_output=True)
        assert before is not None
        rows = []
        for case in cases:
            cells = []
            for label, tree in (("before", before), ("after", args.after_tree)):
                print(f"{case.id} [{label}] …", file=sys.stderr, flush=True)
                cells.append(_measure(case, tree, scratch / label / case.id, args.hang_after, mounts))
            rows.append(f"| {case.item} | {case.id}: {case.what} | {cells[0]} | {cells[1]} |")
    finally:
        if made_worktree and before is not None and before.exists():
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(before)], capture_output=True,
                           check=False)
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"Before: {args.before_tree or args.before}; after: {args.after_tree} (working tree). Cell: exit code: first line "
          f"of stderr — what was observed.\n")
    print("| item | case | before | after |\n|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
