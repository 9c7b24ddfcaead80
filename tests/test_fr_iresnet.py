"""iResNet/IR backbones and the checkpoint-backed FR models (arcface, cosface, adaface, curricularface).

Checkpoints are written here in each release's own wrapping and key naming, from randomly
initialised networks with randomised BatchNorm statistics, so a key mapped to the wrong
place, a wrong colour order or a wrong normalisation changes the outputs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bench.core.cards import Card, get_card
from bench.core.errors import DataError, MissingWeightsError
from bench.core.io import sha256_file
from bench.core.registry import create
from bench.fr.adaface import AdaFace
from bench.fr.curricularface import CurricularFace
from bench.fr.insightface import ArcFace, CosFace
from bench.fr.iresnet import IRBackbone, IResNet, ir101, iresnet100, load_state_dict_mapped

SMALL = [1, 2, 1, 1]


def small_card(name: str, **extra: object) -> Card:
    """The real card with a shallow network, so tests build and run in milliseconds."""
    card = get_card("fr", name)
    key = "layers" if "layers" in card.data["arch"] else "units"
    data = {**card.data, "arch": {**card.data["arch"], key: SMALL}, **extra}
    return Card(kind=card.kind, name=card.name, entry=card.entry, path=card.path, data=data)


def randomised(module: nn.Module, seed: int = 0) -> nn.Module:
    """``module`` in eval mode with random BatchNorm/PReLU state (default init makes BN an identity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=gen))
                if m.affine:
                    m.weight.copy_(1 + 0.1 * torch.randn(m.num_features, generator=gen))
                    m.bias.copy_(0.1 * torch.randn(m.num_features, generator=gen))
            elif isinstance(m, nn.PReLU):
                m.weight.copy_(0.5 * torch.rand(m.weight.shape, generator=gen))
    return module.eval()


def pixels(n: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, 112, 112, generator=torch.Generator().manual_seed(seed)) * 255


def norm(x: torch.Tensor) -> torch.Tensor:
    return (x - 127.5) / 127.5


def test_iresnet100_has_the_insightface_layout() -> None:
    net = iresnet100()
    state = net.state_dict()
    assert max(int(k.split(".")[1]) for k in state if k.startswith("layer3.")) == 29
    assert max(int(k.split(".")[1]) for k in state if k.startswith("layer2.")) == 12
    assert state["layer1.0.downsample.0.weight"].shape == (64, 64, 1, 1)
    assert "layer1.1.downsample.0.weight" not in state
    assert state["layer4.2.prelu.weight"].shape == (512,)
    assert state["fc.weight"].shape == (512, 512 * 7 * 7)
    assert {"bn2.running_var", "features.weight", "features.bias", "features.running_mean"} <= set(state)
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(65.16e6, rel=1e-3)
    assert not net.features.weight.requires_grad


@pytest.mark.parametrize(("variant", "res_len"), [("tface", 6), ("evolve", 5)])
def test_ir101_layouts(variant: str, res_len: int) -> None:
    net = ir101(variant=variant)
    state = net.state_dict()
    assert len(net.body) == 49 and len(net.body[0].res_layer) == res_len
    assert isinstance(net.body[0].shortcut_layer, nn.MaxPool2d)  # 64 -> 64: subsampling only
    assert state["body.3.shortcut_layer.0.weight"].shape == (128, 64, 1, 1)
    assert state[f"body.48.res_layer.{res_len - 1}.running_var"].shape == (512,)
    assert "output_layer.4.weight" not in state and "output_layer.4.running_mean" in state
    assert state["output_layer.3.weight"].shape == (512, 25088)


@pytest.mark.parametrize("net", [IResNet(SMALL), IRBackbone(SMALL, variant="evolve")])
def test_features_then_head_is_forward(net: nn.Module) -> None:
    net = randomised(net)
    x = norm(pixels())
    with torch.no_grad():
        assert net.forward_features(x).shape == (2, 25088)
        assert torch.equal(net.forward_head(net.forward_features(x)), net(x))


def test_arcface_loads_plain_insightface_state_dict(tmp_path: Path) -> None:
    net = randomised(IResNet(SMALL))
    path = tmp_path / "backbone.pth"
    torch.save(net.state_dict(), path)
    fr = ArcFace(card=small_card("arcface"), weights=path)
    x = pixels()
    with torch.no_grad():
        expected = net(norm(x))
        assert torch.allclose(fr.forward_images(x), expected, atol=1e-5)
    crops = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    emb = fr.embed(crops)
    assert emb.dtype == np.float32 and emb.shape == (2, 512)
    np.testing.assert_array_equal(emb, fr.embed(crops))
    assert fr.weights_sha256 == sha256_file(path)
    assert fr.provenance()["fr_weights_sha256"] == sha256_file(path)


