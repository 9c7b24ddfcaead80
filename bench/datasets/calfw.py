"""CALFW (Zheng et al. 2017, cross-age LFW): ``pairs_CALFW.txt``, two ``filename label`` lines
per pair, 3,000 mated + 3,000 non-mated. Images sit flat in ``aligned images/`` (or the
unaligned ``images/``); identity = file name without ``_NNNN.jpg``. Non-mated folds: see
:func:`bench.datasets.parsers.parse_paired_lines`.
"""

from __future__ import annotations

from bench.core.registry import register_dataset
from bench.datasets.common import PairsFileLoader, name_before_number
from bench.datasets.parsers import parse_paired_lines


class PairedLinesDataset(PairsFileLoader):
    """CALFW/CPLFW's shared format; subclasses set the pairs file name."""

    parse = staticmethod(parse_paired_lines)
    identity_of = staticmethod(name_before_number)
    notes = ("non-mated folds: 10 equal consecutive blocks of the non-mated pairs in file order",)


@register_dataset("calfw")
class CALFW(PairedLinesDataset):
    pairs_file = "pairs_CALFW.txt"
    required = ("pairs_CALFW.txt",)
