"""``bench crops``: a dataset's aligned crops in one FR domain as a training array.

DDPM and distillation training read a uint8 ``.npy`` [N, H, W, 3] (or a folder of crops).
This writes one from the crop cache, aligning what is missing, either for the protocol's
images (``dataset.image_ids``) or for every image file of the dataset on disk
(``all_images``: LFW's 13,233 rather than View 2's 7,701; CFP's 7,000 rather than CFP-FP's
5,901), with the image ids in a ``.ids.txt`` beside it, so training data is named by a
command and never hand-made.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from bench.core.errors import DataError
from bench.core.io import atomic_path, atomic_write_text
from bench.datasets.base import FaceDataset
from bench.datasets.crops import DETECTED, FALLBACK, CropStore

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def all_images(dataset: FaceDataset) -> FaceDataset:
    """The dataset with every image file under its protocol images' top folders, sorted.

    The copy is named ``<name>-all`` so its crops are cached apart from the protocol's.
    """
    if dataset.reader is not None:
        raise DataError(f"{dataset.name}: images are read from a packed file; --all-images needs image files")
    tops = sorted({Path(i).parts[0] for i in dataset.image_ids})
    ids = sorted(p.relative_to(dataset.root).as_posix() for top in tops for p in (dataset.root / top).rglob("*")
                 if p.suffix.lower() in IMAGE_SUFFIXES)
    return dataclasses.replace(dataset, name=f"{dataset.name}-all", image_ids=ids, identities=None, landmarks=None)


def export_crops(dataset: FaceDataset, domain: str, out: Path, cache: Path, detected_only: bool = False,
                 progress: bool = True) -> dict[str, int]:
    """Write the crops of ``dataset`` in ``domain`` to ``out`` (.npy) and their ids to ``out``.ids.txt.

    Crops whose face the detector missed (the aligner's fallback crop, which the FR model
    also sees at evaluation) are kept unless ``detected_only``. Returns the counts.
    """
    if out.suffix != ".npy":
        raise DataError(f"{out}: the crop array must be a .npy file")
    store = CropStore(dataset, domain, cache)
    indices = np.arange(len(dataset))
    store.ensure(indices, progress=progress)
    status = store.status(indices)
    wanted = (status == DETECTED) | (~np.bool_(detected_only) & (status == FALLBACK))
    keep = indices[wanted]
    if not len(keep):
        raise DataError(f"{dataset.name}: no aligned crop to export in domain {domain}")
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        np.save(fh, store.get(keep))
    atomic_write_text(out.with_suffix(".ids.txt"), "".join(dataset.image_ids[i] + "\n" for i in keep))
    return {"images": len(dataset), "exported": len(keep), "detected": int(np.count_nonzero(status == DETECTED)),
            "fallback": int(np.count_nonzero(status == FALLBACK))}
