"""DifFIQA(R) / eDifFIQA: label handling, one training step on stub data, official key layouts."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bench.core.cards import Card
from bench.core.errors import DataError
from bench.core.registry import create
from bench.fr.base import TorchFRModel
from bench.fr.iresnet import IResNet
from bench.methods.distill import (
    MLPHead,
    adjusted_labels,
    identity_centres,
    normalise_labels,
    split_every_nth,
    train_distill_arrays,
)

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
    monkeypatch.setattr("bench.core.registry.create", lambda *a, **k: TinyTorchFR())
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


def _stub_run(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """Record what train_distill_arrays feeds the loss: (labels, centre given) per call, and saved epochs."""
    from bench.methods import distill

    seen: dict[str, list] = {"calls": [], "saved": []}
    real = distill.distill_loss

    def spy(kind, model, pixels, q, teacher=None, centre=None, epsilon=0.5, theta=0.5):
        seen["calls"].append((q.clone(), centre is not None, model.training))
        return real(kind, model, pixels, q, teacher, centre, epsilon, theta)

    monkeypatch.setattr(distill, "distill_loss", spy)
    monkeypatch.setattr(distill, "save_distilled", lambda path, model, meta: seen["saved"].append(meta) or path.touch())
    return seen


def test_ediffiqa_normalises_labels_after_dropping_identities_and_validates_unadjusted(tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    crops = (rng.random((30, 32, 32, 3)) * 255).astype(np.uint8)
    # Identity "low" (10 images) holds the global minimum and has no top images: it is dropped,
    # so the normalisation must span only the 20 images of "p" and "q" (scores 10..29).
    quality = np.concatenate([np.arange(10, 30, dtype=float), np.arange(0, 10, dtype=float) / 10])
    identities = np.array(["p"] * 10 + ["q"] * 10 + ["low"] * 10)
    seen = _stub_run(monkeypatch)
    res = train_distill_arrays(crops, quality, identities, TinyTorchFR(), tmp_path / "e.pt", kind="ediffiqa",
                               beta=0.5, min_images=2, backbone_tensors=2, progress=False)
    assert res.epochs == 3 and seen["saved"][0]["epoch"] == 1
    assert res.n_train + res.n_val == 20
    assert (seen["saved"][0]["label_min"], seen["saved"][0]["label_max"]) == (10.0, 29.0)
    labels = torch.cat([q for q, _, _ in seen["calls"]])
    assert labels.min().item() == 0.0 and labels.max().item() == 1.0
    val_calls = [(q, adjusted) for q, adjusted, training in seen["calls"] if not training]
    train_calls = [(q, adjusted) for q, adjusted, training in seen["calls"] if training]
    assert val_calls and not any(adjusted for _, adjusted in val_calls)
    assert train_calls and all(adjusted for _, adjusted in train_calls)


def test_validation_loss_is_the_mean_of_batch_means(tmp_path, monkeypatch) -> None:
    from bench.methods import distill

    rng = np.random.default_rng(1)
    crops = (rng.random((30, 32, 32, 3)) * 255).astype(np.uint8)
    quality = rng.random(30)
    val_losses = iter([1.0, 4.0])  # batches of 2 and 1 validation items: official mean 2.5, per-item 2.0
    real = distill.distill_loss

    def fake(kind, model, *args, **kwargs):
        loss = real(kind, model, *args, **kwargs)
        return loss if model.training else torch.tensor(next(val_losses))

    monkeypatch.setattr(distill, "distill_loss", fake)
    res = train_distill_arrays(crops, quality, np.array(["a"] * 30), TinyTorchFR(), tmp_path / "r.pt",
                               kind="diffiqa-r", batch_size=2, backbone_tensors=2, progress=False)
    assert res.epochs == 1 and res.n_val == 3 and res.best_val_loss == pytest.approx(2.5)


@pytest.mark.parametrize("freeze_rest", [False, True])
def test_backbone_tensors_outside_the_optimiser_count_in_the_clip_norm(freeze_rest) -> None:
    from bench.methods.distill import DistilledModel, PixelBackbone, make_head, make_optimizer

    fr = TinyTorchFR()
    model = DistilledModel(PixelBackbone(fr.module, fr.forward_images), make_head("diffiqa-r", 8))
    make_optimizer(model, backbone_tensors=2, freeze_rest=freeze_rest)
    pixels = torch.rand(4, 3, 32, 32) * 255
    model(pixels)[1].sum().backward()
    first = fr.module[0].weight
    # Official (freeze_rest=False): the first conv is not optimised but gets a gradient.
    assert (first.grad is None) == freeze_rest


def test_train_distill_defaults_are_official(tmp_path, monkeypatch) -> None:
    from bench.core.errors import MissingWeightsError
    from bench.methods.distill import train_distill

    monkeypatch.setenv("BENCH_WEIGHTS", str(tmp_path))
    (tmp_path / "l.csv").write_text("image_id,quality\na/1.png,0.5\n")
    with pytest.raises(MissingWeightsError, match="CosFace is the official diffiqa-r backbone.*--fr dlib-torch"):
        train_distill(tmp_path / "l.csv", tmp_path, tmp_path / "o.pt")
    from bench.cli import build_parser

    args = build_parser().parse_args(["train", "distill", "l.csv", "imgs", "o.pt"])
    assert (args.fr, args.batch_size, args.epochs, args.freeze_rest) == ("cosface", 128, None, False)


def test_ediffiqa_t_loads_an_official_mobilefacenet_file(tmp_path) -> None:
    from bench.fr.mobilefacenet import MobileFaceNet

    torch.manual_seed(3)
    net = MobileFaceNet()
    with torch.no_grad():  # random BatchNorm statistics, so a misplaced key changes the outputs
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    official = OfficialEDifFIQA(net.eval(), MLPHead(512))
    path = tmp_path / "ediffiqaT.pth"
    torch.save(official.state_dict(), path)  # as the official train.py saves model.state_dict()
    state = torch.load(path, weights_only=True)
    assert "base_model.conv_23.conv_dw.conv.weight" in state and "base_model.conv_6_dw.bn.running_var" in state
    crops = (np.random.default_rng(4).random((3, 112, 112, 3)) * 255).astype(np.uint8)
    method = create("method", "ediffiqa-t", weights=path)
    got = method.score_batch(crops, np.arange(3), None)
    x = (torch.from_numpy(crops).permute(0, 3, 1, 2).float() - 127.5) / 127.5
    with torch.no_grad():
        want = official.mlp(official.base_model(x)).squeeze(1).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    with pytest.raises(DataError, match="mobilefacenet backbone, not the iresnet of ediffiqa"):
        create("method", "ediffiqa", weights=path).load()
