"""FaceQAN and SER-FIQ against direct numpy computations on a linear stub FR model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.core.cards import get_card
from bench.core.errors import BenchError
from bench.datasets.base import FaceDataset
from bench.datasets.protocol import PairProtocol
from bench.fr.base import TorchFRModel
from bench.fr.synthetic import SyntheticFR
from bench.methods.base import ScoreContext, image_seed
from bench.methods.faceqan import FaceQAN, faceqan_scores
from bench.methods.serfiq import SERFIQ, serfiq_score

H = W = 4
D_IN, D_OUT = 3 * H * W, 6


class LinearFR(TorchFRModel):
    """e = fc(x / 255 flattened) [+ BatchNorm1d]: gradients and dropout outputs are hand-computable."""

    domain = "native"

    def __init__(self, with_bn: bool = False) -> None:
        super().__init__(get_card("fr", "synthetic"))
        g = torch.Generator().manual_seed(3)
        self.module = torch.nn.Module()
        self.module.fc = torch.nn.Linear(D_IN, D_OUT)
        with torch.no_grad():
            self.module.fc.weight.copy_(torch.randn(D_OUT, D_IN, generator=g))
            self.module.fc.bias.copy_(torch.randn(D_OUT, generator=g))
        if with_bn:
            self.module.features = torch.nn.BatchNorm1d(D_OUT).eval()
            with torch.no_grad():
                self.module.features.running_mean.copy_(torch.randn(D_OUT, generator=g))
                self.module.features.running_var.copy_(torch.rand(D_OUT, generator=g) + 0.5)
                self.module.features.weight.copy_(torch.rand(D_OUT, generator=g) + 0.5)

    def forward_images(self, images: torch.Tensor) -> torch.Tensor:
        e = self.module.fc((images / 255.0).flatten(1))
        return self.module.features(e) if hasattr(self.module, "features") else e


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, H, W, 3), dtype=np.uint8)


def _ctx(n: int, fr: object) -> ScoreContext:
    ds = FaceDataset(name="t", root=Path("."), image_ids=[f"p/{i}.png" for i in range(n)],
                     protocol=PairProtocol(a=np.array([0]), b=np.array([1]), mated=np.array([True])))
    return ScoreContext(dataset=ds, fr=fr, crops=None)  # type: ignore[arg-type]


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def _faceqan_numpy(fr: LinearFR, img: np.ndarray, seed_value: int, eps=0.001, l=5, k=10, p=5.0) -> float:
    """FaceQAN by hand: analytic gradient of 1 - cos for e = A z + c, z = x / 255."""
    A = fr.module.fc.weight.detach().double().numpy()
    c = fr.module.fc.bias.detach().double().numpy()
    x = img.transpose(2, 0, 1).astype(np.float64)  # CHW like forward_images
    emb = lambda z: A @ (z.reshape(-1) / 255.0) + c  # noqa: E731
    base = emb(x)
    sym = _cos(base, emb(x[:, :, ::-1]))
    g = torch.Generator().manual_seed(seed_value)
    noise = ((torch.rand((k, *x.shape), generator=g) * 2 - 1) * eps * 255).double().numpy()
    copies = np.clip(x[None] + noise, -255, 255)
    sims = []
    for _ in range(l):
        e = np.stack([emb(z) for z in copies])
        cos = _cos(base[None], e)
        sims.append(cos)
        # d(1 - cos)/dz for each copy, back to pixels (z = x / 255)
        ne, nb = np.linalg.norm(e, axis=1, keepdims=True), np.linalg.norm(base)
        dcos_de = base[None] / (nb * ne) - cos[:, None] * e / ne**2
        grad = -(dcos_de @ A) / 255.0
        copies = np.clip(copies + eps * 255 * np.sign(grad.reshape(copies.shape)), -255, 255)
    s = np.concatenate(sims)
    return float(((1 + s.mean()) / 2 * np.clip(1 - s.std(), 0, 1) * sym) ** p)


def test_faceqan_matches_numpy_bim() -> None:
    fr = LinearFR()
    crops = _images(3)
    method = FaceQAN(get_card("method", "faceqan"), seed=7)
    got = method.score_batch(crops, np.arange(3), _ctx(3, fr))
    want = [_faceqan_numpy(fr, crops[i], image_seed(7, f"p/{i}.png")) for i in range(3)]
    np.testing.assert_allclose(got, want, rtol=2e-4)
    assert len(set(np.round(got, 8))) == 3  # distinct images, distinct scores


def test_faceqan_independent_of_batching_and_seeded() -> None:
    fr, crops = LinearFR(), _images(4, seed=1)
    ctx = _ctx(4, fr)
    card = get_card("method", "faceqan")
    together = FaceQAN(card, seed=0).score_batch(crops, np.arange(4), ctx)
    alone = [FaceQAN(card, seed=0).score_batch(crops[i : i + 1], np.array([i]), ctx)[0] for i in range(4)]
    np.testing.assert_allclose(together, alone, rtol=1e-5)
    other_seed = FaceQAN(card, seed=1).score_batch(crops, np.arange(4), ctx)
    assert not np.allclose(together, other_seed, rtol=0, atol=1e-12)


def test_faceqan_formula_edge_values() -> None:
    # A constant embedding: every similarity is 1, std 0, symmetry 1 -> score exactly 1.
    const = lambda x: torch.ones(x.shape[0], 4) + 0 * x.flatten(1)[:, :4]  # noqa: E731
    imgs = torch.rand(2, 3, 5, 5) * 255
    out = faceqan_scores(const, imgs, [torch.Generator().manual_seed(i) for i in range(2)])
    np.testing.assert_allclose(out, 1.0)


def test_fr_requirements_are_one_line_errors() -> None:
    crops = _images(2)
    for cls, name in ((FaceQAN, "faceqan"), (SERFIQ, "ser-fiq")):
        method = cls(get_card("method", name))
        with pytest.raises(BenchError, match="needs an FR model"):
            method.score_batch(crops, np.arange(2), _ctx(2, None))
        with pytest.raises(BenchError, match="differentiable PyTorch FR model"):
            method.score_batch(crops, np.arange(2), _ctx(2, SyntheticFR(get_card("fr", "synthetic"))))


@pytest.mark.parametrize("with_bn", [False, True])
def test_serfiq_matches_numpy(with_bn: bool) -> None:
    fr = LinearFR(with_bn)
    crops = _images(3, seed=2)
    card = get_card("method", "ser-fiq")
    got = SERFIQ(card, seed=5).score_batch(crops, np.arange(3), _ctx(3, fr))
    A = fr.module.fc.weight.detach().double().numpy()
    c = fr.module.fc.bias.detach().double().numpy()
    for i in range(3):
        z = crops[i].transpose(2, 0, 1).reshape(-1).astype(np.float64) / 255.0
        g = torch.Generator().manual_seed(image_seed(5, f"p/{i}.png"))
        masks = ((torch.rand((100, D_IN), generator=g) >= 0.5).double() / 0.5).numpy()
        e = (z[None] * masks) @ A.T + c
        if with_bn:
            bn = fr.module.features
            e = (e - bn.running_mean.double().numpy()) / np.sqrt(bn.running_var.double().numpy() + bn.eps)
            e = e * bn.weight.detach().double().numpy() + bn.bias.detach().double().numpy()
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        d = [np.linalg.norm(e[a] - e[b]) for a in range(100) for b in range(a + 1, 100)]
        assert got[i] == pytest.approx(2 / (1 + np.exp(np.mean(d))), rel=1e-5)
    calibrated = SERFIQ(card, seed=5, calibrate=True).score_batch(crops, np.arange(3), _ctx(3, fr))
    np.testing.assert_allclose(calibrated, 1 / (1 + np.exp(-130 * (got - 0.88))), rtol=1e-9)


def test_serfiq_score_extremes() -> None:
    assert serfiq_score(np.tile([[1.0, 2.0, 3.0]], (5, 1))) == pytest.approx(1.0)
    opposite = np.array([[1.0, 0.0], [-1.0, 0.0]])
    assert serfiq_score(opposite) == pytest.approx(2 / (1 + np.exp(2.0)))


def test_serfiq_refuses_unsplittable_model() -> None:
    class Nonlinear(LinearFR):
        def forward_images(self, images: torch.Tensor) -> torch.Tensor:
            return torch.tanh(super().forward_images(images))

    with pytest.raises(BenchError, match="do not reproduce its embedding"):
        SERFIQ(get_card("method", "ser-fiq")).score_batch(_images(2), np.arange(2), _ctx(2, Nonlinear()))


class SmallConvFR(TorchFRModel):
    """Convolutions, BatchNorm and a linear layer: batch-size-dependent CPU kernels, as in a real FR model."""

    domain = "native"

    def __init__(self) -> None:
        super().__init__(get_card("fr", "synthetic"))
        torch.manual_seed(0)
        nn = torch.nn
        self.module = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.PReLU(32),
                                    nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.PReLU(64),
                                    nn.Flatten(), nn.Linear(64 * 16 * 16, 64)).eval()
        with torch.no_grad():
            for m in self.module.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.normal_(0, 0.1)
                    m.running_var.uniform_(0.5, 1.5)

    def forward_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.module((images - 127.5) / 127.5)


def test_faceqan_alone_equals_in_a_batch_of_four_on_a_conv_net() -> None:
    fr = SmallConvFR()
    crops = np.random.default_rng(5).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    ctx = _ctx(4, fr)
    method = FaceQAN(get_card("method", "faceqan"), seed=0, iterations=3, copies=5)
    together = method.score_batch(crops, np.arange(4), ctx)
    alone = np.array([method.score_batch(crops[i : i + 1], np.array([i]), ctx)[0] for i in range(4)])
    np.testing.assert_allclose(together, alone, rtol=1e-7, atol=0)
    order = [2, 0, 3, 1]
    np.testing.assert_allclose(method.score_batch(crops[order], np.array(order), ctx), together[order], rtol=1e-7, atol=0)
