"""DifFIQA(R) / eDifFIQA: label handling, one training step on stub data, official key layouts."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bench.cards import Card
from bench.distill import (MLPHead, adjusted_labels, identity_centres, normalise_labels, split_every_nth,
                           train_distill_arrays)
from bench.errors import DataError
from bench.fr.base import TorchFRModel
from bench.fr.iresnet import IResNet
from bench.registry import create


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class TinyTorchFR(TorchFRModel):
    """Stub PyTorch FR model: conv, pool, linear to 8-D features."""

    domain = "tiny32"

    def __init__(self) -> None:
        super().__init__(Card(kind="fr", name="tiny-torch", entry="tests", path=Path("stub.toml"), data={"version": "1"}))
        torch.manual_seed(0)
        self.module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 8))

    def forward_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.module((images - 127.5) / 127.5)


def test_label_normalisation_and_split() -> None:
    q = np.array([3.0, 1.0, 2.0, 5.0])
    norm, lo, hi = normalise_labels(q)
    assert (lo, hi) == (1.0, 5.0) and np.allclose(norm, [0.5, 0, 0.25, 1])
    q = np.arange(25, 0, -1, dtype=float)  # label order is the reverse of index order
    train, val = split_every_nth(q, 10)
    assert sorted(val.tolist()) == [4, 14, 24]  # ranks 0, 10, 20 by label
    assert len(train) == 22 and not set(train) & set(val)
    with pytest.raises(DataError):
        normalise_labels(np.ones(3))


def test_identity_centres_and_adjusted_labels() -> None:
    emb = np.array([[1, 0], [0, 1], [1, 1], [5, 5], [2, 0], [0, 2]], dtype=float)
    q = np.array([0.9, 0.8, 0.1, 0.95, 0.7, 0.2])
    ids = np.array(["a", "a", "a", "b", "c", "c"])
    # beta 0.5: threshold = 4th best label... rank int(0.5*6)=3 of descending → 0.7.
    centres, keep = identity_centres(emb, q, ids, beta=0.5, min_images=2)
    assert set(centres) == {"a"} and np.allclose(centres["a"], [0.5, 0.5])
    assert keep.tolist() == [True, True, True, False, False, False]
    f = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    c = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    out = adjusted_labels(torch.tensor([0.5, 0.05]), f, c, 0.5)
    assert out[0].item() == pytest.approx(0.5 - 0.5 * (1 - 2**-0.5))
    assert out[1].item() == pytest.approx(0.05)


@pytest.mark.parametrize("kind", ["diffiqa-r", "ediffiqa"])
def test_one_step_on_stub_data_and_reload(kind, tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    crops = (rng.random((24, 32, 32, 3)) * 255).astype(np.uint8)
    quality = rng.random(24)
    identities = np.repeat(np.array(["p", "q"]), 12)
    fr = TinyTorchFR()
    before = [p.detach().clone() for p in fr.module.parameters()]
    res = train_distill_arrays(crops, quality, identities, fr, tmp_path / "d.pt", kind=kind, batch_size=32, beta=0.9,
                               min_images=2, backbone_tensors=2, progress=False)
    assert res.checkpoint.exists() and np.isfinite(res.best_val_loss) and res.n_val == 3 and res.n_train == 21
    after = list(fr.module.parameters())
    changed = [not torch.equal(a, b) for a, b in zip(before, after, strict=True)]
    assert changed == [False, False, False, False, True, True]  # only the last 2 tensors train
    data = torch.load(res.checkpoint, weights_only=True)
    assert data["feature_dim"] == 8 and data["domain"] == "tiny32" and data["kind"] == kind
    head_in = data["head"]["weight" if kind == "diffiqa-r" else "l1.weight"].shape[1]
    assert head_in == 8
    # Our checkpoint loads back into the scoring method (FR model rebuilt by name).
    monkeypatch.setattr("bench.registry.create", lambda *a, **k: TinyTorchFR())
    method = create("method", kind, weights=res.checkpoint)
    assert method.domain(None) == "tiny32"
    scores = method.score_batch(crops[:3], np.arange(3), None)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


class OfficialEDifFIQA(nn.Module):
    """The official eDifFIQA module's attribute names (base_model, mlp)."""

    def __init__(self, base: nn.Module, mlp: nn.Module) -> None:
        super().__init__()
        self.base_model = base
        self.mlp = mlp


@pytest.mark.parametrize("kind", ["diffiqa-r", "ediffiqa"])
def test_official_key_layout_loads(kind, tmp_path) -> None:
    torch.manual_seed(1)
    net = IResNet((1, 1, 1, 2)).eval()
    if kind == "diffiqa-r":
        official = nn.Sequential(OrderedDict(base=net, linear=nn.Linear(512, 1)))
        head = official.linear
    else:
        official = OfficialEDifFIQA(net, MLPHead(512))
        head = official.mlp
    path = tmp_path / ("diffiqa_r.pth" if kind == "diffiqa-r" else "ediffiqaL.pth")
    torch.save(official.state_dict(), path)
    crops = (np.random.default_rng(2).random((2, 112, 112, 3)) * 255).astype(np.uint8)
    method = create("method", kind, weights=path)
    assert method.domain(None) == "arcface112"
    got = method.score_batch(crops, np.arange(2), None)
    x = (torch.from_numpy(crops).permute(0, 3, 1, 2).float() - 127.5) / 127.5
    with torch.no_grad():
        want = head(net(x)).squeeze(1).numpy()
    assert np.allclose(got, want, atol=1e-5)
    other = "ediffiqa" if kind == "diffiqa-r" else "diffiqa-r"
    with pytest.raises(DataError, match="not a"):
        create("method", other, weights=path).load()
