"""A tiny synthetic dataset for tests and mocks: no files, a few seconds end to end.

Each identity has a random prototype image; each of its images is the prototype plus
Gaussian noise of a per-image level drawn uniformly, so image "quality" is known and mated
similarity falls as noise grows. All randomness comes from one documented seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.core.registry import register_dataset
from bench.datasets.base import DatasetLoader, FaceDataset
from bench.datasets.protocol import PairProtocol

SIZE = 24


@register_dataset("synthetic")
class SyntheticDataset(DatasetLoader):
    """``n_ids`` identities x ``per_id`` images; all mated pairs and as many non-mated."""

    n_ids = 40
    per_id = 5
    seed = 1234

    def locate(self, root: Path) -> Path:
        return Path("<synthetic>")

    def load(self, root: Path) -> FaceDataset:
        rng = np.random.default_rng(self.seed)
        n = self.n_ids * self.per_id
        ident = np.repeat(np.arange(self.n_ids), self.per_id)
        prototypes = rng.uniform(0, 255, size=(self.n_ids, SIZE, SIZE, 3))
        noise_level = rng.uniform(5, 160, size=n)
        images = prototypes[ident] + rng.normal(size=(n, SIZE, SIZE, 3)) * noise_level[:, None, None, None]
        images = np.clip(images, 0, 255).astype(np.uint8)
        ia, ib = np.triu_indices(n, k=1)
        same = ident[ia] == ident[ib]
        mated_a, mated_b = ia[same], ib[same]
        pick = rng.choice(np.flatnonzero(~same), size=len(mated_a), replace=False)
        a = np.concatenate([mated_a, ia[pick]])
        b = np.concatenate([mated_b, ib[pick]])
        mated = np.concatenate([np.ones(len(mated_a), bool), np.zeros(len(pick), bool)])
        fold = np.arange(len(a)) % 2 + 1
        ids = [f"id{int(i):03d}/{k:02d}.png" for k, i in enumerate(ident)]
        return FaceDataset(
            name="synthetic", root=Path("<synthetic>"), image_ids=ids,
            protocol=PairProtocol(a=a, b=b, mated=mated, fold=fold), aligned=True,
            identities=ident, reader=lambda i: images[i],
            notes=["synthetic: prototype + Gaussian noise, seed 1234"],
        )
