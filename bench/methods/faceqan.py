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

Noise is drawn per image from a generator seeded by (method seed, image id), so a score does
not depend on batch size or order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.fr.base import to_pixels
from bench.methods.base import QualityMethod, ScoreContext, image_seed, require_torch_fr
from bench.registry import register_method


def faceqan_scores(forward: Any, images: Any, generators: list[Any], *, eps: float = 0.001, iterations: int = 5,
                   copies: int = 10, exponent: float = 5.0) -> np.ndarray:
    """FaceQAN scores float64 [N] of RGB float images [N, 3, H, W] in [0, 255].

    ``forward`` maps such images to unnormalised embeddings (differentiably); ``generators``
    holds one CPU ``torch.Generator`` per image for its initial noise.
    """
    import torch
    import torch.nn.functional as F

    n = images.shape[0]
    step = eps * 255.0
    with torch.no_grad():
        clean = forward(torch.cat([images, images.flip(-1)]))
        base, flipped = clean[:n], clean[n:]
        symmetry = F.cosine_similarity(base, flipped, dim=1).double().cpu().numpy()
    noise = torch.stack([(torch.rand((copies, *images.shape[1:]), generator=g) * 2 - 1) * step for g in generators])
    noisy = (images.unsqueeze(1) + noise.to(images.device)).clamp(-255.0, 255.0).reshape(n * copies, *images.shape[1:])
    target = base.repeat_interleave(copies, dim=0)
    sims = np.empty((n, iterations, copies))
    for it in range(iterations):
        noisy = noisy.detach().requires_grad_(it < iterations - 1)
        with torch.set_grad_enabled(it < iterations - 1):
            cos = F.cosine_similarity(target, forward(noisy), dim=1)
        sims[:, it, :] = cos.detach().double().cpu().numpy().reshape(n, copies)
        if it < iterations - 1:
            (grad,) = torch.autograd.grad((1.0 - cos).sum(), noisy)
            noisy = (noisy + step * grad.sign()).clamp(-255.0, 255.0)
    s = sims.reshape(n, -1)
    return ((1.0 + s.mean(axis=1)) / 2.0 * np.clip(1.0 - s.std(axis=1), 0.0, 1.0) * symmetry) ** exponent


@register_method("faceqan")
class FaceQAN(QualityMethod):
    """FaceQAN on the run's FR model. Options (card ``[options]``, overridable): eps, iterations
    (l), copies (k), exponent (p), images_per_pass (images whose copies share one pass)."""

    def score_batch(self, crops: np.ndarray, indices: np.ndarray, ctx: ScoreContext) -> np.ndarray:
        import torch

        fr = require_torch_fr(ctx.fr, self.name)
        given = {**self.card.get("options", {}), **self.options}
        opts = {"eps": float(given.get("eps", 0.001)), "iterations": int(given.get("iterations", 5)),
                "copies": int(given.get("copies", 10)), "exponent": float(given.get("exponent", 5))}
        per_pass = max(1, int(given.get("images_per_pass", 8)))
        out = np.empty(len(indices))
        for start in range(0, len(indices), per_pass):
            idx = indices[start : start + per_pass]
            x = to_pixels(crops[start : start + len(idx)], ctx.device)
            gens = [torch.Generator().manual_seed(image_seed(self.seed, ctx.dataset.image_ids[int(i)])) for i in idx]
            out[start : start + len(idx)] = faceqan_scores(fr.forward_images, x, gens, **opts)
        return out
