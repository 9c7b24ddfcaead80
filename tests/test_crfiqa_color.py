"""CR-FIQA's channel order: the official scripts' per dataset (RGB on all seven, see
bench/methods/crfiqa.py), overridable with the option ``color``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bench.core.cards import get_card
from bench.core.options import OptionError
from bench.datasets.base import FaceDataset
from bench.datasets.dataset_stats import PAPER_DATASETS
from bench.datasets.protocol import PairProtocol
from bench.fr import iresnet as ir
from bench.methods import crfiqa as crfiqa_mod
from bench.methods.base import ScoreContext
from bench.methods.crfiqa import CRFIQA

TINY = (1, 1, 1, 1)


@pytest.fixture
def weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A random tiny CR-FIQA(S) checkpoint in the official layout."""
    monkeypatch.delenv("BENCH_WEIGHTS", raising=False)
    monkeypatch.setattr(crfiqa_mod, "VARIANTS", {"L": (0, TINY), "S": (1, TINY)})
    torch.manual_seed(0)
    net = crfiqa_mod.crfiqa_net(TINY)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
                module.running_var.uniform_(0.5, 1.5)
                module.running_mean.normal_(0, 0.1)
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "32572backbone.pth")
    assert isinstance(net, ir.IResNet)
    return tmp_path


def _ctx(name: str, n: int) -> ScoreContext:
    ds = FaceDataset(name=name, root=Path("."), image_ids=[f"{k}.jpg" for k in range(n)],
                     protocol=PairProtocol(a=np.array([0]), b=np.array([1]), mated=np.array([True])))
    return ScoreContext(dataset=ds, fr=None, crops=None)


def _crops() -> np.ndarray:
    rng = np.random.default_rng(3)
    crops = rng.integers(0, 256, size=(3, 112, 112, 3), dtype=np.uint8)
    crops[..., 0] //= 4  # red and blue clearly differ, so the order matters
    return crops


def test_official_order_is_rgb_on_every_paper_dataset() -> None:
    table = get_card("method", "cr-fiqa").get("official_color")
    assert {name: table.get(name) for name in PAPER_DATASETS} == dict.fromkeys(PAPER_DATASETS, "RGB")


def test_color_option_overrides_the_official_order(weights: Path) -> None:
    card = get_card("method", "cr-fiqa")
    crops = _crops()
    official = CRFIQA(card, weights=weights, variant="S").score_batch(crops, np.arange(3), _ctx("ijb-c", 3))
    rgb = CRFIQA(card, weights=weights, variant="S", color="RGB").score_batch(crops, np.arange(3), _ctx("ijb-c", 3))
    bgr_method = CRFIQA(card, weights=weights, variant="S", color="BGR")
    bgr = bgr_method.score_batch(crops, np.arange(3), _ctx("ijb-c", 3))
    reversed_rgb = CRFIQA(card, weights=weights, variant="S", color="RGB").score_batch(
        np.ascontiguousarray(crops[..., ::-1]), np.arange(3), _ctx("ijb-c", 3))
    np.testing.assert_array_equal(official, rgb)
    np.testing.assert_allclose(bgr, reversed_rgb, rtol=1e-6)
    assert np.abs(bgr - rgb).max() > 1e-4
    assert bgr_method.channel_order("lfw") == "BGR"


def test_official_order_follows_the_table(weights: Path) -> None:
    card = get_card("method", "cr-fiqa")
    table = dict(card.get("official_color"))
    method = CRFIQA(card, weights=weights, variant="S")
    method.card.data["official_color"] = {**table, "adience": "BGR"}
    try:
        assert method.channel_order("adience") == "BGR" and method.channel_order("lfw") == "RGB"
        assert method.channel_order("synthetic") == "RGB"  # no entry: RGB
    finally:
        method.card.data["official_color"] = table


def test_unknown_color_is_refused(weights: Path) -> None:
    with pytest.raises(OptionError, match="color"):
        CRFIQA(get_card("method", "cr-fiqa"), weights=weights, variant="S", color="YUV")