def test_forward_images_is_differentiable(tmp_path: Path) -> None:
    path = tmp_path / "backbone.pth"
    torch.save(randomised(IResNet(SMALL)).state_dict(), path)
    fr = CosFace(card=small_card("cosface"), weights=path)
    x = pixels(1).requires_grad_(True)
    fr.forward_images(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_cosface_from_bench_weights_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = randomised(IResNet(SMALL), seed=3)
    path = tmp_path / "glint360k_cosface_r100_fp16_0.1" / "backbone.pth"
    path.parent.mkdir()
    torch.save(net.state_dict(), path)
    monkeypatch.setenv("BENCH_WEIGHTS", str(tmp_path))
    fr = CosFace(card=small_card("cosface"))
    with torch.no_grad():
        assert torch.allclose(fr.forward_images(pixels()), net(norm(pixels())), atol=1e-5)


def test_adaface_lightning_checkpoint_and_bgr(tmp_path: Path) -> None:
    net = randomised(IRBackbone(SMALL, variant="tface"))
    state = {f"model.{k}": v for k, v in net.state_dict().items()}
    state["head.kernel"] = torch.randn(512, 10)
    path = tmp_path / "adaface_ir101_webface12m.ckpt"
    # Lightning also pickles hyper-parameters, which the tensors-only loader refuses.
    torch.save({"state_dict": state, "hyper_parameters": argparse.Namespace(arch="ir_101"), "epoch": 3}, path)
    fr = AdaFace(card=small_card("adaface"), weights=path)
    x = pixels()
    with torch.no_grad():
        got = fr.forward_images(x)
        assert torch.allclose(got, net(norm(x).flip(1)), atol=1e-5)
        assert not torch.allclose(got, net(norm(x)), atol=1e-3)


def test_adaface_rejects_a_plain_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "plain.ckpt"
    torch.save(IRBackbone(SMALL).state_dict(), path)
    with pytest.raises(DataError, match="plain.ckpt: not an AdaFace Lightning checkpoint"):
        AdaFace(card=small_card("adaface"), weights=path)


def test_curricularface_loads_evolve_layout(tmp_path: Path) -> None:
    net = randomised(IRBackbone(SMALL, variant="evolve"))
    path = tmp_path / "CurricularFace_Backbone.pth"
    torch.save(net.state_dict(), path)
    fr = CurricularFace(card=small_card("curricularface"), weights=path)
    x = pixels()
    with torch.no_grad():
        assert torch.allclose(fr.forward_images(x), net(norm(x)), atol=1e-5)


def test_wrong_layout_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "CurricularFace_Backbone.pth"
    torch.save(IRBackbone(SMALL, variant="tface").state_dict(), path)
    with pytest.raises(DataError) as info:
        CurricularFace(card=small_card("curricularface"), weights=path)
    message = str(info.value)
    assert str(path) in message and "unexpected keys" in message and "\n" not in message


@pytest.mark.parametrize(
    ("name", "file"),
    [
        ("arcface", "ms1mv3_arcface_r100_fp16/backbone.pth"),
        ("cosface", "glint360k_cosface_r100_fp16_0.1/backbone.pth"),
        ("adaface", "adaface_ir101_webface12m.ckpt"),
        ("curricularface", "CurricularFace_Backbone.pth"),
    ],
)
def test_missing_weights(name: str, file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_WEIGHTS", raising=False)
    with pytest.raises(MissingWeightsError, match=f"{name}: weight file '{file}' not found .*published at https://"):
        create("fr", name)
    monkeypatch.setenv("BENCH_WEIGHTS", str(tmp_path))
    with pytest.raises(MissingWeightsError, match=str(tmp_path)):
        create("fr", name)


def test_card_sha256_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "backbone.pth"
    torch.save(IResNet(SMALL).state_dict(), path)
    card = small_card("arcface", weights=[{"file": "backbone.pth", "sha256": "0" * 64}])
    with pytest.raises(DataError, match="differs from the card"):
        ArcFace(card=card, weights=path)


def test_load_state_dict_mapped_prefixes_ignores_and_shapes() -> None:
    source = randomised(IResNet(SMALL))
    # MagFace: backbone under features.module., its own classifier as a top-level fc.weight.
    magface = {f"features.module.{k}": v for k, v in source.state_dict().items() if "num_batches" not in k}
    magface["fc.weight"] = torch.randn(512, 7)
    target = IResNet(SMALL)
    load_state_dict_mapped(target, magface, source="magface.pth", ignore_prefixes=("fc.",))
    x = norm(pixels(1))
    with torch.no_grad():
        assert torch.equal(target.eval()(x), source(x))
    parallel = {f"module.{k}": v for k, v in source.state_dict().items()}
    load_state_dict_mapped(IResNet(SMALL), parallel)
    with pytest.raises(DataError, match=r"r50.pth: weights do not fit IResNet: .*shape mismatches"):
        load_state_dict_mapped(IResNet(SMALL, num_features=128), source.state_dict(), source="r50.pth")
    with pytest.raises(DataError, match="missing keys"):
        load_state_dict_mapped(IResNet(SMALL), {"conv1.weight": source.conv1.weight})


@pytest.mark.slow  # ~4 s: writes and reads a 260 MB iResNet-100 checkpoint
def test_full_depth_arcface_through_the_registry(tmp_path: Path) -> None:
    net = randomised(iresnet100())
    path = tmp_path / "backbone.pth"
    torch.save(net.state_dict(), path)
    fr = create("fr", "arcface", weights=path)
    assert fr.domain == "arcface112" and fr.provenance()["fr"] == "arcface"
    x = pixels(1)
    with torch.no_grad():
        assert torch.allclose(fr.forward_images(x), net(norm(x)), atol=1e-4)


@pytest.mark.parametrize(("name", "variant"), [("arcface", None), ("cosface", None), ("adaface", "tface"),
                                               ("curricularface", "evolve")])
def test_flip_option_sums_the_mirror_embedding(name: str, variant: str | None, tmp_path: Path) -> None:
    net = randomised(IResNet(SMALL) if variant is None else IRBackbone(SMALL, variant=variant))
    path = tmp_path / "w.pth"
    state = net.state_dict()
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}} if name == "adaface" else state, path)
    cls = {"arcface": ArcFace, "cosface": CosFace, "adaface": AdaFace, "curricularface": CurricularFace}[name]
    fr0 = cls(card=small_card(name), weights=path)
    fr1 = cls(card=small_card(name), weights=path, flip="true")
    crops = pixels().round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    mirrored = np.ascontiguousarray(crops[:, :, ::-1])
    np.testing.assert_allclose(fr1.embed(crops), fr0.embed(crops) + fr0.embed(mirrored), rtol=1e-5, atol=1e-5)
    assert "fr_options" not in fr0.provenance()
    assert fr1.provenance()["fr_options"] == '{"flip":true}'
    assert cls(card=small_card(name), weights=path, flip=False).provenance() == fr0.provenance()


