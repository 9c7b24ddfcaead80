"""Methods with no runnable inference here (PCNet, PFE, FaceQgen): their scores come from
``bench import-scores`` (:mod:`bench.pipeline.import_scores`), never from the harness."""

from __future__ import annotations

import numpy as np

from bench.core.errors import BenchError
from bench.methods.base import QualityMethod, ScoreContext, ScoreResult


class ImportOnlyMethod(QualityMethod):
    """A method with no runnable inference here: its scores come from ``bench import-scores``."""

    def _refuse(self) -> BenchError:
        return BenchError(f"{self.name} cannot be run by the harness ({self.card.get('import_only_reason', 'see its card')}); "
                          f"run the official code and load its scores with `bench import-scores --method {self.name} --dataset D FILE`")

    def score_batch(self, crops: np.ndarray, indices: np.ndarray, ctx: ScoreContext) -> np.ndarray:
        raise self._refuse()

    def score_dataset(self, indices: np.ndarray, ctx: ScoreContext) -> ScoreResult:
        raise self._refuse()
