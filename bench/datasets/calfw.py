"""CALFW (Zheng et al. 2017, cross-age LFW): ``pairs_CALFW.txt``, two ``filename label`` lines
per pair, 3,000 mated + 3,000 non-mated. Images sit flat in ``aligned images/`` (or the
unaligned ``images/``); identity = file name without ``_NNNN.jpg``. Non-mated folds: see
:func:`bench.datasets.parsers.parse_paired_lines`.
"""

from __future__ import annotations

from pathlib import Path

from bench.datasets.base import FaceDataset
from bench.datasets.common import CardLoader, build_dataset, name_before_number, read_text
from bench.datasets.insightface_bin import load_bin
from bench.datasets.parsers import parse_paired_lines
from bench.registry import register_dataset


class PairedLinesDataset(CardLoader):
    """CALFW/CPLFW's shared format; subclasses set the pairs file name."""

    pairs_file: str

    def load(self, root: Path) -> FaceDataset:
        found = self.find(root)
        if found.is_bin:
            return load_bin(self.card.name, found.images)
        path = found.folder / self.pairs_file
        raw = parse_paired_lines(read_text(path), str(path))
        prefix = found.inner + "/"
        return build_dataset(
            self.card.name, found.folder, found.inner, [prefix + p for p in raw.a], [prefix + p for p in raw.b],
            raw.mated, raw.fold, name_before_number, aligned=False,
            notes=["non-mated folds: 10 equal consecutive blocks of the non-mated pairs in file order"],
        )


@register_dataset("calfw")
class CALFW(PairedLinesDataset):
    pairs_file = "pairs_CALFW.txt"
    required = ("pairs_CALFW.txt",)
