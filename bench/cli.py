"""The ``bench`` command line. It parses arguments and calls library functions; no logic here.

Heavy libraries (torch, detectors) are imported only by the subcommands that need them, so
``bench list`` and ``bench report`` start fast and never import torch.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bench import __version__
from bench.core.errors import BenchError

if TYPE_CHECKING:
    from bench.pipeline.cell import RunConfig
    from bench.results.reference import Tolerance

Handler = Callable[[argparse.Namespace], int]


def _cmd_list(args: argparse.Namespace) -> int:
    from bench.core.cards import load_cards

    kind = {"methods": "method", "datasets": "dataset", "fr": "fr"}[args.what]
    if args.options and kind == "dataset":
        raise BenchError("bench list --options: datasets have no options; try bench list methods --options or bench list fr --options")
    for card in load_cards(kind).values():  # type: ignore[arg-type]
        if args.options:
            from bench.core.options import describe

            print(card.name)
            print("\n".join(f"  {line}" for line in describe(card)) or "  (no options)")
            continue
        extra = ""
        if kind == "method":
            extra = f" [{'higher' if card.get('higher_is_better') else 'lower'} is better" + (", import-only" if card.get("import_only") else "") + "]"
        print(f"{card.name:<20} {card.paper_name:<26}{extra} {card.description}")
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from bench.core import paths
    from bench.datasets.dataset_stats import describe

    print(describe(paths.data_root(args.data_root)))
    return 0


def _parse_folds(text: str | None) -> list[int] | None:
    if text is None or text == "all":
        return None
    try:
        return [int(x) for x in text.split(",") if x]
    except ValueError:
        raise BenchError(f"--folds {text!r}: expected comma-separated fold numbers, e.g. 1,2, or 'all'") from None


def _parse_options(items: list[str] | None, flag: str) -> dict[str, object]:
    """``KEY=VALUE`` pairs of ``flag`` (--method-option / --fr-option), values kept as text:
    bench.core.options types them by what the card declares."""
    options: dict[str, object] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise BenchError(f"{flag} {item!r}: expected KEY=VALUE")
        if key.strip() in options:
            raise BenchError(f"{flag} {key.strip()}: given twice ({options[key.strip()]!r} and {text!r}); keep one")
        options[key.strip()] = text
    return options


def _cmd_run(args: argparse.Namespace) -> int:
    from bench.pipeline.runner import RunConfig, run

    cfg = RunConfig(
        method=args.method, fr=args.fr, dataset=args.dataset, data_root=args.data_root, results=args.results,
        cache=args.cache, method_weights=args.weights, fr_weights=args.fr_weights, quality_fr=args.quality_fr,
        quality_fr_weights=args.quality_fr_weights, device=args.device,
        edc_variant=args.edc_variant, fmr=args.fmr, discards=tuple(args.discard), folds=_parse_folds(args.folds),
        force=args.force, seed=args.seed, batch_size=args.batch_size, skip_bad=args.skip_bad,
        quality_rule=args.quality_rule, template_rule=args.template_rule, progress=not args.no_progress,
        method_options=_parse_options(args.method_option, "--method-option"),
        fr_options=_parse_options(args.fr_option, "--fr-option"), trust_weights=args.trust_weights,
        bootstrap=args.bootstrap, interval=args.interval,
    )
    if args.plan or args.dry_run or args.executor or args.jobs is not None or args.ray_address or \
            any("," in (v or "") or v == "all" for v in (args.method, args.fr, args.dataset)):
        return _run_plan(args, cfg)
    if not (args.method and args.fr and args.dataset):
        raise BenchError("bench run: pass --method, --fr and --dataset (comma-separated lists or 'all'), or --plan FILE")
    record = run(cfg)
    _print_record(record)
    print(f"run {record['run_id']} → {Path(cfg.results) / 'pauc.csv'}")
    return 0


def _print_record(record: dict) -> None:
    paucs = "  ".join(f"pAUC@{k}={'n/a' if math.isnan(v) else format(v, '.4f')}" for k, v in record["pauc"].items())
    print(f"{record['method']} / {record['fr']} / {record['dataset']}: FNMR@FMR={record['fmr']:g} {record['fnmr_at_0']:.4f} "
          f"(threshold {record['threshold']:.4f}, {record['n_mated']} mated, {record['n_nonmated']} non-mated)  {paucs}")


def _run_plan(args: argparse.Namespace, base: RunConfig) -> int:
    """Several cells (--plan FILE, or lists / 'all' in --method, --fr, --dataset) on an executor."""
    from bench.pipeline import plan as plans
    from bench.pipeline.executors import execute

    if args.plan and (args.method or args.fr or args.dataset):
        raise BenchError("--plan FILE names the cells itself: drop --method, --fr and --dataset")
    if args.plan:
        plan = plans.load_plan(args.plan)
    elif args.method and args.fr and args.dataset:
        plan = plans.from_lists(args.method, args.fr, args.dataset)
    else:
        raise BenchError("bench run: pass --method, --fr and --dataset (comma-separated lists or 'all'), or --plan FILE")
    # Given on the command line, these win over the plan's settings.
    overrides: dict[str, object] = {"folds": _parse_folds(args.folds)} if args.folds is not None else {}
    if args.quality_fr:
        overrides["quality_fr"] = args.quality_fr
    cells = plans.expand(plan, base, overrides)
    if args.dry_run:
        for line in plans.dry_run_lines(cells):
            print(line, flush=True)
        print(plans.summary(cells))
        return 0

    def report(pc: plans.PlanCell, record: dict | None, error: str | None) -> None:
        if record is not None:
            _print_record(record)
        else:
            print(f"{pc.label}: not run: {error}")

    outcome = execute(cells, args.executor or "local", args.jobs, args.ray_address, on_done=report,
                      ray_timeout=args.ray_timeout)
    print(f"{len(outcome.records)} cell(s) evaluated, {len(outcome.not_run)} not run, {len(outcome.failed)} failed "
          f"→ {Path(base.results) / 'pauc.csv'}")
    return 1 if outcome.failed else 0


def _check_edc_variant(variant: str | None) -> None:
    """``--edc-variant`` must name a variant of bench.stats.edc (one error line, not argparse's usage text)."""
    from bench.stats.edc import VARIANTS

    if variant is not None and variant not in VARIANTS:
        raise BenchError(f"--edc-variant {variant}: unknown EDC variant; known: {', '.join(VARIANTS)}")


def _cmd_check(args: argparse.Namespace) -> int:
    from bench.core import paths
    from bench.results import check

    if args.against is not None:
        return _check_against(args)
    _check_edc_variant(args.edc_variant)
    frame = check.load_results(paths.results_dir(args.results))
    note = check.assumed_note(frame, args.edc_variant)
    if note:
        print(note)
    table = check.compare_published(frame, tol=args.tol, edc_variant=args.edc_variant)
    print(check.format_table(table, show_not_reproduced=args.verbose))
    if args.report:
        from bench.core.io import atomic_write_text
        from bench.report import render_drift_markdown

        atomic_write_text(args.report, render_drift_markdown(table))
    return check.exit_code(table, args.strict)


def _check_against(args: argparse.Namespace) -> int:
    from bench.core import paths
    from bench.core.io import atomic_write_text
    from bench.results import reference

    table = reference.check_against(paths.results_dir(args.results), args.against)
    text = reference.format_against(table, show_not_reproduced=args.verbose)
    print(f"against reference {args.against}:\n{text}")
    if args.report:
        atomic_write_text(args.report, text + "\n")
    return reference.exit_code(table, args.strict)


def _parse_tolerance(text: str) -> tuple[str, Tolerance]:
    from bench.results.reference import Tolerance

    method, _, rest = text.partition("=")
    value, _, why = rest.partition(":")
    try:
        return method, Tolerance(float(value), why or "given with --tol-method")
    except ValueError:
        raise BenchError(f"--tol-method {text}: expected METHOD=TOL[:why], e.g. ser-fiq=0.002:float32 kernels") from None


def _cmd_reference(args: argparse.Namespace) -> int:
    from bench.core import paths
    from bench.results import reference

    if args.action == "verify":
        print(f"{args.dir}: {reference.verify(args.dir)} files match {reference.MANIFEST}")
        return 0
    default = reference.Tolerance(args.tol, args.why)
    per_method = dict(_parse_tolerance(t) for t in args.tol_method or [])
    tol = reference.freeze(paths.results_dir(args.results), args.dir, default, per_method, force=args.force)
    print(f"{args.dir}: {len(tol)} cells frozen with tolerances; write its README.md, then "
          f"`bench reference verify {args.dir}`")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from bench.core import paths
    from bench.stats.paired import compare_methods, format_table

    if len(args.method) != 2:
        raise BenchError(f"--method given {len(args.method)} time(s); pass exactly two, e.g. --method diffiqa --method cr-fiqa")
    a, b = args.method
    rows, notes, pools = compare_methods(paths.results_dir(args.results), a, b, args.fr, args.dataset,
                                         pool=args.pool, metric=args.metric)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if rows:
        print(format_table(rows, a, b, args.metric))
        for line in pools:
            print(line)
    return 0 if rows else 1


def _cmd_report(args: argparse.Namespace) -> int:
    import os

    from bench.report import build_report

    _check_edc_variant(args.edc_variant)
    # The results folder named by BENCH_RESULTS (as `bench check` reads it), else the paper's numbers.
    source = args.source or os.environ.get("BENCH_RESULTS") or "published"
    written = build_report(results=None if source == "published" else Path(source), source=source,
                           discard=args.discard, out=args.out, tables=args.table, data_root=args.data_root,
                           edc_variant=args.edc_variant, published_blocks=not args.no_published_blocks, ci=args.ci,
                           bands=args.bands, cache=args.cache, strip=args.strip, images=not args.no_images,
                           metric=args.metric)
    for path in written:
        if args.table and path.parent.name == "tables" and path.suffix == ".md":
            print(path.read_text(encoding="utf-8"))
    for path in written:
        print(path)
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from bench.core import paths
    from bench.datasets.fetch import fetch

    root = paths.data_root(args.data_root)
    if root is None:
        raise BenchError("bench fetch: pass --data-root DIR or set BENCH_DATA (where the dataset goes)")
    print(fetch(args.name, root, mirror=args.mirror, copy=args.copy))
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from bench.core.cards import get_card
    from bench.core.score_store import score_path, write_scores
    from bench.pipeline.import_scores import import_scores
    from bench.pipeline.runner import load_dataset

    card = get_card("method", args.method)
    needs_fr = bool(card.get("needs_fr", False))
    if needs_fr and not args.fr:
        raise BenchError(f"{args.method}'s scores depend on the FR model inside it: say which with --fr NAME "
                         f"(e.g. --fr {card.get('quality_fr') or 'arcface'}); `bench run --fr NAME` then uses them")
    if args.fr and not needs_fr:
        raise BenchError(f"--fr {args.fr}: {args.method}'s scores do not depend on an FR model (its card says needs_fr = false); drop --fr")
    ds = load_dataset(args.dataset, args.data_root)
    path = score_path(args.results, args.method, ds.name, args.fr)
    if path.exists() and not args.force:
        raise BenchError(f"{path}: a score file exists already; pass --force to replace it with the imported scores")
    ids, scores, meta = import_scores(args.method, ds, args.file, args.list, args.lower_is_better)
    write_scores(path, ids, scores, {**meta, "fr": args.fr or "none"})
    print(f"{len(ids)} scores → {path}")
    return 0


def _cmd_train_ddpm(args: argparse.Namespace) -> int:
    from bench.core.device import check_device
    from bench.diffusion.train_ddpm import train_ddpm

    check_device(args.device)
    if args.preview is not None:
        from bench.diffusion.checkpoint import DOMAIN_SIZES
        from bench.diffusion.train_ddpm import write_preview

        rows, cols = write_preview(args.data, args.preview, args.crop_size or DOMAIN_SIZES[args.domain],
                                   count=args.preview_count, t_max=args.t_max, timesteps=args.timesteps,
                                   degradation=args.degradation, centre_fraction=args.centre_fraction, seed=args.seed)
        print(f"preview: {rows} images x {cols} columns (clean, degraded, x_t at t = 0, T'/3, 2T'/3, T'-1) → "
              f"{args.preview}; nothing trained")
        return 0

    result = train_ddpm(
        args.data, args.out, domain=args.domain, crop_size=args.crop_size, image_size=args.image_size,
        width=args.width, mults=tuple(int(m) for m in args.mults.split(",")), heads=args.heads, dim_head=args.dim_head,
        steps=args.steps, batch_size=args.batch_size, recipe=args.recipe, degradation=args.degradation, lr=args.lr,
        ema_decay=args.ema_decay, timesteps=args.timesteps, t_max=args.t_max, centre_fraction=args.centre_fraction, device=args.device, amp=args.amp, workers=args.workers,
        save_every=args.save_every, max_minutes=args.max_minutes, seed=args.seed, progress=not args.no_progress,
        trust_weights=args.trust_weights,
    )
    print(f"step {result.step} ({result.steps_this_run} this run, {result.seconds:.0f} s), "
          f"mean loss of the last 100 steps {result.mean_loss_last_100:.5f} → {result.checkpoint}")
    return 0


def _cmd_train_distill(args: argparse.Namespace) -> int:
    from bench.methods.distill import train_distill

    result = train_distill(
        args.labels, args.images, args.out, kind=args.kind, fr=args.fr, fr_weights=args.fr_weights,
        epochs=args.epochs, batch_size=args.batch_size, lr_head=args.lr_head, lr_backbone=args.lr_backbone,
        backbone_tensors=args.backbone_tensors, freeze_rest=args.freeze_rest, val_every=args.val_every, beta=args.beta, min_images=args.min_images,
        epsilon=args.epsilon, theta=args.theta, device=args.device, amp=not args.no_amp, seed=args.seed,
        progress=not args.no_progress,
    )
    print(f"{args.kind}: best validation loss {result.best_val_loss:.5f} after {result.epochs} epoch(s) "
          f"({result.n_train} train / {result.n_val} validation, {result.seconds:.0f} s) → {result.checkpoint}")
    return 0


def _cmd_crops(args: argparse.Namespace) -> int:
    from bench.core import paths
    from bench.datasets.crop_export import all_images, export_crops
    from bench.pipeline.cell import load_dataset

    dataset = load_dataset(args.dataset, args.data_root)
    if args.all_images:
        dataset = all_images(dataset)
    counts = export_crops(dataset, args.domain, args.out, paths.cache_dir(args.cache), args.detected_only,
                          progress=not args.no_progress)
    print(f"{dataset.name} [{args.domain}]: {counts['exported']} of {counts['images']} crops "
          f"({counts['detected']} detected, {counts['fallback']} fallback) → {args.out}")
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train DifFIQA's DDPM or a distilled regressor (DifFIQA(R), eDifFIQA)")
    kinds = train.add_subparsers(dest="what", required=True)

    s = kinds.add_parser("ddpm", help="train (or resume) the DifFIQA denoiser on a folder of aligned faces",
                         description="Paper configuration by default: UNet width 128, mults 1,2,4,8, cosine schedule, "
                                     "1000 steps, x0 prediction, t in [0, 100), extended degradation training, "
                                     "BSRGAN degradations, micro-batch 16 x 4 accumulation, Adam 8e-5 betas (0.9, 0.99), "
                                     "EMA 0.995 every 10 steps (the official trainer). Training resumes when OUT exists.")
    s.add_argument("data", type=Path, help="folder of aligned face crops (or a .npy uint8 [N, H, W, 3])")
    s.add_argument("out", type=Path, help="checkpoint file (resumed when it exists)")
    s.add_argument("--domain", default="arcface112", choices=["arcface112", "dlib150"],
                   help="crop domain of the FR model the DDPM serves; scoring refuses another")
    s.add_argument("--crop-size", type=int)
    s.add_argument("--image-size", type=int, help="UNet input side (smaller = cheaper CPU model)")
    s.add_argument("--width", type=int, default=128)
    s.add_argument("--mults", default="1,2,4,8")
    s.add_argument("--heads", type=int, default=4)
    s.add_argument("--dim-head", type=int, default=32)
    s.add_argument("--steps", type=int, default=100_000)
    s.add_argument("--batch-size", type=int, default=16, help="micro-batch size (official: 16, accumulated 4 times)")
    s.add_argument("--recipe", default="official", choices=["official", "cheap"],
                   help="official: 4-step gradient accumulation, Adam betas (0.9, 0.99), EMA every 10 steps after 100 "
                        "copies; cheap: no accumulation, betas (0.9, 0.999), EMA every step with a (1+n)/(10+n) ramp")
    s.add_argument("--degradation", default="bsrgan", choices=["bsrgan", "cheap"],
                   help="bsrgan: the official BSRGAN sequence on a 512-px copy; cheap: our approximation at crop size")
    s.add_argument("--lr", type=float, default=8e-5)
    s.add_argument("--ema-decay", type=float, default=0.995)
    s.add_argument("--timesteps", type=int, default=1000)
    s.add_argument("--t-max", type=int, default=100, help="training t uniform in [0, t_max)")
    s.add_argument("--centre-fraction", type=float, default=1.0, help="central fraction of each image kept before resizing")
    s.add_argument("--device", default="cpu")
    s.add_argument("--amp", action="store_true", help="mixed precision on GPU")
    s.add_argument("--workers", type=int, default=0)
    s.add_argument("--save-every", type=int, default=500)
    s.add_argument("--max-minutes", type=float, help="stop (and save) after this long")
    s.add_argument("--trust-weights", action="store_true",
                   help="allow resuming from a checkpoint that needs arbitrary objects unpickled (can run code)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--preview", type=Path, metavar="PNG",
                   help="write a grid of training images with their sampled degradations and training inputs "
                        "(cf. Fig. 3) to PNG and exit without training (OUT is not touched)")
    s.add_argument("--preview-count", type=int, default=8, help="images in the --preview grid (default 8)")
    s.set_defaults(func=_cmd_train_ddpm)

    s = kinds.add_parser("distill", help="distil DifFIQA scores into an FR backbone + regression head")
    s.add_argument("labels", type=Path, help="teacher scores: a diffiqa score file, or CSV image_id,quality[,identity]")
    s.add_argument("images", type=Path, help="folder holding each image_id as an aligned crop of the FR model's domain, "
                        "or a .npy crop array with its .ids.txt (bench crops)")
    s.add_argument("out", type=Path, help="checkpoint file")
    s.add_argument("--kind", default="diffiqa-r", choices=["diffiqa-r", "ediffiqa"])
    s.add_argument("--fr", default="cosface", help="PyTorch FR backbone to fine-tune (official: cosface)")
    s.add_argument("--fr-weights", type=Path)
    s.add_argument("--epochs", type=int, help="default: the official 1 (diffiqa-r) or 3 (ediffiqa)")
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--lr-head", type=float, default=1e-3)
    s.add_argument("--lr-backbone", type=float, default=1e-4)
    s.add_argument("--backbone-tensors", type=int, default=100, help="last backbone parameter tensors trained")
    s.add_argument("--freeze-rest", action="store_true",
                   help="stop gradients of the other backbone tensors (not official: there they count in the clip norm)")
    s.add_argument("--val-every", type=int, default=10, help="every k-th item by label is held out for validation")
    s.add_argument("--beta", type=float, default=0.2, help="eDifFIQA: top fraction of quality for identity centres")
    s.add_argument("--min-images", type=int, default=10, help="eDifFIQA: identities with fewer top images are dropped")
    s.add_argument("--epsilon", type=float, default=0.5, help="eDifFIQA: label adjustment weight")
    s.add_argument("--theta", type=float, default=0.5, help="eDifFIQA: loss mix of similarity and L1 terms")
    s.add_argument("--device", default="cpu")
    s.add_argument("--no-amp", action="store_true")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=_cmd_train_distill)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    p = argparse.ArgumentParser(prog="bench", description="fiqa-bench: reproduce and extend FIQA evaluations (DifFIQA, IJCB 2023).")
    p.add_argument("--version", action="version", version=f"fiqa-bench {__version__}")
    p.add_argument("--cards", type=Path, help="extra card folder (DIR/methods, DIR/fr, DIR/datasets; entries importable "
                                               "from DIR or path/file.py:Class) (default: $BENCH_CARDS)")
    p.add_argument("--threads", type=int, help="torch/OpenMP/BLAS threads of this process and of each worker "
                                               "(default: $BENCH_THREADS, else cores / concurrent processes)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="list registered methods, datasets or FR models (reads cards only)")
    s.add_argument("what", choices=["methods", "datasets", "fr"])
    s.add_argument("--options", action="store_true", help="list each entry's options: name, type, default, help")
    s.set_defaults(func=_cmd_list)

    s = sub.add_parser("datasets", help="show each dataset's expected layout, where it was looked for, and counts")
    s.add_argument("--data-root", type=Path, help="data root (default: $BENCH_DATA)")
    s.set_defaults(func=_cmd_datasets)

    s = sub.add_parser("run", help="score a dataset with a method and FR model, compute EDC and pAUC",
                       description="Compute or reuse scores, embeddings and comparisons for (method, FR model, dataset); "
                                   "append pAUC rows to RESULTS/pauc.csv with curve points and run metadata beside it.")
    s.add_argument("--method", help="registered FIQA method(s) (bench list methods): a comma-separated list, or all")
    s.add_argument("--fr", help="FR model(s) (bench list fr), or onnx:PATH: a comma-separated list, or all")
    s.add_argument("--dataset", help="registered dataset(s) (bench list datasets): a comma-separated list, or all "
                                     "(every real dataset)")
    s.add_argument("--plan", type=Path, help="a TOML plan naming the cells and per-method settings (plans/*.toml)")
    s.add_argument("--dry-run", action="store_true", help="print each cell: runnable with its cost, or why it cannot "
                                                          "run; compute and write nothing")
    s.add_argument("--executor", choices=["local", "ray"], help="run the cells in this process / --jobs worker "
                                                                "processes (local, default) or on Ray (pip install "
                                                                "fiqa-bench[ray])")
    s.add_argument("--jobs", type=int, help="worker processes (local) or CPUs of the local Ray cluster")
    s.add_argument("--ray-address", help="an existing Ray cluster (default: start a local one for the run)")
    s.add_argument("--ray-timeout", type=float, metavar="SECONDS",
                   help="how long an existing cluster (--ray-address or $RAY_ADDRESS) gets to answer before the run "
                        "stops with an error (default 30)")
    s.add_argument("--data-root", type=Path, help="data root (default: $BENCH_DATA)")
    s.add_argument("--results", type=Path, default=None, help="results folder (default: $BENCH_RESULTS or ./bench-results)")
    s.add_argument("--cache", type=Path, help="cache for crops and embeddings (default: $BENCH_CACHE or ~/.cache/fiqa-bench)")
    s.add_argument("--weights", type=Path, help="the method's weight file (or a folder; default: $BENCH_WEIGHTS)")
    s.add_argument("--fr-weights", type=Path, help="the FR model's weight file (or a folder; default: $BENCH_WEIGHTS)")
    s.add_argument("--quality-fr", help="FR model used inside FR-dependent methods (default: the FR model the method's "
                                        "official code uses, from its card, e.g. cosface for DifFIQA and FaceQAN; else "
                                        "--fr). 'same' = the evaluation FR model --fr; e.g. dlib-torch for gradient-based "
                                        "methods while --fr dlib gives the evaluation embeddings")
    s.add_argument("--quality-fr-weights", type=Path, help="weights of --quality-fr")
    s.add_argument("--device", default="cpu", help="torch device: cpu or cuda[:N]")
    s.add_argument("--edc-variant", default="fixed-threshold", choices=["fixed-threshold", "recomputed-threshold"],
                   help="fixed-threshold (Schlett et al. 2023, default) or recomputed-threshold (MagFace/CR-FIQA scripts)")
    s.add_argument("--fmr", type=float, default=1e-3, help="false match rate of the decision threshold (default 1e-3)")
    s.add_argument("--discard", type=float, action="append", default=None, help="pAUC discard limit(s) (default 0.2 and 0.3)")
    s.add_argument("--folds", help="comma-separated protocol folds to use (default all)")
    s.add_argument("--force", action="store_true", help="recompute the scores of this run's images even if the score file "
                                                        "holds them (imported scores included); other images' scores are kept")
    s.add_argument("--method-option", action="append", metavar="KEY=VALUE",
                   help="method option (repeatable), e.g. passes=100, calibrate=true, variant=S "
                        "(bench list methods --options)")
    s.add_argument("--fr-option", action="append", metavar="KEY=VALUE",
                   help="FR model option (repeatable), e.g. color=BGR, mean=127.5, std=128 for onnx:PATH models")
    s.add_argument("--trust-weights", action="store_true",
                   help="let weight files that need full unpickling load (it can run code from the file: only for "
                        "files from a source you trust); tensors-only files never need it")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--skip-bad", action="store_true", help="skip unreadable images (listed in the run metadata) instead of failing")
    s.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="bootstrap replicates of each pAUC's 95%% confidence interval (resampling subjects where the "
                        "protocol knows them; default 1000; 0 skips it)")
    s.add_argument("--interval", choices=("percentile", "bca"), default="percentile",
                   help="how the 95%% interval is read from the replicates: percentile (default) or bca, Efron's "
                        "bias-corrected and accelerated interval (fixed-threshold EDC only; adds one leave-one-"
                        "subject-out pass per subject). Coverage of both measured by benchmarks/bench_intervals.py")
    s.add_argument("--quality-rule", default="min", choices=["min", "mean", "product"], help="pair quality from image qualities")
    s.add_argument("--template-rule", default="min", choices=["min", "mean"], help="IJB-C template quality from image qualities")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")
    s.set_defaults(func=_cmd_run)

    s = sub.add_parser("check", help="compare reproduced pAUC with the published values; exit 1 on drift",
                       description="Compare the paper-protocol rows of RESULTS/pauc.csv (all folds, FMR 1e-3, pair "
                                   "quality min, the paper's quality FR model, default options) with the published "
                                   "pAUC; rows run with other settings are listed as 'other protocol (...)', not compared.")
    s.add_argument("--results", type=Path, help="results folder holding pauc.csv (default: $BENCH_RESULTS, else ./bench-results)")
    s.add_argument("--tol", type=float, default=0.0005, help="per-cell tolerance (default: 0.0005, the printed rounding)")
    s.add_argument("--strict", action="store_true", help="also fail when a published cell is not reproduced")
    s.add_argument("--edc-variant", default="fixed-threshold",
                   help="the EDC variant compared with the paper, fixed-threshold or recomputed-threshold (default: "
                        "fixed-threshold, the paper's); rows of the other variant are listed as other protocol")
    s.add_argument("--report", type=Path, help="also write the drift table as Markdown to this file (default: none)")
    s.add_argument("--verbose", action="store_true", help="list every not-reproduced published cell too")
    s.add_argument("--against", type=Path, metavar="DIR",
                   help="compare with a reference set (results/reference/<name>: our own frozen results with "
                        "per-cell tolerances) instead of the published values; every identity column must match")
    s.set_defaults(func=_cmd_check)

    s = sub.add_parser("reference", help="freeze a results folder as a reference set, or verify one",
                       description="freeze: copy the latest row of each cell of RESULTS (pauc.csv, runs, curves) into "
                                   "DIR with tolerances.csv and MANIFEST.sha256; verify: check DIR's manifest.")
    s.add_argument("action", choices=["freeze", "verify"])
    s.add_argument("dir", type=Path, help="the reference set folder, e.g. results/reference/<name>")
    s.add_argument("--results", type=Path, help="results folder to freeze (default: $BENCH_RESULTS, else ./bench-results)")
    s.add_argument("--tol", type=float, default=0.0, help="tolerance of every cell without --tol-method (default 0)")
    s.add_argument("--why", default="deterministic: same inputs, same code, no float reduction whose order varies",
                   help="reason recorded for the default tolerance")
    s.add_argument("--tol-method", action="append", metavar="METHOD=TOL[:why]", help="a method's tolerance (repeatable)")
    s.add_argument("--force", action="store_true", help="replace an existing reference set (its hand-written files, e.g. README.md, are kept); "
                        "never a folder that is not one")
    s.set_defaults(func=_cmd_reference)

    s = sub.add_parser("compare", help="paired bootstrap test of two methods' pAUC from stored replicates",
                       description="Per cell (latest run of each method and seed in RESULTS/runs; a method with "
                                   "several seeds, e.g. random, as the mean over its seeds) and pooled over disjoint "
                                   "cells: pAUC A - B, its 95% percentile interval, a two-sided bootstrap p-value and "
                                   "its Holm adjustment over every row printed, from the replicates the runs stored "
                                   "(see bench/stats/paired.py). Exit 1 when no cell has both.")
    s.add_argument("--results", type=Path, help="results folder holding runs/ (default: $BENCH_RESULTS, else ./bench-results)")
    s.add_argument("--method", action="append", required=True, help="a method to compare; give exactly two")
    s.add_argument("--fr", help="only cells of this FR model (default: all)")
    s.add_argument("--dataset", help="only cells of this dataset (default: all)")
    s.add_argument("--pool", choices=("all", "dataset", "fr", "none"), default="all",
                   help="pool disjoint cells: all of them, per dataset (over FR models), per FR model (over "
                        "datasets) or none; cells nested in another (e.g. folds 1-2 inside all folds) are left "
                        "out and named (default: all)")
    s.add_argument("--metric", choices=("pauc", "floor-relative"), default="pauc",
                   help="pauc, or floor-relative: (pAUC - best) / (1 - best), best = the cell's theoretical "
                        "best pAUC given its FNMR at discard 0 (fixed-threshold only; default: pauc). The "
                        "author scripts' AUC is not offered: runs store no replicates of it (its threshold is "
                        "recomputed at every discard step); `bench report --metric author-scripts` shows its points")
    s.set_defaults(func=_cmd_compare)

    s = sub.add_parser("report", help="render the paper's tables and figures (LaTeX, HTML, Markdown, PNG/PDF)")
    s.add_argument("--discard", type=float, default=0.3, help="pAUC discard limit of the main table and plot range (default: 0.3)")
    s.add_argument("--source", help="'published' or a results folder (default: $BENCH_RESULTS when set, else published)")
    s.add_argument("--out", type=Path, default=Path("bench-report"), help="output folder (default: ./bench-report)")
    s.add_argument("--table", action="append", help="only these tables (e.g. datasets, pauc, average, runtime, ablation, "
                                                    "breakdown; default: all)")
    s.add_argument("--data-root", type=Path, help="data root, for --table datasets (default: none)")
    s.add_argument("--edc-variant", help="which EDC variant's results to show, fixed-threshold or recomputed-threshold "
                                         "(default: fixed-threshold when present)")
    s.add_argument("--no-published-blocks", action="store_true",
                   help="leave out the published-only section (FR models with no reproduced value)")
    s.add_argument("--no-ci", dest="ci", action="store_false",
                   help="leave the bootstrap intervals ([low, high]) out of the tables (HTML: hidden behind a toggle)")
    s.add_argument("--bands", action="store_true", help="shade each EDC curve's pointwise 95%% bootstrap band "
                                                       "(runs made with --bootstrap N > 0, fixed-threshold)")
    s.add_argument("--strip", type=int, default=8, metavar="N",
                   help="crops per image strip, at evenly spaced quality quantiles (2-32; default: 8)")
    s.add_argument("--cache", type=Path, help="crop cache the image strips read (default: $BENCH_CACHE, "
                                              "else ~/.cache/fiqa-bench)")
    s.add_argument("--no-images", action="store_true", help="leave every face image out (strips, reconstructions): "
                                                            "for datasets whose licence forbids showing them")
    s.add_argument("--metric", choices=("pauc", "floor-relative", "author-scripts"), default="pauc",
                   help="what the pAUC tables show: pauc; floor-relative: (pAUC - best) / (1 - best), best = "
                        "each cell's theoretical best pAUC given its FNMR at discard 0 (fixed-threshold runs with "
                        "a run record); or author-scripts: the CR-FIQA ERC scripts' AUC (threshold recomputed per "
                        "discard step, trapezoid over 0-0.95, unnormalised) from each run record, n/a for runs "
                        "made before it was recorded (published values are left out; default: pauc)")
    s.set_defaults(func=_cmd_report)

    s = sub.add_parser("fetch", help="download a dataset (or link it from $BENCH_MIRROR) into the data root")
    s.add_argument("name")
    s.add_argument("--data-root", type=Path, help="where to put it (default: $BENCH_DATA)")
    s.add_argument("--mirror", help="directory or file:// URL replacing the official location (default: $BENCH_MIRROR)")
    s.add_argument("--copy", action="store_true", help="copy from a mirror folder instead of symlinking it")
    s.set_defaults(func=_cmd_fetch)

    s = sub.add_parser("import-scores", help="turn scores produced by a method's official code into a score file")
    s.add_argument("file", type=Path, help="CSV/TXT 'path score' lines, or a .npy of scores (with --list)")
    s.add_argument("--method", required=True)
    s.add_argument("--dataset", required=True)
    s.add_argument("--list", type=Path, help="text file of image paths, one per line, in the order of the .npy")
    s.add_argument("--lower-is-better", action="store_true", default=None, help="the file's scores are lower-is-better")
    s.add_argument("--fr", help="the FR model inside the method's score (required for FR-dependent methods, e.g. "
                                "SER-FIQ or DifFIQA; refused for the others)")
    s.add_argument("--force", action="store_true", help="replace an existing score file")
    s.add_argument("--data-root", type=Path)
    s.add_argument("--results", type=Path, default=None)
    s.set_defaults(func=_cmd_import)

    from bench.align import domains

    s = sub.add_parser("crops", help="write a dataset's aligned crops as a .npy training array (bench train)",
                       description="Align (or reuse from the crop cache) the images of DATASET in an FR domain and "
                                   "write them as uint8 [N, H, W, 3] to OUT, their image ids to OUT.ids.txt.")
    s.add_argument("dataset", help="registered dataset (bench list datasets)")
    s.add_argument("out", type=Path, help="output .npy")
    s.add_argument("--domain", required=True, choices=domains(), help="crop domain (an FR card's domain)")
    s.add_argument("--all-images", action="store_true",
                   help="every image file of the dataset on disk, not only the protocol's (e.g. LFW 13,233 vs 7,701)")
    s.add_argument("--detected-only", action="store_true", help="leave out crops whose face the detector missed")
    s.add_argument("--data-root", type=Path, help="data root (default: $BENCH_DATA)")
    s.add_argument("--cache", type=Path, help="crop cache (default: $BENCH_CACHE or ~/.cache/fiqa-bench)")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=_cmd_crops)

    _add_train(sub)
    return p


