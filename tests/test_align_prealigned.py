"""dlib150 chips from pre-aligned ArcFace crops: where dlib's detector misses, mapped from the known
template instead of cut from the fallback box tuned for 250-px LFW (issue 26)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_data

pytest.importorskip("dlib")
cv2 = pytest.importorskip("cv2")

from bench.align.arcface import SIZE, TEMPLATE, ArcFaceAligner  # noqa: E402
from bench.align.dlib_chip import CHIP_TEMPLATE, DlibChipAligner  # noqa: E402

LFW_IMAGES = [
    "Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Aaron_Peirsol/Aaron_Peirsol_0002.jpg",
    "Abdullah_Gul/Abdullah_Gul_0001.jpg", "Abdullah_Gul/Abdullah_Gul_0002.jpg",
    "Adrien_Brody/Adrien_Brody_0001.jpg", "Adrien_Brody/Adrien_Brody_0002.jpg",
    "Al_Gore/Al_Gore_0001.jpg", "Al_Gore/Al_Gore_0002.jpg",
]


def test_prealigned_flat_crop_is_mapped_and_counts_as_detected() -> None:
    """A flat 112 crop defeats the detector; before issue 26 it fell back to the LFW box (detected=False)."""
    chip, detected = DlibChipAligner().align(np.full((SIZE, SIZE, 3), 128, np.uint8), None, True)
    assert detected and chip.shape == (150, 150, 3) and chip.dtype == np.uint8


def test_a_missed_prealigned_face_is_mapped_not_cut_from_the_fallback_box(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    aligner = DlibChipAligner()
    monkeypatch.setattr(aligner, "face_box", lambda image: (DlibChipAligner.face_box(aligner, image)[0], False))
    chip, detected = aligner.align(crop, None, True)
    assert detected and np.array_equal(chip, aligner.map_template(crop))
    chip, detected = aligner.align(crop, None, False)  # not pre-aligned: the fallback box, flagged
    assert not detected and not np.array_equal(chip, aligner.map_template(crop))


def blobs(side: int) -> np.ndarray:
    """A black ``side``-px image with a small Gaussian spot on each ArcFace template point."""
    ys, xs = np.mgrid[0:side, 0:side].astype(np.float64)
    image = np.zeros((side, side))
    for x, y in TEMPLATE * side / SIZE:
        image += 255 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * (side / SIZE) ** 2))
    return np.repeat(np.clip(image, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)


@pytest.mark.parametrize("side", [SIZE, 2 * SIZE])
def test_template_points_land_on_chip_template(side: int) -> None:
    """The template of a pre-aligned input (scaled to its size) lands on CHIP_TEMPLATE in the chip."""
    chip, _ = DlibChipAligner().align(blobs(side), None, True)
    weight = chip[:, :, 0].astype(np.float64)
    for x, y in CHIP_TEMPLATE:
        top, left = round(y) - 8, round(x) - 8
        window = weight[top : top + 17, left : left + 17]
        wy, wx = np.mgrid[top : top + 17, left : left + 17]
        centroid = np.array([(wx * window).sum(), (wy * window).sum()]) / window.sum()
        # The committed points are an exact similarity image of the template (a mean of such images);
        # the spots' centroids measured 0.012 px off, for both input sizes.
        assert np.abs(centroid - (x, y)).max() < 0.1


@pytest.mark.slow
def test_mapped_chip_embeds_like_the_chip_of_the_original() -> None:
    """dlib's embedding of the chip made from an arcface112 crop stays close to that of the chip
    dlib cuts from the 250-px original. Measured on these 8 images: cosine 0.985 to 0.995 (mean 0.992);
    on 199 held-out LFW images (benchmarks/measure_dlib_template.py) mean 0.992, 5th percentile 0.985.
    The mean bound is what catches a wrong template: shifted 3 px down it measured mean 0.989 (min 0.979),
    scaled by 0.9 or 1.1 mean 0.987 and 0.988."""
    from bench.core.registry import create
    from bench.datasets.base import read_rgb

    root = shared_data("lfw", "lfw-deepfunneled")
    arcface, chipper = ArcFaceAligner(), DlibChipAligner()
    originals, mapped = [], []
    for name in LFW_IMAGES:
        image = read_rgb(root / name)
        chip, detected = chipper.align(image, None, False)
        crop, found = arcface.align(image, None, False)
        assert detected and found
        originals.append(chip)
        mapped.append(chipper.align(crop, None, True)[0])
    fr = create("fr", "dlib")
    a, b = fr.embed(np.stack(originals)), fr.embed(np.stack(mapped))
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() >= 0.98 and cos.mean() >= 0.99


def test_crops_of_prealigned_inputs_are_not_served_from_a_cache_made_before_the_mapping(tmp_path) -> None:
    """The crop cache is keyed by source content, which did not change: its name must."""
    from bench.datasets.base import FaceDataset
    from bench.datasets.crops import CropStore
    from bench.datasets.protocol import PairProtocol

    protocol = PairProtocol(np.array([0]), np.array([1]), np.array([False]))

    def dataset(aligned: bool) -> FaceDataset:
        return FaceDataset(name="tiny", root=tmp_path, image_ids=["a", "b"], protocol=protocol, aligned=aligned,
                           reader=lambda i: np.full((SIZE, SIZE, 3), 128, np.uint8))

    unaligned, prealigned = CropStore(dataset(False), "dlib150", tmp_path), CropStore(dataset(True), "dlib150", tmp_path)
    assert unaligned.crops_path.name == "dlib150.crops.npy"
    assert prealigned.crops_path.name != unaligned.crops_path.name
