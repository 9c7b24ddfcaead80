"""FaceQAN (Babnik, Peer, Struc, IJCB 2022): quality from adversarial robustness of the FR model.

Re-implemented from the paper and the official code (LSIbabnikz/FaceQAN, ``src/``) on any
:class:`~bench.fr.base.TorchFRModel`. Choices, each mirroring the official code:

* Pixel range: the official works on ``ToTensor`` images in [0, 1] and normalises inside the
  model; our ``forward_images`` takes [0, 255], so ``eps`` (0.001 of the [0, 1] range) becomes
  ``eps * 255`` per step and for the initial noise.
* Initial noise: ``k`` copies of the image plus i.i.d. uniform noise in ``[-eps, eps]``.
* BIM step: ``x <- clamp(x + eps * sign(grad), lo, hi)`` where grad is the gradient of the
  cosine-embedding loss ``1 - cos(e_clean, e_noisy)``, i.e. *ascent*: the copies are pushed
  away from the clean embedding. The official clamps to [-1, 1] on [0, 1] images (only the
  upper bound can bind), so we clamp to [-255, 255].
* S: the cosine similarities between the clean embedding and each copy's embedding, recorded
  at the start of each of the ``l`` iterations (before that iteration's step), so the last
  step's result is never embedded: ``l * k`` values. The last backward pass is therefore
  skipped here; it cannot change the score.
* Score: ``((1 + mean S) / 2 * clip(1 - std S, 0, 1) * symmetry) ** p`` with population std
  over all ``l * k`` values and ``symmetry = cos(e(x), e(flip(x)))`` of the clean image.

Noise is drawn per image from a generator seeded by (method seed, image id). Batch
independence also needs every forward pass to have the same shape: PyTorch's CPU kernels pick
their blocking by batch size, so one image's embedding differs at about 1e-6 between a batch
of 1 and a batch of 4, and BIM's ``sign(grad)`` amplifies that to about 2e-4 in the score.
Padding every pass to a fixed shape is not enough either (a row's result can depend on its
position: GEMM tail blocks). So the network sees each image's inputs on their own, always in
the same shapes: its clean and mirrored image as one batch of 2, its ``k`` copies as one batch
of ``k``. A score is then the same, bit for bit on one machine, whatever else is scored with
it, at the price of batching across images.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.core.optional import require
from bench.core.registry import register_method
from bench.fr.base import to_pixels
from bench.methods.base import QualityMethod, ScoreContext, image_seed, require_torch_fr


def faceqan_scores(forward: Any, images: Any, generators: list[Any], *, eps: float = 0.001, iterations: int = 5,
                   copies: int = 10, exponent: float = 5.0) -> np.ndarray:
    """FaceQAN scores float64 [N] of RGB float images [N, 3, H, W] in [0, 255].

    ``forward`` maps such images to unnormalised embeddings (differentiably); ``generators``
    holds one CPU ``torch.Generator`` per image for its initial noise. ``forward`` is called
    on one image's inputs at a time (see the module doc: batch independence).
    """
    torch = require("torch", "FaceQAN")
    F = require("torch.nn.functional", "FaceQAN")

    def per_image(x: Any, rows: int) -> Any:
        return torch.cat([forward(chunk) for chunk in x.split(rows)])

    n = images.shape[0]
    step = eps * 255.0
    with torch.no_grad():
        clean = per_image(torch.stack([images, images.flip(-1)], dim=1).flatten(0, 1), 2)
        base, flipped = clean[0::2], clean[1::2]
        symmetry = F.cosine_similarity(base, flipped, dim=1).double().cpu().numpy()
    noise = torch.stack([(torch.rand((copies, *images.shape[1:]), generator=g) * 2 - 1) * step for g in generators])
    noisy = (images.unsqueeze(1) + noise.to(images.device)).clamp(-255.0, 255.0).reshape(n * copies, *images.shape[1:])
    target = base.repeat_interleave(copies, dim=0)
    sims = np.empty((n, iterations, copies))
    for it in range(iterations):
        noisy = noisy.detach().requires_grad_(it < iterations - 1)
        with torch.set_grad_enabled(it < iterations - 1):
            cos = F.cosine_similarity(target, per_image(noisy, copies), dim=1)
        sims[:, it, :] = cos.detach().double().cpu().numpy().reshape(n, copies)
        if it < iterations - 1:
            (grad,) = torch.autograd.grad((1.0 - cos).sum(), noisy)
            noisy = (noisy + step * grad.sign()).clamp(-255.0, 255.0)
    return faceqan_formula(sims.reshape(n, -1), symmetry, exponent)


def faceqan_formula(similarities: np.ndarray, symmetry: np.ndarray, exponent: float = 5.0) -> np.ndarray:
    """FaceQAN's aggregation (official ``util.F``) per row: ((1 + mean S) / 2 * clip(1 - std S, 0, 1) * sf) ** p.

    ``similarities`` [N, l*k], ``symmetry`` [N]; std is the population std, as ``np.std``.
    """
    s = np.asarray(similarities, dtype=np.float64)
    return ((1.0 + s.mean(axis=1)) / 2.0 * np.clip(1.0 - s.std(axis=1), 0.0, 1.0) * np.asarray(symmetry)) ** exponent


@register_method("faceqan")
class FaceQAN(QualityMethod):
    """FaceQAN on the run's FR model. Options (card ``[options]``, overridable): eps, iterations
    (l), copies (k), exponent (p). Each image runs on its own (see the module doc)."""

    def score_batch(self, crops: np.ndarray, indices: np.ndarray, ctx: ScoreContext) -> np.ndarray:
        torch = require("torch", "FaceQAN")

        fr = require_torch_fr(ctx.fr, self.name)
        opts = {k: self.options[k] for k in ("eps", "iterations", "copies", "exponent")}
        out = np.empty(len(indices))
        for k, index in enumerate(indices):
            x = to_pixels(crops[k : k + 1], ctx.device)
            gen = torch.Generator().manual_seed(image_seed(self.seed, ctx.dataset.image_ids[int(index)]))
            out[k : k + 1] = faceqan_scores(fr.forward_images, x, [gen], **opts)
        return out