# Numeric options and what they must satisfy, checked for every subcommand that has them, so a
# bad value is one error line before any work (numpy refuses a negative seed mid-run; --jobs 0
# read as "not given", --batch-size 0 and --bootstrap -5 as 0 or a silent skip).
_NUMBERS: tuple[tuple[str, str, Callable[[float], bool], str], ...] = (
    ("seed", "--seed", lambda v: v >= 0, "must be 0 or more (numpy and torch take non-negative seeds)"),
    ("batch_size", "--batch-size", lambda v: v >= 1, "must be at least 1"),
    ("bootstrap", "--bootstrap", lambda v: v >= 0, "must be 0 or more (0 skips the bootstrap)"),
    ("jobs", "--jobs", lambda v: v >= 1, "must be at least 1"),
    ("ray_timeout", "--ray-timeout", lambda v: 0 < v < float("inf"), "must be a positive number of seconds"),
)


def _check_numbers(args: argparse.Namespace) -> None:
    """One error line for the first numeric option outside its range (``_NUMBERS``)."""
    for attr, flag, ok, rule in _NUMBERS:
        value = getattr(args, attr, None)
        if value is not None and not ok(value):
            raise BenchError(f"{flag} {value:g}: {rule}")


def _folders(args: argparse.Namespace) -> list[tuple[Path, str]]:
    """The results and cache folders of this command, each with how it was named (for errors)."""
    import os

    from bench.core import paths

    found = []
    for attr, flag, env in (("results", "--results", "BENCH_RESULTS"), ("cache", "--cache", "BENCH_CACHE")):
        if attr not in args or (args.command == "reference" and args.action == "verify"):
            continue
        if getattr(args, attr) is not None:
            found.append((Path(getattr(args, attr)), f"{flag} {getattr(args, attr)}"))
        elif os.environ.get(env):
            found.append((Path(os.environ[env]), f"{env}={os.environ[env]}"))
        else:
            default = paths.DEFAULT_RESULTS if attr == "results" else paths.cache_dir()
            found.append((default, f"the default {attr} folder {default}"))
    if args.command == "report":  # its results folder is --source, else BENCH_RESULTS (as _cmd_report reads it)
        source = args.source or os.environ.get("BENCH_RESULTS")
        if source and source != "published":
            found.append((Path(source), f"--source {source}" if args.source else f"BENCH_RESULTS={source}"))
    return found


