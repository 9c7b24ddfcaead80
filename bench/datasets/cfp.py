"""CFP-FP (Sengupta et al. 2016): frontal-to-profile protocol, ``Protocol/Split/FP/01..10``
with ``same.txt`` (mated) and ``diff.txt`` (non-mated), ``f,p`` 1-based indices into
``Pair_list_F.txt`` / ``Pair_list_P.txt``; 10 folds x (350 + 350). Identity = the
``Data/Images/NNN`` folder. Falls back to InsightFace's ``cfp_fp.bin``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.core.errors import DataError
from bench.core.registry import register_dataset
from bench.datasets.base import FaceDataset
from bench.datasets.common import CardLoader, build_dataset, first_folder, read_text
from bench.datasets.insightface_bin import load_bin
from bench.datasets.parsers import parse_cfp_list, parse_cfp_split


@register_dataset("cfp-fp")
class CFPFP(CardLoader):
    required = ("{inner}/Protocol/Pair_list_F.txt", "{inner}/Protocol/Pair_list_P.txt")
    split = "FP"

    def load(self, root: Path) -> FaceDataset:
        found = self.find(root)
        if found.is_bin:
            return load_bin(self.card.name, found.images)
        protocol = found.images / "Protocol"
        base = f"{found.inner}/Protocol"
        lists = {}
        for side in ("F", "P"):
            path = protocol / f"Pair_list_{side}.txt"
            lists[side] = parse_cfp_list(read_text(path), str(path), base)
        split_dir = protocol / "Split" / self.split
        fold_dirs = sorted(p for p in split_dir.iterdir() if p.is_dir() and p.name.isdigit()) if split_dir.is_dir() else []
        if not fold_dirs:
            raise DataError(f"{split_dir}: no fold folders 01..10 found; see {self.card.path}")
        a: list[str] = []
        b: list[str] = []
        mated: list[bool] = []
        fold: list[int] = []
        for fold_dir in fold_dirs:
            for file, is_mated in (("same.txt", True), ("diff.txt", False)):
                path = fold_dir / file
                fa, fb = parse_cfp_split(read_text(path), str(path), lists["F"], lists["P"])
                a += fa
                b += fb
                mated += [is_mated] * len(fa)
                fold += [int(fold_dir.name)] * len(fa)
        return build_dataset(
            self.card.name, found.folder, f"{found.inner}/Data/Images", a, b, np.asarray(mated, dtype=bool),
            np.asarray(fold, dtype=np.int64), first_folder, aligned=False,
        )
