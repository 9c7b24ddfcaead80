"""SER-FIQ (Terhörst et al., CVPR 2020), same-model variant: stochastic embedding robustness.

Following the official code (pterhoer/FaceImageQuality, ``face_image_quality.py``): the input of
the FR model's last layer is computed once; ``m`` = 100 passes apply dropout (rate 0.5,
inverted scaling as Keras' ``Dropout``) to it and run the last layer; the embeddings are
L2-normalised and the score is ``2 * sigmoid(-mean pairwise Euclidean distance)`` over the
``m (m - 1) / 2`` pairs. Option ``calibrate = true`` maps it through the monotone
``sigmoid(130 * (s - 0.88))`` (pAUC is unchanged by it).

The option ``site`` moves the dropout: ``last-layer-input`` (default, the official placement)
or ``embedding`` (on the last layer's output). The official ArcFace was trained with dropout
at that site; FR models trained without it (arcface_torch's ``dropout=0.0``) see a
perturbation there that they never saw in training, hence both options.

One deliberate difference: the official rebuilds ArcFace's last layer in Keras as
dense -> *freshly initialised* BatchNorm (close to identity) -> L2; here the "last layer" is
the FR model's own (for an insightface IResNet: ``fc`` then the trained ``features`` BN), so
the stochastic embeddings are the model's real embeddings.

The FR model must let us split it into features and last layer; no gradient is needed. Either
it provides ``embedding_head() -> (features_fn, head_fn)`` (``features_fn``: RGB float images
[N, 3, H, W] in [0, 255] -> features [N, F]; ``head_fn``: features [M, F] -> embeddings [M, D]),
whatever it runs on (``sface``, an ONNX model, does), or it is a PyTorch FR model and the
input of its ``module``'s last ``nn.Linear`` (``module.fc`` when present) is captured with a
hook during ``forward_images`` and the head is ``module.forward_head`` (bench.fr.iresnet
networks) or that Linear followed by ``module.features`` when it is a BatchNorm1d. That guessed
split is checked on every batch, against the embeddings of the same forward pass (no second
pass): the head applied to the undropped features must reproduce them.

With ``site = "embedding"`` and the run's cached embeddings made by the same computation as
the quality FR model (:meth:`bench.methods.base.ScoreContext.clean_embeddings`), the clean
embeddings are read from that cache and no forward pass runs at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bench.core.errors import BenchError
from bench.core.optional import require
from bench.core.options import OptionError
from bench.core.registry import register_method
from bench.fr.base import FRModel, to_pixels
from bench.methods.base import QualityMethod, ScoreContext, image_seed, require_split_fr

# (features_fn, head_fn): features_fn maps images to (features, the embeddings of the same
# forward pass, or None when the FR model states its split itself and none is made).
Split = tuple[Callable[[Any], tuple[Any, Any]], Callable[[Any], Any]]


def embedding_split(fr: FRModel) -> Split:
    """(features_fn, head_fn) of an FR model: the input of its last layer (with the embeddings the
    same pass made, to check the split by, for a guessed PyTorch split), and that layer."""
    if hasattr(fr, "embedding_head"):
        stated_features, stated_head = fr.embedding_head()
        return (lambda images: (stated_features(images), None)), stated_head
    torch = require("torch", "SER-FIQ")

    module = getattr(fr, "module", None)
    fc = getattr(module, "fc", None)
    if not isinstance(fc, torch.nn.Linear) and isinstance(module, torch.nn.Module):
        fc = next((m for m in reversed(list(module.modules())) if isinstance(m, torch.nn.Linear)), None)
    if fc is None:
        raise BenchError(f"ser-fiq: FR model {fr.name!r} has neither embedding_head() nor a Linear last layer")
    if hasattr(module, "forward_head"):
        head_fn = module.forward_head
    else:
        post = getattr(module, "features", None)
        post = post if isinstance(post, torch.nn.BatchNorm1d) else torch.nn.Identity()
        head_fn = lambda f: post(fc(f))  # noqa: E731

    def features_fn(images: Any) -> tuple[Any, Any]:
        captured: list[Any] = []
        hook = fc.register_forward_pre_hook(lambda _m, args: captured.append(args[0].flatten(1)))
        try:
            direct = fr.forward_images(images)
        finally:
            hook.remove()
        return captured[-1], direct

    return features_fn, head_fn


def dropout_masks(generator: Any, passes: int, width: int, rate: float) -> Any:
    """Inverted-dropout multipliers [passes, width]: 0 with probability ``rate``, else 1/(1-rate)."""
    torch = require("torch", "SER-FIQ")

    keep = torch.rand((passes, width), generator=generator) >= rate
    return keep.float() / (1.0 - rate)


def serfiq_score(embeddings: np.ndarray) -> float:
    """2 * sigmoid(-mean pairwise Euclidean distance) of the L2-normalised rows."""
    e = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    gram = np.clip(e @ e.T, -1.0, 1.0)
    dist = np.sqrt(np.maximum(2.0 - 2.0 * gram, 0.0))[np.triu_indices(len(e), k=1)]
    return float(2.0 / (1.0 + np.exp(dist.mean())))


@register_method("ser-fiq")
class SERFIQ(QualityMethod):
    """SER-FIQ on the run's FR model. Options: passes (m, 100), dropout (0.5), site
    (last-layer-input), calibrate (false)."""

    def __init__(self, card: Any, **kwargs: Any) -> None:
        super().__init__(card, **kwargs)
        if self.options["passes"] < 2 or not 0.0 <= self.options["dropout"] < 1.0:
            raise OptionError(f"--method-option passes={self.options['passes']} dropout={self.options['dropout']:g}: "
                              "ser-fiq needs passes >= 2 (it averages pairwise distances) and 0 <= dropout < 1")

    def score_batch(self, crops: np.ndarray, indices: np.ndarray, ctx: ScoreContext) -> np.ndarray:
        torch = require("torch", "SER-FIQ")

        fr = require_split_fr(ctx.fr, self.name)
        passes, rate, on_embedding = self.options["passes"], self.options["dropout"], self.options["site"] == "embedding"
        features_fn, head_fn = embedding_split(fr)
        stored = ctx.clean_embeddings(indices) if on_embedding else None
        cached = None if stored is None else torch.from_numpy(stored).to(ctx.device)
        out = np.empty(len(indices))
        with torch.no_grad():
            if cached is None:
                feats, direct = features_fn(to_pixels(crops, ctx.device))
                if direct is not None:
                    _check_split(fr, head_fn(feats), direct)
            for k, i in enumerate(indices):
                gen = torch.Generator().manual_seed(image_seed(self.seed, ctx.dataset.image_ids[int(i)]))
                if on_embedding:
                    clean = cached[k : k + 1] if cached is not None else head_fn(feats[k : k + 1])
                    emb = clean * dropout_masks(gen, passes, clean.shape[1], rate).to(clean.device)
                else:
                    emb = head_fn(feats[k : k + 1] * dropout_masks(gen, passes, feats.shape[1], rate).to(feats.device))
                out[k] = serfiq_score(emb.double().cpu().numpy())
        if self.options["calibrate"]:
            out = 1.0 / (1.0 + np.exp(-130.0 * (out - 0.88)))
        return out


def _check_split(fr: FRModel, from_head: Any, direct: Any) -> None:
    """The split must reproduce the model's embedding, else SER-FIQ would perturb the wrong layer."""
    torch = require("torch", "SER-FIQ")

    if from_head.shape != direct.shape or not torch.allclose(from_head, direct, rtol=1e-4, atol=1e-4 * float(direct.abs().max())):
        raise BenchError(f"ser-fiq: features + last layer of FR model {fr.name!r} do not reproduce its embedding; "
                         "give it an embedding_head() method")
