"""Where the ArcFace-112 template lands in dlib's 150-px face chip, measured on real LFW (issue 26).

Run: ``.venv/bin/python benchmarks/measure_dlib_template.py [N] [M]`` (needs ../shared/data/lfw).

Measurement (N images, default 400: the first image of each LFW person, in name order, where
both dlib's HOG detector and MTCNN find the face): per image, the ArcFace crop's template
points are taken back into the 250-px image (inverse of the arcface112 aligner's similarity
from its MTCNN landmarks) and on into dlib's chip of the same image (the chip's own geometry,
``dlib.get_face_chip_details`` with the aligner's detection and 5-point shape). The mean over
images is what ``bench.align.dlib_chip.CHIP_TEMPLATE`` commits; printed with the spread (mean,
95th percentile and max distance of a per-image point from the mean). Each image's points are a
similarity image of the template, and so is their mean: the pre-aligned mapping fits it exactly.
The chip geometry is checked against dlib itself on every
image: a chip cut by ``dlib.get_face_chip`` from an image whose red/green values are its x/y
coordinates must read back the coordinates the geometry predicts.

Comparison (M held-out images, default 200: the first image of the next M persons, where dlib
finds the face in the original): dlib150 chips (i) by detection on the 250-px original, (ii) by
re-detection on the arcface112 crop (the behaviour before issue 26), (iii) mapped from the
arcface112 crop with the committed points (``pre_aligned=True``). Printed: detection misses of
(ii), and the cosine of dlib's embeddings of (ii) and (iii) to those of (i).
"""

from __future__ import annotations

import sys
from pathlib import Path

import dlib
import numpy as np

from bench.align.arcface import TEMPLATE, ArcFaceAligner, similarity_transform
from bench.align.dlib_chip import CHIP_TEMPLATE, DlibChipAligner
from bench.core import paths
from bench.core.registry import create
from bench.datasets.base import read_rgb