def test_adaface_checkpoint_with_lightning_classes_loads_without_lightning(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    net = randomised(IRBackbone(SMALL, variant="tface"), seed=5)
    fake = types.ModuleType("pytorch_lightning")

    class AttributeDict(dict):
        pass

    class ModelCheckpoint:
        def __init__(self) -> None:
            self.best = 0.5

    for cls in (AttributeDict, ModelCheckpoint):
        cls.__module__, cls.__qualname__ = "pytorch_lightning", cls.__name__
    fake.AttributeDict, fake.ModelCheckpoint = AttributeDict, ModelCheckpoint
    monkeypatch.setitem(sys.modules, "pytorch_lightning", fake)
    path = tmp_path / "adaface_ir101_webface12m.ckpt"
    state = {f"model.{k}": v for k, v in net.state_dict().items()}
    state["head.kernel"] = torch.randn(512, 10)
    torch.save({"state_dict": state, "hyper_parameters": AttributeDict(arch="ir_101", lr=0.1),
                "callbacks": {ModelCheckpoint: {"best": ModelCheckpoint()}}, "epoch": 3}, path)
    monkeypatch.delitem(sys.modules, "pytorch_lightning")
    fr = AdaFace(card=small_card("adaface"), weights=path)
    with torch.no_grad():
        assert torch.allclose(fr.forward_images(pixels()), net(norm(pixels()).flip(1)), atol=1e-5)
    from bench.fr.lightning_ckpt import load_lightning_checkpoint

    data = load_lightning_checkpoint(path)
    assert data["epoch"] == 3 and "hyper_parameters" not in data
    assert data["callbacks"] == {"pytorch_lightning.ModelCheckpoint": {}}
    assert "pytorch_lightning" not in sys.modules
