"""FaceQgen (Hernandez-Ortega et al., FG 2021): import-only — no official inference code
is published, so scores computed elsewhere are loaded with ``bench import-scores``.
"""

from __future__ import annotations

from bench.core.registry import register_method
from bench.methods.import_only import ImportOnlyMethod


@register_method("faceqgen")
class FaceQgen(ImportOnlyMethod):
    """Scores come from `bench import-scores --method faceqgen`."""
