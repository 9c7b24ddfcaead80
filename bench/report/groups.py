"""Evaluation groups: which reproduced rows share a table and an EDC figure, and how each row is labelled.

A pAUC row's identity has two parts. Its *evaluation* — dataset, folds, FR model and its
options, FMR, EDC variant, quality and template rule — fixes the comparisons and the threshold:
rows with one evaluation are scored on the same comparisons, so they share a table column and a
plot panel, and paired tests between them are valid. Its *method configuration* — the method,
its quality FR model, its options, its seed — labels a row and never splits a table.

A group is the rows whose evaluations differ at most in dataset and FR model, drawn in the
paper's layout: datasets as columns, FR models as blocks. Repeated seeds of one configuration
are one row: their mean ± sd, the per-seed values in a footnote.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.report.frames import Replicates
from bench.report.tables import PAUC_DECIMALS, fr_display, method_rank

# What a group's rows share besides the dataset and the FR model (its ``setting`` says how they
# differ from the paper's); a configuration within a group; a cell of a table.
GROUP_KEYS: tuple[str, ...] = ("edc_variant", "fmr", "folds", "quality_rule", "template_rule")
CONFIG_KEYS: tuple[str, ...] = ("method_id", "quality_fr_id", "method_options")
CELL_KEYS: tuple[str, ...] = (*GROUP_KEYS, "fr", "fr_options", "dataset", *CONFIG_KEYS)
PAPER_SETTINGS_TITLE = "the paper's evaluation settings"


@dataclass(frozen=True)
class Group:
    """One table and one EDC figure of reproduced results.

    ``key`` names the section (``pauc`` for the paper's evaluation settings, else
    ``pauc-<setting>``); ``setting`` says how the evaluation differs from the paper's ("" for
    none); ``rows`` holds one row per (FR model, dataset, configuration) with its ``label``
    (seeds merged, :func:`merge_seeds`), ``runs`` every run behind them (each seed) with the
    same labels; ``label_notes`` maps a label to how its configuration differs from the paper's,
    ``order`` lists the labels in table order and ``counts`` says, per dataset whose cells all
    share comparison counts unlike the paper's, what they are (those cells carry no marker).
    """

    key: str
    setting: str
    rows: pd.DataFrame
    runs: pd.DataFrame
    label_notes: dict[str, str]
    order: tuple[str, ...]
    counts: tuple[str, ...]

    @property
    def methods(self) -> dict[str, str]:
        """Each row label's printed method."""
        return dict(zip(self.rows["label"], self.rows["method"], strict=True))


def _mean_replicates(values: list[object]) -> Replicates | None:
    """Replicates of a seed mean: the mean per resample, when every seed has replicates on the same resamples."""
    reps = [v for v in values if isinstance(v, Replicates)]
    if len(reps) != len(values) or not reps or len({r.key for r in reps}) != 1:
        return None
    if len({r.values.shape for r in reps}) != 1:
        return None
    return Replicates(reps[0].key, np.mean([r.values for r in reps], axis=0))


def _seeds_text(group: pd.DataFrame) -> str:
    ordered_rows = group.sort_values("seed", kind="stable")
    return ", ".join(f"seed {int(s)} {v:.{PAUC_DECIMALS}f}" if not math.isnan(v) else f"seed {int(s)} n/a"
                     for s, v in zip(ordered_rows["seed"], ordered_rows["pauc"], strict=True))


