"""ArcFace 5-point alignment: the transform itself, and MTCNN on a few real LFW images."""

from __future__ import annotations

import numpy as np
import pytest

from bench.align import get_aligner
from bench.align.arcface import SIZE, TEMPLATE, ArcFaceAligner, pick_face, similarity_transform
from bench.core import paths
from bench.datasets.base import read_rgb

LFW = paths.REPO_ROOT.parent / "shared" / "data" / "lfw" / "lfw-deepfunneled"


def test_similarity_transform_recovers_known_transform() -> None:
    angle, scale, shift = 0.3, 2.5, np.array([40.0, -7.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = (TEMPLATE - shift) @ np.linalg.inv(scale * rot).T  # so that scale*rot@src + shift = TEMPLATE
    m = similarity_transform(src, TEMPLATE)
    assert np.allclose(m[:, :2], scale * rot, atol=1e-9) and np.allclose(m[:, 2], shift, atol=1e-9)
    mirrored = src * np.array([-1.0, 1.0])
    m = similarity_transform(mirrored, TEMPLATE)
    assert np.linalg.det(m[:, :2]) > 0  # never a reflection


def test_given_landmarks_warp_onto_template() -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    marks = TEMPLATE * 1.7 + np.array([60.0, 20.0])
    for x, y in marks.astype(int):
        image[y - 1 : y + 2, x - 1 : x + 2] = 255
    crop, detected = ArcFaceAligner().align(image, marks, pre_aligned=False)
    assert detected and crop.shape == (SIZE, SIZE, 3)
    for x, y in np.rint(TEMPLATE).astype(int):
        assert crop[y, x].max() > 100  # each landmark's dot lands on its template point


def test_pre_aligned_only_resized() -> None:
    aligner = ArcFaceAligner()
    image = np.random.default_rng(0).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    crop, detected = aligner.align(image, None, pre_aligned=True)
    assert detected and np.array_equal(crop, image) and aligner._mtcnn is None
    crop, _ = aligner.align(np.zeros((224, 224, 3), np.uint8), None, pre_aligned=True)
    assert crop.shape == (SIZE, SIZE, 3)


def test_pick_face_prefers_large_central_face() -> None:
    small_centre = {"box": [90, 90, 20, 20]}
    large_centre = {"box": [60, 60, 80, 80]}
    large_corner = {"box": [0, 0, 90, 90]}
    assert pick_face([small_centre, large_corner, large_centre], (200, 200, 3)) is large_centre
    assert pick_face([], (10, 10, 3)) is None


def test_blank_image_falls_back_to_centre_crop() -> None:
    crop, detected = get_aligner("arcface112").align(np.full((250, 250, 3), 127, np.uint8), None, pre_aligned=False)
    assert not detected and crop.shape == (SIZE, SIZE, 3) and (crop == 127).all()


def test_nan_landmarks_trigger_detection() -> None:
    crop, detected = ArcFaceAligner().align(np.zeros((120, 120, 3), np.uint8), np.full((5, 2), np.nan), pre_aligned=False)
    assert not detected and crop.shape == (SIZE, SIZE, 3)


@pytest.mark.skipif(not LFW.is_dir(), reason="real LFW not available")
def test_real_lfw_eyes_land_on_template() -> None:
    aligner = ArcFaceAligner()
    files = [LFW / n / f"{n}_0001.jpg" for n in ("Aaron_Eckhart", "Aaron_Patterson", "Abdullah_Gul", "Colin_Powell")]
    for path in files:
        image = read_rgb(path)
        marks = aligner.detect(image)
        assert marks is not None, path
        crop, detected = aligner.align(image, None, pre_aligned=False)
        assert detected and crop.shape == (SIZE, SIZE, 3)
        m = similarity_transform(marks, TEMPLATE)
        mapped = marks @ m[:, :2].T + m[:, 2]
        assert np.abs(mapped - TEMPLATE).mean() < 4.0, path  # a face's landmarks fit the template
        again = aligner.detect(crop)  # re-detected on the crop, the eyes sit near the template's
        assert again is not None and np.abs(again[:2] - TEMPLATE[:2]).max() < 8.0, path