def affine_inverse(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 2x3 affine matrix."""
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``points`` [K, 2] through the 2x3 affine ``matrix``."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def chip_to_image(details: dlib.chip_details) -> np.ndarray:
    """The 2x3 affine from chip pixels to image pixels, as dlib's ``extract_image_chips`` builds it:
    the chip's top-left, top-right and bottom-left corners go to the corners of ``details.rect``
    rotated by ``details.angle`` about the rect's centre."""
    r = details.rect
    centre = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
    c, s = np.cos(details.angle), np.sin(details.angle)
    rot = np.array([[c, -s], [s, c]])
    tl, tr, bl = (rot @ (np.array(p) - centre) + centre for p in
                  ((r.left(), r.top()), (r.right(), r.top()), (r.left(), r.bottom())))
    return np.column_stack([(tr - tl) / (details.cols - 1), (bl - tl) / (details.rows - 1), tl])


def geometry_error(image_shape: tuple[int, ...], shape: dlib.full_object_detection, to_image: np.ndarray) -> float:
    """Largest gap (px) between where ``to_image`` says chip pixels come from and where dlib's own
    chip of a coordinate image (red = x, green = y) says they do, over chip pixels well inside the image.
    dlib truncates the interpolated value to uint8, so a read value v stands for [v, v + 1): 0.5 at most."""
    h, w = image_shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    coords = np.stack([xs, ys, np.zeros_like(xs)], axis=2).astype(np.uint8)
    chip = dlib.get_face_chip(coords, shape, size=DlibChipAligner.size, padding=DlibChipAligner.padding)
    rows, cols = np.mgrid[0 : chip.shape[0], 0 : chip.shape[1]]
    predicted = apply(to_image, np.stack([cols.ravel(), rows.ravel()], axis=1).astype(np.float64))
    inside = (predicted[:, 0] > 2) & (predicted[:, 0] < w - 3) & (predicted[:, 1] > 2) & (predicted[:, 1] < h - 3)
    read = chip.reshape(-1, 3)[:, :2].astype(np.float64)
    return float(np.abs(read[inside] + 0.5 - predicted[inside]).max())


def first_images(root: Path) -> list[Path]:
    """The first image of each person, in name order."""
    return [min(p.iterdir()) for p in sorted(q for q in root.iterdir() if q.is_dir())]


def measure(files: list[Path], n: int) -> tuple[np.ndarray, int]:
    """Per-image chip positions [n, 5, 2] of the ArcFace template, and how many files were used."""
    arcface, chipper = ArcFaceAligner(), DlibChipAligner()
    points, worst, used = [], 0.0, 0
    for f in files:
        if len(points) == n:
            break
        used += 1
        image = read_rgb(f)
        shape, detected = chipper.face_shape(image)
        landmarks = arcface.detect(image)
        if not detected or landmarks is None:
            continue
        details = dlib.get_face_chip_details(shape, size=chipper.size, padding=chipper.padding)
        to_image = chip_to_image(details)
        worst = max(worst, geometry_error(image.shape, shape, to_image))
        crop_to_image = affine_inverse(similarity_transform(landmarks, TEMPLATE))
        points.append(apply(affine_inverse(to_image), apply(crop_to_image, TEMPLATE)))
    print(f"chip geometry vs dlib.get_face_chip: largest gap {worst:.3f} px (<= 0.5 expected)")
    return np.array(points), used


def compare(files: list[Path]) -> None:
    """(ii) and (iii) against (i) on ``files``; see the module docstring."""
    arcface, chipper = ArcFaceAligner(), DlibChipAligner()
    chips: dict[str, list[np.ndarray]] = {"i": [], "ii": [], "iii": []}
    missed: list[bool] = []
    skipped = 0
    for f in files:
        image = read_rgb(f)
        original, detected = chipper.align(image, None, False)
        crop, found = arcface.align(image, None, False)
        if not (detected and found):
            skipped += 1
            continue
        redetected, detected_again = chipper.align(crop, None, False)
        missed.append(not detected_again)
        chips["i"].append(original)
        chips["ii"].append(redetected)
        chips["iii"].append(chipper.align(crop, None, True)[0])
    fr = create("fr", "dlib")
    emb = {k: fr.embed(np.stack(v)) for k, v in chips.items()}
    emb = {k: e / np.linalg.norm(e, axis=1, keepdims=True) for k, e in emb.items()}
    n = len(emb["i"])
    print(f"comparison on {n} held-out LFW images ({skipped} skipped: no face for dlib or MTCNN in the original)")
    miss = np.array(missed)
    print(f"(ii) re-detection on the 112-px arcface crops: {miss.sum()}/{n} detector misses (fixed-box fallback)")
    for k, label in (("ii", "re-detected on 112 crop"), ("iii", "mapped from 112 crop")):
        cos = (emb[k] * emb["i"]).sum(axis=1)
        print(f"cosine ({k}) {label} vs (i): mean {cos.mean():.4f}  median {np.median(cos):.4f}  "
              f"p5 {np.percentile(cos, 5):.4f}  min {cos.min():.4f}")
        for subset, name in ((~miss, "found again in (ii)"), (miss, "missed in (ii)")):
            if subset.any():
                print(f"    on the {subset.sum()} {name}: mean {cos[subset].mean():.4f}  min {cos[subset].min():.4f}")


def main(n: int = 400, m: int = 200) -> None:
    root = paths.REPO_ROOT.parent / "shared" / "data" / "lfw" / "lfw-deepfunneled"
    if not root.is_dir():
        sys.exit(f"error: LFW not found at {root}")
    files = first_images(root)
    points, used = measure(files, n)
    mean = points.mean(axis=0)
    spread = np.linalg.norm(points - mean, axis=2)
    print(f"{len(points)} images measured (of the first {used} persons)")
    print("mean chip points (left eye, right eye, nose, mouth left, mouth right):")
    print(np.array2string(mean, precision=3, separator=", "))
    print(f"spread around the mean: mean {spread.mean():.2f} px, p95 {np.percentile(spread, 95):.2f} px, "
          f"max {spread.max():.2f} px")
    print(f"committed CHIP_TEMPLATE vs this measurement: max {np.abs(CHIP_TEMPLATE - mean).max():.3f} px")
    compare(files[used : used + m])


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