def merge_seeds(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (evaluation, FR model, dataset, configuration): a seeded method's seeds averaged.

    A merged row's ``pauc`` is the mean of its seeds' defined pAUCs, ``pauc_sd`` their sample
    standard deviation, ``n_seeds`` their number and ``seeds`` the per-seed values; it has no
    interval of its own, and its replicates are the per-resample means when every seed was
    bootstrapped on the same resamples. A single run keeps its row (``n_seeds`` 1).
    """
    out = []
    for _, group in rows.groupby(list(CELL_KEYS), sort=False, dropna=False):
        row = group.iloc[-1].to_dict()
        if len(group) == 1:
            row.update(pauc_sd=math.nan, n_seeds=1, seeds="")
        else:
            values = group["pauc"].to_numpy(float)
            defined = values[np.isfinite(values)]
            row.update(pauc=float(defined.mean()) if defined.size else math.nan,
                       pauc_sd=float(defined.std(ddof=1)) if defined.size > 1 else math.nan,
                       pauc_lo=math.nan, pauc_hi=math.nan, n_seeds=len(group), seeds=_seeds_text(group),
                       replicates=_mean_replicates(list(group["replicates"])))
        out.append(row)
    columns = [*rows.columns, "pauc_sd", "n_seeds", "seeds"]
    return pd.DataFrame(out, columns=list(dict.fromkeys(columns)))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _labels(rows: pd.DataFrame) -> tuple[list[str], dict[str, str], tuple[str, ...]]:
    """Per row of one group its label, each label's note (how it differs from the paper's
    configuration) and the labels in table order.

    The label is the method's printed name; two configurations of one method in the group
    add what tells them apart; several seeds add their count.
    """
    configs = rows[["method", *CONFIG_KEYS, "config", "config_short"]].drop_duplicates()
    per_method = configs.groupby("method")["config"].nunique()
    labels: dict[tuple, str] = {}
    notes: dict[str, str] = {}
    for _, c in configs.iterrows():
        key = tuple(c[k] for k in CONFIG_KEYS)
        label = c["method"] if per_method[c["method"]] == 1 or not c["config"] else f"{c['method']} ({c['config_short']})"
        mine = rows[[tuple(r) == key for r in rows[list(CONFIG_KEYS)].itertuples(index=False)]]
        seeds = sorted({int(n) for n in mine["n_seeds"]})
        if seeds != [1]:
            label += f" ({seeds[0]} seeds)" if len(seeds) == 1 else f" ({seeds[0]}–{seeds[-1]} seeds)"
        labels[key] = label
        if c["config"]:
            notes[label] = f"{label}: {c['config']}."
    row_labels = [labels[tuple(r)] for r in rows[list(CONFIG_KEYS)].itertuples(index=False)]
    # A method's paper configuration first, then its others by name.
    methods = dict(zip(row_labels, rows["method"], strict=True))
    order = sorted(set(row_labels), key=lambda lab: (*method_rank(methods[lab]), lab != methods[lab], lab))
    return row_labels, notes, tuple(order)


def _seed_context(rows: pd.DataFrame) -> list[str]:
    """The per-seed footnote of each merged row: which row and cell, then the values."""
    return [f"{r.label}, {fr_display(r.fr)}, {r.dataset}: mean ± sd over {int(r.n_seeds)} seeds; {r.seeds}"
            if r.seeds else "" for r in rows.itertuples(index=False)]


def _shared_counts(rows: pd.DataFrame) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Move a dataset's counts note to the group when every cell of that dataset has the same one."""
    shared = []
    for dataset, notes in rows.groupby("dataset", sort=False)["note"]:
        if notes.nunique() == 1 and notes.iloc[0]:
            shared.append(f"{dataset}: {notes.iloc[0]}")
            rows = rows.assign(note=rows["note"].where(rows["dataset"] != dataset, ""))
    return rows, tuple(shared)


def evaluation_groups(tidy: pd.DataFrame) -> list[Group]:
    """The groups of :func:`bench.report.frames.results_pauc`'s rows, the paper's settings first.

    An FR model run with options is its own block (``fr`` gets the options appended), never
    compared with the published values of the model without them.
    """
    options = tidy["fr_options"].map(lambda o: "" if o in ("", "{}") else f" (FR options {o})")
    tidy = tidy.assign(fr=tidy["fr"] + options)
    merged = merge_seeds(tidy)
    groups = []
    for setting in sorted(set(tidy["setting"]), key=lambda s: (s != "", s)):
        rows = merged[merged["setting"] == setting].reset_index(drop=True)
        labels, notes, order = _labels(rows)
        rows = rows.assign(label=labels)
        rows, counts = _shared_counts(rows.assign(seeds=_seed_context(rows)))
        by_config = {tuple(r[k] for k in CONFIG_KEYS): r["label"] for _, r in rows.iterrows()}
        runs = tidy[tidy["setting"] == setting]
        runs = runs.assign(label=[by_config[tuple(r)] for r in runs[list(CONFIG_KEYS)].itertuples(index=False)])
        key = "pauc" if not setting else f"pauc-{_slug(setting)}"
        groups.append(Group(key, setting, rows, runs.reset_index(drop=True), notes, order, counts))
    return groups


def group_title(group: Group) -> str:
    """``pAUC — folds 1,2`` (or ``— the paper's evaluation settings``)."""
    return f"pAUC — {group.setting or PAPER_SETTINGS_TITLE}"
