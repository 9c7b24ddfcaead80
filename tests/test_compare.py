"""Comparisons against slow references written from the definitions."""

from __future__ import annotations

import numpy as np

from bench.datasets.protocol import PairProtocol, Templates
from bench.pipeline.similarity import compare, template_features, template_quality


def _reference_template_features(emb, templates):
    out = []
    for t in range(templates.n_templates):
        rows = np.flatnonzero(templates.template == t)
        media = {}
        for r in rows:
            x = emb[templates.image[r]]
            e = x / np.linalg.norm(x) if np.any(x) else x  # a zero embedding stays zero
            media.setdefault(int(templates.media[r]), []).append(e)
        f = np.mean([np.mean(v, axis=0) for v in media.values()], axis=0)
        out.append(f / np.linalg.norm(f))
    return np.array(out)


def _templates(rng):
    n_img, n_t = 30, 8
    template = np.concatenate([np.arange(n_t), rng.integers(0, n_t, 22)])
    image = rng.integers(0, n_img, len(template))
    media = rng.integers(0, 4, len(template))
    return Templates(image=image, template=template, media=media, template_ids=np.arange(100, 100 + n_t)), n_img


def test_template_features_match_reference() -> None:
    rng = np.random.default_rng(0)
    templates, n_img = _templates(rng)
    emb = rng.normal(size=(n_img, 5)).astype(np.float32)
    np.testing.assert_allclose(template_features(emb, templates), _reference_template_features(emb, templates), atol=1e-5)


def _add_at_template_features(emb, templates):
    """The np.add.at formulation the sparse products replaced: the same sums in the same order."""
    from bench.fr.base import normalise

    emb = normalise(emb)
    width = int(templates.media.max()) + 1
    group_keys, group = np.unique(templates.template.astype(np.int64) * width + templates.media, return_inverse=True)
    sums = np.zeros((len(group_keys), emb.shape[1]))
    np.add.at(sums, group, emb[templates.image])
    media_mean = sums / np.bincount(group, minlength=len(group_keys))[:, None]
    feats = np.zeros((templates.n_templates, emb.shape[1]))
    np.add.at(feats, group_keys // width, media_mean)
    feats /= np.bincount(group_keys // width, minlength=templates.n_templates)[:, None].clip(min=1)
    return normalise(feats)


def test_template_features_equal_the_two_step_means_within_float_rounding() -> None:
    """The one weighted product against the np.add.at two-step means it replaced and a float64
    reference: repeated images inside a (template, media) group, rows in any order, a zero
    embedding (counted, weighing nothing), a template without images, and more columns than
    one product takes."""
    rng = np.random.default_rng(5)
    n_img, n_t, rows = 60, 12, 400
    templates = Templates(image=rng.integers(0, n_img, rows), template=rng.integers(0, n_t - 1, rows),
                          media=rng.integers(0, 5, rows), template_ids=np.arange(n_t))
    emb = rng.normal(size=(n_img, 150)).astype(np.float32)
    emb[7] = 0
    got = template_features(emb, templates)
    assert got.dtype == np.float32 and not got[n_t - 1].any()
    old = _add_at_template_features(emb, templates)
    # float32 results of one rounding path or the other: at most a unit in the last place apart.
    np.testing.assert_allclose(got, old, rtol=0, atol=6e-8)
    assert not np.array_equal(got, old)  # the rounding path did change (the test sees the new code)
    used = Templates(image=templates.image, template=templates.template, media=templates.media,
                     template_ids=np.arange(n_t - 1))
    np.testing.assert_allclose(got[: n_t - 1], _reference_template_features(emb.astype(np.float64), used),
                               rtol=0, atol=6e-8)


def test_template_quality_rules() -> None:
    rng = np.random.default_rng(1)
    templates, n_img = _templates(rng)
    q = rng.random(n_img)
    for t in range(templates.n_templates):
        qs = q[templates.image[templates.template == t]]
        assert template_quality(q, templates, "min")[t] == qs.min()
        np.testing.assert_allclose(template_quality(q, templates, "mean")[t], qs.mean())


def test_image_pair_comparisons_match_loop() -> None:
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(10, 4))
    q = rng.random(10)
    a, b = rng.integers(0, 10, 25), rng.integers(0, 10, 25)
    mated = rng.random(25) < 0.5
    comps = compare(PairProtocol(a, b, mated), emb, q)
    sims = [emb[i] @ emb[j] / np.linalg.norm(emb[i]) / np.linalg.norm(emb[j]) for i, j in zip(a, b)]
    np.testing.assert_allclose(comps.mated_similarity, np.array(sims)[mated], atol=1e-5)
    np.testing.assert_allclose(comps.nonmated_quality, np.minimum(q[a], q[b])[~mated])


def test_dense_and_sparse_similarity_paths_agree() -> None:
    from bench.pipeline.similarity import normalise, pair_similarity

    rng = np.random.default_rng(3)
    feats = normalise(rng.normal(size=(50, 8)))
    a, b = rng.integers(0, 50, 5000), rng.integers(0, 50, 5000)  # dense: 5000 * 64 >= 50 * 50
    direct = np.einsum("ij,ij->i", feats[a], feats[b])
    np.testing.assert_allclose(pair_similarity(feats, a, b, chunk=64), direct, atol=1e-6)
    np.testing.assert_allclose(pair_similarity(feats, a[:10], b[:10], chunk=64), direct[:10], atol=1e-6)


def test_dense_path_on_an_enrolment_by_probe_protocol() -> None:
    """IJB-C's shape: every pair joins one of a few enrolment subjects to one of many probes,
    their ids interleaved; the dense path's blocks hold only the subjects that occur."""
    from bench.pipeline.similarity import normalise, pair_similarity

    rng = np.random.default_rng(5)
    feats = normalise(rng.normal(size=(300, 16))).astype(np.float32)
    ids = rng.permutation(300)
    enrol, probe = ids[:20], ids[20:]
    flat = rng.choice(20 * 280, size=3000, replace=False)
    a, b = enrol[flat // 280], probe[flat % 280]  # dense: 3000 * 64 >= 20 * 280
    direct = np.einsum("ij,ij->i", feats[a], feats[b])
    np.testing.assert_allclose(pair_similarity(feats, a, b, chunk=500), direct, atol=1e-6)
    np.testing.assert_allclose(pair_similarity(feats, b, a, chunk=500), direct, atol=1e-6)
