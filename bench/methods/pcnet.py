"""PCNet (Xie, Shen, Zisserman, BMVC 2020, "Inducing predictive uncertainty estimation for face
recognition"): import-only — no official inference code or weights are published, so scores
computed elsewhere are loaded with ``bench import-scores``.
"""

from __future__ import annotations

from bench.core.registry import register_method
from bench.methods.import_only import ImportOnlyMethod


@register_method("pcnet")
class PCNet(ImportOnlyMethod):
    """Scores come from `bench import-scores --method pcnet`."""
