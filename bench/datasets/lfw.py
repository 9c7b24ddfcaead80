"""LFW (Huang et al. 2007): View 2 ``pairs.txt``, 10 folds x (300 mated + 300 non-mated).

Folder layouts from the card (``lfw/lfw-deepfunneled``, ``lfw/lfw``, ...), or an InsightFace
``lfw.bin`` when no folder is present. Image ids: ``<image folder>/<Name>/<Name>_%04d.jpg``.
"""

from __future__ import annotations

from bench.core.registry import register_dataset
from bench.datasets.common import PairsFileLoader, first_folder
from bench.datasets.parsers import parse_lfw_pairs


class LFWStyle(PairsFileLoader):
    """LFW's pairs format over an LFW-style image folder (LFW, XQLFW)."""

    pairs_file = "pairs.txt"
    parse = staticmethod(parse_lfw_pairs)
    identity_of = staticmethod(first_folder)


@register_dataset("lfw")
class LFW(LFWStyle):
    required = ("pairs.txt",)
