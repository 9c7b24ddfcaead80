"""XQLFW (Knoche et al. 2021): LFW's identities at cross-quality, ``xqlfw_pairs.txt`` in LFW's
pairs format. The released ``xqlfw_aligned_112`` folder holds ArcFace-aligned 112x112 crops
(aligned=True); the unaligned release ``xqlfw.zip`` (folder
``lfw_original_imgs_min_qual0.85variant11``) is aligned by the harness.
"""

from __future__ import annotations

from bench.core.registry import register_dataset
from bench.datasets.lfw import LFWStyle


@register_dataset("xqlfw")
class XQLFW(LFWStyle):
    pairs_file = "xqlfw_pairs.txt"
    required = ("xqlfw_pairs.txt",)
    aligned_folders = ("xqlfw_aligned_112",)
