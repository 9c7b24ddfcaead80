"""LFW (Huang et al. 2007): View 2 ``pairs.txt``, 10 folds x (300 mated + 300 non-mated).

Folder layouts from the card (``lfw/lfw-deepfunneled``, ``lfw/lfw``, ...), or an InsightFace
``lfw.bin`` when no folder is present. Image ids: ``<image folder>/<Name>/<Name>_%04d.jpg``.
"""

from __future__ import annotations

from pathlib import Path

from bench.datasets.base import FaceDataset
from bench.datasets.common import CardLoader, build_dataset, first_folder, read_text
from bench.datasets.insightface_bin import load_bin
from bench.datasets.parsers import parse_lfw_pairs
from bench.registry import register_dataset


class LFWStyle(CardLoader):
    """LFW's pairs format over an LFW-style image folder (LFW, XQLFW)."""

    pairs_file = "pairs.txt"
    aligned_folders: tuple[str, ...] = ()

    def load(self, root: Path) -> FaceDataset:
        found = self.find(root)
        if found.is_bin:
            return load_bin(self.card.name, found.images)
        path = found.folder / self.pairs_file
        raw = parse_lfw_pairs(read_text(path), str(path))
        prefix = found.inner + "/"
        return build_dataset(
            self.card.name, found.folder, found.inner, [prefix + p for p in raw.a], [prefix + p for p in raw.b],
            raw.mated, raw.fold, first_folder, aligned=found.inner in self.aligned_folders,
        )


@register_dataset("lfw")
class LFW(LFWStyle):
    required = ("pairs.txt",)
