"""The cheap degradations for the extended DDPM training (``--degradation cheap``; BSRGAN-style, our own code).

The default, ``bsrgan``, is the official sequence (:mod:`bench.diffusion.bsrgan`) on a 512-px
copy; this approximation works at the crop size and costs a fraction of it.

One *pass* applies, in random order, two blurs (isotropic or anisotropic Gaussian), a
down-then-up rescale, Gaussian noise (colour or grey) and a JPEG re-encode (probability
0.9), then a final JPEG re-encode, as BSRGAN's degradation model does. Strengths are set
relative to the output size: the official code degrades a 512-px copy by a factor of 4 and
resizes to 112, so rescaling loses at most a factor of 2 of resolution at the output size.

The official training stacks up to three passes with probabilities 1, 0.2 and 0.01
(``RandomApply`` three times): we read that as *sequential* and *independent* — the first
pass always runs, a second pass on its output with probability 0.2, a third with 0.01.
This is not a bit-exact port of BSRGAN; it keeps its kinds of degradation and their ranges.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from bench.diffusion.bsrgan import STACK_PROBABILITIES, degrade_bsrgan


def _gaussian_kernel(rng: np.random.Generator, scale: float) -> np.ndarray:
    """A normalised 2-D Gaussian kernel, isotropic or anisotropic (random orientation)."""
    if rng.random() < 0.5:
        s1 = s2 = rng.uniform(0.1, 1.2) * scale
    else:
        s1, s2 = rng.uniform(0.1, 1.5, size=2) * scale
    theta = rng.uniform(0, np.pi)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    inv = np.linalg.inv(rot @ np.diag([s1**2, s2**2]) @ rot.T)
    radius = max(1, int(np.ceil(3 * max(s1, s2))))
    ax = np.arange(-radius, radius + 1)
    xx, yy = np.meshgrid(ax, ax)
    pts = np.stack([xx, yy], axis=-1)[..., None]
    k = np.exp(-0.5 * (pts.transpose(0, 1, 3, 2) @ inv @ pts)[..., 0, 0])
    return (k / k.sum()).astype(np.float32)


def _blur(img: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    return cv2.filter2D(img, -1, _gaussian_kernel(rng, scale), borderType=cv2.BORDER_REFLECT)


def _rescale(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    f = rng.uniform(1.0, 2.0)
    interp = [cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA]
    small = cv2.resize(img, (max(1, round(w / f)), max(1, round(h / f))), interpolation=interp[rng.integers(3)])
    return np.clip(cv2.resize(small, (w, h), interpolation=interp[rng.integers(2)]), 0, 1)


def _noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sigma = rng.integers(2, 26) / 255.0
    shape = img.shape if rng.random() < 0.6 else (*img.shape[:2], 1)
    return np.clip(img + rng.normal(0, sigma, size=shape).astype(np.float32), 0, 1)


def _jpeg(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    u8 = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", u8, [int(cv2.IMWRITE_JPEG_QUALITY), int(rng.integers(30, 96))])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.0


def degrade_once(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One BSRGAN-style pass on a float32 RGB image in [0, 1]; same shape out."""
    scale = img.shape[0] / 112.0
    ops = ["blur", "blur", "rescale", "noise", "jpeg"]
    for k in rng.permutation(len(ops)):
        op = ops[k]
        if op == "blur":
            img = _blur(img, rng, scale)
        elif op == "rescale":
            img = _rescale(img, rng)
        elif op == "noise":
            img = _noise(img, rng)
        elif rng.random() < 0.9:
            img = _jpeg(img, rng)
    return _jpeg(img, rng)


def degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Degraded copy of an RGB uint8 image [H, W, 3]: passes stacked with ``STACK_PROBABILITIES``."""
    img = image.astype(np.float32) / 255.0
    for p in STACK_PROBABILITIES:
        if p >= 1.0 or rng.random() < p:
            img = degrade_once(img, rng)
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


DEGRADATIONS = ("bsrgan", "cheap")


def degrader(name: str) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    """The degradation function called ``name`` (one of :data:`DEGRADATIONS`)."""
    if name == "bsrgan":
        return degrade_bsrgan
    if name == "cheap":
        return degrade
    raise ValueError(f"degradation {name!r} is not one of {', '.join(DEGRADATIONS)}")
