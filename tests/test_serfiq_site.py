"""SER-FIQ's dropout site and rate are card options; the embedding site is computed by hand here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.core.cards import get_card
from bench.core.errors import BenchError
from bench.core.options import OptionError
from bench.datasets.base import FaceDataset
from bench.datasets.protocol import PairProtocol
from bench.fr.base import TorchFRModel
from bench.methods.base import ScoreContext, image_seed
from bench.methods.serfiq import SERFIQ

H = W = 4
D_IN, D_OUT = 3 * H * W, 6


class LinearFR(TorchFRModel):
    """e = fc(x / 255 flattened): the last layer's output is hand-computable."""

    domain = "native"

    def __init__(self) -> None:
        super().__init__(get_card("fr", "synthetic"))
        g = torch.Generator().manual_seed(4)
        self.module = torch.nn.Module()
        self.module.fc = torch.nn.Linear(D_IN, D_OUT)
        with torch.no_grad():
            self.module.fc.weight.copy_(torch.randn(D_OUT, D_IN, generator=g))
            self.module.fc.bias.copy_(torch.randn(D_OUT, generator=g))

    def forward_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.module.fc((images / 255.0).flatten(1))


def _ctx(n: int, fr: TorchFRModel) -> ScoreContext:
    ds = FaceDataset(name="t", root=Path("."), image_ids=[f"p/{i}.png" for i in range(n)],
                     protocol=PairProtocol(a=np.array([0]), b=np.array([1]), mated=np.array([True])))
    return ScoreContext(dataset=ds, fr=fr, crops=None)  # type: ignore[arg-type]


def test_card_declares_site_and_rate() -> None:
    options = get_card("method", "ser-fiq").get("options")
    assert options["site"]["default"] == "last-layer-input" and set(options["site"]["choices"]) == {"last-layer-input", "embedding"}
    assert options["dropout"]["default"] == 0.5
    assert "trained without dropout" in get_card("method", "ser-fiq").get("report_note")


def test_embedding_site_matches_numpy() -> None:
    fr = LinearFR()
    crops = np.random.default_rng(1).integers(0, 256, size=(3, H, W, 3), dtype=np.uint8)
    card = get_card("method", "ser-fiq")
    got = SERFIQ(card, seed=7, site="embedding", dropout=0.25, passes=20).score_batch(crops, np.arange(3), _ctx(3, fr))
    A = fr.module.fc.weight.detach().double().numpy()
    c = fr.module.fc.bias.detach().double().numpy()
    for i in range(3):
        z = crops[i].transpose(2, 0, 1).reshape(-1).astype(np.float64) / 255.0
        g = torch.Generator().manual_seed(image_seed(7, f"p/{i}.png"))
        masks = ((torch.rand((20, D_OUT), generator=g) >= 0.25).double() / 0.75).numpy()
        e = (A @ z + c)[None] * masks
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        d = [np.linalg.norm(e[a] - e[b]) for a in range(20) for b in range(a + 1, 20)]
        assert got[i] == pytest.approx(2 / (1 + np.exp(np.mean(d))), rel=1e-5)
    default = SERFIQ(card, seed=7, dropout=0.25, passes=20).score_batch(crops, np.arange(3), _ctx(3, fr))
    assert np.abs(default - got).max() > 1e-3  # the site changes the scores


class CountingFR(LinearFR):
    """LinearFR that counts its forward passes (``scale`` != 1 breaks the features/head split)."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale, self.passes = scale, 0
        self.weights_sha256 = "w1"

    def forward_images(self, images: torch.Tensor) -> torch.Tensor:
        self.passes += 1
        return super().forward_images(images) * self.scale


def test_split_checked_on_the_same_forward_pass() -> None:
    crops = np.random.default_rng(2).integers(0, 256, size=(3, H, W, 3), dtype=np.uint8)
    card = get_card("method", "ser-fiq")
    fr = CountingFR()
    SERFIQ(card, passes=5).score_batch(crops, np.arange(3), _ctx(3, fr))
    assert fr.passes == 1  # one forward pass gives the features and the embeddings checked against
    with pytest.raises(BenchError, match="do not reproduce its embedding"):
        SERFIQ(card, passes=5).score_batch(crops, np.arange(3), _ctx(3, CountingFR(scale=2.0)))


def test_embedding_site_reads_cached_clean_embeddings() -> None:
    crops = np.random.default_rng(3).integers(0, 256, size=(3, H, W, 3), dtype=np.uint8)
    card = get_card("method", "ser-fiq")
    fr = CountingFR()
    with torch.no_grad():
        table = fr.forward_images(torch.from_numpy(crops).permute(0, 3, 1, 2).float()).numpy()
    expected = SERFIQ(card, seed=3, site="embedding", passes=8).score_batch(crops, np.arange(3), _ctx(3, fr))
    for made_by, passes in ((CountingFR(), 0), (LinearFR(), 1)):  # LinearFR: no weights hash, so not the same model
        fr.passes = 0
        ctx = _ctx(3, fr)
        ctx.embeddings, ctx.embeddings_fr = (lambda: table), made_by
        got = SERFIQ(card, seed=3, site="embedding", passes=8).score_batch(crops, np.arange(3), ctx)
        assert fr.passes == passes
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_unknown_site_is_refused() -> None:
    with pytest.raises(OptionError, match="site"):
        SERFIQ(get_card("method", "ser-fiq"), site="conv1")
