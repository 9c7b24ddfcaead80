"""MagFace, CR-FIQA and SDD-FIQA: official checkpoint layouts load, preprocessing and heads match.

Each test saves a randomly initialised network in the *official* checkpoint layout (built
here independently of the method code), with the official stage counts shrunk to one unit
per stage so the files stay small, and compares the method's scores with a direct forward.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import bench.fr.iresnet as ir
import bench.methods.crfiqa as crfiqa_mod
from bench.core.cards import get_card
from bench.core.errors import DataError, MissingWeightsError
from bench.methods.crfiqa import CRFIQA
from bench.methods.magface import MagFace
from bench.methods.sddfiqa import SDDFIQA

TINY = (1, 1, 1, 1)


@pytest.fixture(autouse=True)
def _tiny_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_WEIGHTS", raising=False)
    monkeypatch.setattr(ir, "iresnet100", lambda **kw: ir.IResNet(TINY, **kw))
    monkeypatch.setattr(ir, "ir50", lambda **kw: ir.IRBackbone(TINY, **kw))
    monkeypatch.setattr(crfiqa_mod, "VARIANTS", {"L": (0, TINY), "S": (1, TINY)})


def _randomise(module: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.dtype.is_floating_point:
                base = torch.rand(t.shape, generator=g) + 0.5 if "running_var" in name else torch.randn(t.shape, generator=g)
                scale = 1.0 / np.sqrt(t[0].numel()) if t.ndim > 1 else 0.2
                t.copy_(base * scale + (1.0 if name.endswith("weight") and t.ndim == 1 else 0.0))
    return module.eval()


def _crops(n: int = 3) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(n, 112, 112, 3), dtype=np.uint8)


def _nchw(crops: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float()


def test_magface_loads_official_layout_and_scores_norm(tmp_path: Path) -> None:
    ref = _randomise(ir.IResNet(TINY, bn_eps=2e-5), 1)
    state = {f"features.module.{k}": v for k, v in ref.state_dict().items()}
    state["fc.weight"] = torch.randn(10, 512)  # MagLinear classifier, dropped at inference
    torch.save({"epoch": 25, "arch": "iresnet100", "state_dict": state}, tmp_path / "magface_epoch_00025.pth")
    method = MagFace(get_card("method", "magface"), weights=tmp_path)
    crops = _crops()
    got = method.score_batch(crops, np.arange(3), None)  # type: ignore[arg-type]
    with torch.no_grad():
        want = ref(_nchw(crops).flip(1) / 255.0).norm(dim=1).double().numpy()  # BGR in [0, 1]
    np.testing.assert_allclose(got, want, rtol=1e-4)
    assert len(method.weights_sha256) == 64


def test_magface_rejects_foreign_checkpoint(tmp_path: Path) -> None:
    torch.save({"state_dict": {"conv1.weight": torch.zeros(64, 3, 3, 3)}}, tmp_path / "magface_epoch_00025.pth")
    with pytest.raises(DataError, match="no MagFace backbone keys"):
        MagFace(get_card("method", "magface"), weights=tmp_path)


def test_crfiqa_loads_official_layout_and_scores_qs(tmp_path: Path) -> None:
    backbone = _randomise(ir.IResNet(TINY), 2)
    qs = _randomise(nn.Linear(512, 1), 3)
    state = {**backbone.state_dict(), "qs.weight": qs.weight.detach(), "qs.bias": qs.bias.detach()}
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "32572backbone.pth")
    method = CRFIQA(get_card("method", "cr-fiqa"), weights=tmp_path, variant="S")
    crops = _crops()
    got = method.score_batch(crops, np.arange(3), None)  # type: ignore[arg-type]
    with torch.no_grad():
        want = qs(backbone((_nchw(crops) / 255.0 - 0.5) / 0.5))[:, 0].double().numpy()  # RGB
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


class _OfficialBottleneckIR(nn.Module):
    """SDD-FIQA's bottleneck_IR, written out as in the official model.py."""

    def __init__(self, cin: int, depth: int, stride: int) -> None:
        super().__init__()
        self.shortcut_layer = nn.MaxPool2d(1, stride) if cin == depth else nn.Sequential(
            nn.Conv2d(cin, depth, 1, stride, bias=False), nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(nn.BatchNorm2d(cin), nn.Conv2d(cin, depth, 3, 1, 1, bias=False), nn.PReLU(depth),
                                       nn.Conv2d(depth, depth, 3, stride, 1, bias=False), nn.BatchNorm2d(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class _OfficialSDD(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        self.body = nn.Sequential(*[_OfficialBottleneckIR(i, o, 2) for i, o in ((64, 64), (64, 128), (128, 256), (256, 512))])
        self.quality = nn.Sequential(nn.Flatten(), nn.PReLU(25088), nn.Dropout(0.5), nn.Linear(25088, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quality(self.body(self.input_layer(x)))


def test_sddfiqa_loads_official_layout(tmp_path: Path) -> None:
    ref = _randomise(_OfficialSDD(), 4)
    torch.save({f"module.{k}": v for k, v in ref.state_dict().items()}, tmp_path / "SDD_FIQA_checkpoints_r50.pth")
    method = SDDFIQA(get_card("method", "sdd-fiqa"), weights=tmp_path / "SDD_FIQA_checkpoints_r50.pth")
    crops = _crops()
    got = method.score_batch(crops, np.arange(3), None)  # type: ignore[arg-type]
    with torch.no_grad():
        want = ref((_nchw(crops) - 127.5) / 127.5)[:, 0].double().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("cls", "name", "file"), [(MagFace, "magface", "magface_epoch_00025.pth"),
                                                    (CRFIQA, "cr-fiqa", "181952backbone.pth"),
                                                    (SDDFIQA, "sdd-fiqa", "SDD_FIQA_checkpoints_r50.pth")])
def test_missing_weights_name_file_and_source(tmp_path: Path, cls: type, name: str, file: str) -> None:
    with pytest.raises(MissingWeightsError) as err:
        cls(get_card("method", name), weights=tmp_path)
    message = str(err.value)
    assert file in message and "github.com" in message and "\n" not in message
