"""BSRGAN's random degradation sequence, as DifFIQA's extended DDPM training applies it (our own code).

Written from reading the degradation model of Zhang et al., "Designing a Practical
Degradation Model for Deep Blind Image Super-Resolution" (ICCV 2021), as the official DifFIQA
code uses it (LSIbabnikz/DifFIQA c0bc008, diffiqa/bsrgan/degrade.py: ``auto_degrade`` →
``degradation_bsrgan(sf=4)``; dataset in diffiqa/diffusion_base/diff_dataset.py). One *pass*
(:func:`bsrgan_pass`) on an RGB uint8 image:

1. resize to 512×512 (bilinear), scale to [0, 1] float32; scale factor sf = 4;
2. with probability 0.25 halve the image first (cv2 bilinear / bicubic / area, or
   Matlab-style antialiased bicubic) and continue with sf = 2;
3. seven operations in random order, except that ``downsample2`` always precedes
   ``downsample3``:
   - ``blur`` (twice): anisotropic Gaussian (eigenvalues U(0, 4+sf)·, random angle) or
     isotropic Gaussian (σ U(0, 2+0.2·sf)), odd kernel side 7 … 25, mirror borders;
   - ``downsample2``: with probability 0.75 resize by 1/U(1, 2·sf) (random interpolation),
     else blur with a 25-px Gaussian (σ U(0.1, 0.6·sf)) shifted by (sf−1)/2 px and keep
     every sf-th pixel;
   - ``downsample3``: resize to 1/sf of the size ``downsample2`` started from (so the pass
     always ends at 128×128);
   - ``noise``: Gaussian, level U{2…25}/255: 40 % colour, 40 % grey, 20 % channel-correlated
     (covariance |(25/255)²·Uᵀ·diag(U(0,1)³)·U|, U an orthonormal basis);
   - ``jpeg`` with probability 0.9: quality U{30…95}, encoded from BGR order as OpenCV expects;
   - ``isp``: camera-pipeline noise, which the official code runs without a model, so never;
4. a final JPEG; back to uint8.

The training stacks up to three passes (probabilities 1, 0.2, 0.01, each on the previous
output) and resizes the result to the crop size. Random draws come from one numpy Generator,
so the sequence is reproducible from a seed; it is not bit-identical to the official code,
whose draws come from Python's and numpy's global generators.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage

PASS_SIZE = 512
SCALE = 4
STACK_PROBABILITIES = (1.0, 0.2, 0.01)
OPS = ("blur", "blur", "downsample2", "downsample3", "noise", "jpeg", "isp")
_INTERPOLATIONS = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA)
_MIN_SPREAD = 1e-3  # floor for σ and covariance eigenvalues drawn near 0 (a delta kernel)


def _interp(rng: np.random.Generator) -> int:
    return _INTERPOLATIONS[int(rng.integers(3))]


def _resize(img: np.ndarray, width: int, height: int, interpolation: int) -> np.ndarray:
    return np.clip(cv2.resize(img, (width, height), interpolation=interpolation), 0.0, 1.0)


def matlab_bicubic(img: np.ndarray, factor: float) -> np.ndarray:
    """Antialiased bicubic resize (Keys a = −0.5, as Matlab's imresize) of a float image per channel."""
    h, w = img.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    channels = [np.asarray(Image.fromarray(img[..., c], mode="F").resize(size, Image.Resampling.BICUBIC)) for c in range(img.shape[2])]
    return np.stack(channels, axis=-1).astype(np.float32)


def gaussian_kernel(size: int, cov: np.ndarray) -> np.ndarray:
    """Normalised 2-D Gaussian of covariance ``cov`` sampled on an odd ``size``² grid centred at 0."""
    r = np.arange(size) - (size - 1) / 2
    xx, yy = np.meshgrid(r, r)
    pts = np.stack([xx, yy], axis=-1)
    inv = np.linalg.inv(cov)
    k = np.exp(-0.5 * np.einsum("...i,ij,...j->...", pts, inv, pts))
    return k / k.sum()


def _convolve(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Per-channel convolution with mirrored borders (edge pixel not repeated), as scipy's
    ``ndimage.convolve(mode="mirror")`` in BSRGAN; OpenCV correlates, so the kernel is flipped."""
    return cv2.filter2D(img, -1, np.ascontiguousarray(kernel[::-1, ::-1], dtype=np.float32), borderType=cv2.BORDER_REFLECT_101)


def add_blur(img: np.ndarray, rng: np.random.Generator, sf: int) -> np.ndarray:
    """Anisotropic (p = 0.5) or isotropic Gaussian blur."""
    if rng.random() < 0.5:
        l1, l2 = np.maximum((4.0 + sf) * rng.random(2), _MIN_SPREAD)
        size = 2 * int(rng.integers(2, 12)) + 3
        theta = rng.random() * np.pi
        v = np.array([np.cos(theta), np.sin(theta)])
        basis = np.array([[v[0], v[1]], [v[1], -v[0]]])
        cov = basis @ np.diag([l1, l2]) @ np.linalg.inv(basis)
    else:
        size = 2 * int(rng.integers(2, 12)) + 3
        sigma = max((2.0 + 0.2 * sf) * rng.random(), _MIN_SPREAD)
        cov = np.eye(2) * sigma**2
    return _convolve(img, gaussian_kernel(size, cov))


def _shifted(kernel: np.ndarray, shift: float) -> np.ndarray:
    """``kernel`` moved ``shift`` px up and left: out[i, j] = kernel(i + shift, j + shift), bilinear, clamped."""
    n = kernel.shape[0]
    coords = np.clip(np.arange(n) + shift, 0, n - 1)
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    out = ndimage.map_coordinates(kernel, [yy, xx], order=1, mode="nearest")
    return out / out.sum()


def downsample2(img: np.ndarray, rng: np.random.Generator, sf: int) -> np.ndarray:
    """Random-factor resize (p = 0.75) or shifted-Gaussian blur plus nearest subsampling by sf."""
    h, w = img.shape[:2]
    if rng.random() < 0.75:
        f = rng.uniform(1, 2 * sf)
        return _resize(img, int(w / f), int(h / f), _interp(rng))
    sigma = rng.uniform(0.1, 0.6 * sf)
    kernel = _shifted(gaussian_kernel(25, np.eye(2) * sigma**2), (sf - 1) * 0.5)
    return np.clip(_convolve(img, kernel)[::sf, ::sf], 0.0, 1.0)


def add_noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of level U{2…25}/255: colour (40 %), grey (40 %) or channel-correlated (20 %)."""
    level = int(rng.integers(2, 26)) / 255.0
    r = rng.random()
    if r > 0.6:
        noise = rng.normal(0, level, img.shape)
    elif r < 0.4:
        noise = rng.normal(0, level, (*img.shape[:2], 1))
    else:
        basis = np.linalg.svd(rng.random((3, 3)))[0]
        cov = np.abs((25 / 255.0) ** 2 * basis.T @ np.diag(rng.random(3)) @ basis)
        # |·| can leave the covariance slightly indefinite, as in BSRGAN; sample it all the same.
        noise = rng.multivariate_normal(np.zeros(3), cov, img.shape[:2], check_valid="ignore")
    return np.clip(img + noise.astype(np.float32), 0.0, 1.0)


def add_jpeg(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """JPEG re-encode at quality U{30…95}; OpenCV encodes BGR, so the channels are swapped around it."""
    quality = int(rng.integers(30, 96))
    u8 = cv2.cvtColor(to_uint8(img), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", u8, [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def pass_order(rng: np.random.Generator) -> list[str]:
    """A random order of :data:`OPS` with downsample2 before downsample3."""
    order = [int(i) for i in rng.permutation(len(OPS))]
    i2, i3 = order.index(2), order.index(3)
    if i2 > i3:
        order[i2], order[i3] = order[i3], order[i2]
    return [OPS[i] for i in order]


def bsrgan_pass(image: np.ndarray, rng: np.random.Generator, log: list[str] | None = None) -> np.ndarray:
    """One degradation pass: RGB uint8 image of any size → RGB uint8 128×128.

    ``log`` (if given) receives the name of every operation that changed the image, in order.
    """
    img = cv2.resize(image, (PASS_SIZE, PASS_SIZE), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    note = log.append if log is not None else (lambda _: None)
    sf = SCALE
    if rng.random() < 0.25:
        h, w = img.shape[:2]
        img = _resize(img, w // 2, h // 2, _interp(rng)) if rng.random() < 0.5 else np.clip(matlab_bicubic(img, 0.5), 0.0, 1.0)
        sf = 2
        note("downsample1")
    start = img.shape[:2]
    for op in pass_order(rng):
        if op == "blur":
            img = add_blur(img, rng, sf)
        elif op == "downsample2":
            start = img.shape[:2]
            img = downsample2(img, rng, sf)
        elif op == "downsample3":
            img = _resize(img, int(start[1] / sf), int(start[0] / sf), _interp(rng))
        elif op == "noise":
            img = add_noise(img, rng)
        elif op == "jpeg":
            if rng.random() >= 0.9:
                continue
            img = add_jpeg(img, rng)
        else:  # isp: no camera model, as in the official training
            continue
        note(op)
    note("final_jpeg")
    return to_uint8(add_jpeg(img, rng))


def degrade_bsrgan(image: np.ndarray, rng: np.random.Generator, log: list[str] | None = None) -> np.ndarray:
    """The official training's degraded copy of an RGB uint8 crop, same shape as the crop.

    Passes are stacked with :data:`STACK_PROBABILITIES`, each on the previous 128-px output,
    then the result is resized (bilinear, antialiased) to the crop size.
    """
    img = image
    for p in STACK_PROBABILITIES:
        if p >= 1.0 or rng.random() < p:
            img = bsrgan_pass(img, rng, log)
    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BILINEAR))
