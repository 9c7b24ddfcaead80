"""Run metadata names the data it evaluated by content: image and protocol hashes."""

from __future__ import annotations

import hashlib
import json

from bench.pipeline.runner import RunConfig, run


def _meta(tmp_path, **kw) -> dict:
    rec = run(RunConfig(method="random", fr="synthetic", dataset="synthetic", results=tmp_path / "res", progress=False,
                        bootstrap=0, **kw))
    return json.loads((tmp_path / "res" / "runs" / f"{rec['run_id']}.json").read_text())


def test_run_records_image_and_protocol_hashes(tmp_path) -> None:
    first, again = _meta(tmp_path), _meta(tmp_path, seed=3)
    data = first["data"]
    assert data == again["data"]  # same images and comparisons, whatever the method's seed
    assert int(data["n_images_hashed"]) == first["n_images"]
    assert len(data["images_sha256"]) == len(data["protocol_sha256"]) == 64
    fold = _meta(tmp_path, folds=[1])["data"]
    assert fold["protocol_sha256"] != data["protocol_sha256"]


def test_images_hash_follows_each_image_source(tmp_path) -> None:
    from bench.core.provenance import data_hashes
    from bench.datasets.crops import CropStore
    from bench.pipeline.cell import load_dataset

    ds = load_dataset("synthetic", None)
    store = CropStore(ds, "native", tmp_path / "cache")
    idx = ds.protocol.used_images()
    digests = store.digest_bytes(idx).copy()
    ids = [ds.image_ids[i] for i in idx]
    base = data_hashes(ids, digests, ds.protocol)
    digests[0, 0] ^= 1  # one image's content changed
    assert data_hashes(ids, digests, ds.protocol)["images_sha256"] != base["images_sha256"]
    expected = hashlib.sha256(b"".join(i.encode() + b"\0" + bytes(d) for i, d in zip(ids, store.digest_bytes(idx))))
    assert base["images_sha256"] == expected.hexdigest()


def test_run_records_the_software_that_made_its_crops_and_embeddings(tmp_path) -> None:
    """MobileFaceNet on CFP-FP moved FNMR@1e-3 from 0.493 to 0.553 between two machines with the
    same images, weights and code: MTCNN fell back on 103 vs 95 images. A run must name its stack."""
    from importlib import metadata

    import numpy as np

    software = _meta(tmp_path)["software"]
    assert software["numpy"] == np.__version__ and software["python"].count(".") == 2
    for name, version in software.items():
        if name not in ("python", "platform"):
            assert metadata.version(name) == version