def _check_folders(args: argparse.Namespace) -> None:
    """One error line when a results or cache folder, or a folder above it, is a file: nothing
    can be read from or made under it (else a traceback deep inside the run)."""
    for path, label in _folders(args):
        for part in (path, *path.parents):
            if part.is_dir():
                break
            if part.exists():
                raise BenchError(f"{label}: {'it' if part == path else part} is a file, not a folder")


def _os_error(exc: OSError, args: argparse.Namespace) -> str:
    """A failed file operation as ``file: reason`` (a failed write that names no file: the
    command's folders instead), with what to do about a full disk."""
    import errno

    where = " → ".join(str(name) for name in (exc.filename, exc.filename2) if name is not None)
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason += "; free some space and run the same command again (finished work is kept)"
    if not where:
        folders = ", ".join(label for _, label in _folders(args))
        return f"{reason} (writing under {folders})" if folders else reason
    return f"{where}: {reason}"


def main(argv: list[str] | None = None) -> int:
    """Entry point: run a subcommand; a BenchError prints one ``error:`` line and exits 2, a
    failed file operation (read-only folder, full disk) one line and exits 1."""
    args = build_parser().parse_args(argv)
    if getattr(args, "discard", None) is None and args.command == "run":
        args.discard = [0.2, 0.3]
    try:
        _check_numbers(args)
        _check_folders(args)
        if getattr(args, "results", None) is None and args.command in ("run", "import-scores"):
            from bench.core import paths

            args.results = paths.results_dir()
        from bench.core.threads import configure

        configure(args.threads)  # before any subcommand can start torch or a BLAS
        if args.cards is not None:
            from bench.core.cards import use_cards_folder

            use_cards_folder(args.cards)
        return int(args.func(args))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        # A module-level import of an optional dependency (torch, cv2, ...) in a module the
        # command loaded: the same one-line install hint as bench.core.optional.require gives.
        from bench.core.optional import hint_for

        message = hint_for(exc, f"bench {args.command}")
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # Output piped into e.g. `head`: stop quietly like other command-line tools.
        sys.stderr.close()
        return 0
    except OSError as exc:
        # The file system refused (read-only folder, full disk, no permission): outputs are
        # written to a temporary file and renamed, so nothing is half-written; exit 1 is I/O.
        print(f"error: {_os_error(exc, args)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: cached work is kept; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
