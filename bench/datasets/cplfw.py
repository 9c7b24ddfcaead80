"""CPLFW (Zheng & Deng 2018, cross-pose LFW): ``pairs_CPLFW.txt`` in CALFW's format, images
``<Name>_<n>.jpg`` flat in ``aligned images/`` or ``images/``."""

from __future__ import annotations

from bench.core.registry import register_dataset
from bench.datasets.calfw import PairedLinesDataset


@register_dataset("cplfw")
class CPLFW(PairedLinesDataset):
    pairs_file = "pairs_CPLFW.txt"
    required = ("pairs_CPLFW.txt",)
