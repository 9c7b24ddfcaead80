"""DDPM parts: cosine schedule, UNet shapes, degradations, extended loss, checkpoints and resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.diffusion.checkpoint import (DDPMCheckpoint, from_model, load_checkpoint, load_denoiser, model_size,
                                        save_checkpoint, to_model)
from bench.diffusion.degrade import degrade
from bench.diffusion.schedule import CosineSchedule, backward_times, cosine_alphas_cumprod
from bench.diffusion.train_ddpm import extended_loss, train_ddpm
from bench.diffusion.unet import UNet, UNetConfig
from bench.errors import BenchError, DataError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = dict(width=8, mults=(1, 2, 4, 8), heads=2, dim_head=8, image_size=32)


def test_cosine_schedule_values() -> None:
    abar = cosine_alphas_cumprod(1000)
    s = 0.008
    f = lambda t: math.cos((t / 1000 + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 4, 5, 19, 99, 500):
        assert abar[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-9)
    assert abar[5].item() == pytest.approx(0.9996795, abs=1e-7)
    assert torch.all(abar[1:] < abar[:-1])
    assert abar[-1].item() < 1e-6


def test_backward_times() -> None:
    assert backward_times(5) == [4, 3, 2, 1, 0]
    assert backward_times(20)[0] == 19 and len(backward_times(20)) == 20
    with pytest.raises(ValueError):
        backward_times(0)


def test_ddim_step_with_true_x0_and_zero_noise_is_consistent() -> None:
    sch = CosineSchedule(1000)
    x0 = torch.rand(2, 3, 4, 4) * 2 - 1
    eps = torch.randn(2, 3, 4, 4)
    x5 = sch.q_sample(x0, torch.tensor([5, 5]), eps)
    # eta = 0 with the true x0 lands exactly on the deterministic x_4 of the same noise.
    x4 = sch.ddim_step(x5, x0, 5, 4, 0.0, torch.zeros_like(x0))
    assert torch.allclose(x4, sch.q_sample(x0, torch.tensor([4, 4]), eps), atol=1e-5)


def test_unet_shapes_and_divisibility() -> None:
    net = UNet(UNetConfig(**TINY))
    y = net(torch.randn(3, 3, 32, 32), torch.tensor([0, 4, 99]))
    assert y.shape == (3, 3, 32, 32)
    assert UNetConfig().time_dim == 512
    with pytest.raises(ValueError, match="divisible by 8"):
        UNetConfig(width=8, image_size=150)
    assert model_size(150, 4) == 152 and model_size(112, 4) == 112


def test_model_geometry_round_trip() -> None:
    x = torch.rand(2, 3, 150, 150) * 2 - 1
    padded = to_model(x, 152)
    assert padded.shape[-1] == 152 and torch.equal(from_model(padded, 150), x)
    small = to_model(x, 64)
    assert small.shape[-1] == 64 and from_model(small, 150).shape[-1] == 150


def test_degradation_shape_range_determinism() -> None:
    img = (np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)
    a = degrade(img, np.random.default_rng(1))
    b = degrade(img, np.random.default_rng(1))
    assert a.shape == img.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert np.abs(a.astype(int) - img).mean() > 1.0


def test_extended_loss_targets_clean_image() -> None:
    torch.manual_seed(0)
    net = UNet(UNetConfig(**TINY))
    sch = CosineSchedule()
    clean = torch.rand(2, 3, 32, 32) * 2 - 1
    loss = extended_loss(net, sch, clean, -clean, 100, torch.Generator().manual_seed(0))
    loss.backward()
    assert loss.item() > 0 and net.final_conv.weight.grad is not None


@pytest.fixture()
def image_folder(tmp_path):
    import cv2

    folder = tmp_path / "faces" / "person"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(folder / f"{i}.png"), (rng.random((48, 40, 3)) * 255).astype(np.uint8))
    return tmp_path / "faces"


def _train(folder, out, steps):
    return train_ddpm(folder, out, domain="tiny32", crop_size=32, width=8, heads=2, dim_head=8, steps=steps,
                      batch_size=2, save_every=2, progress=False, seed=3)


def test_checkpoint_round_trip_and_resume(image_folder, tmp_path) -> None:
    out = tmp_path / "ckpt" / "ddpm.pt"
    r1 = _train(image_folder, out, 2)
    ck = load_checkpoint(out)
    assert (r1.step, ck.step, ck.domain, ck.crop_size, ck.config.image_size) == (2, 2, "tiny32", 32, 32)
    assert ck.opt is not None and ck.ema_updates == 2
    assert any(not torch.equal(ck.model[k], ck.ema[k]) for k in ck.model)  # EMA kept apart
    r2 = _train(image_folder, out, 4)
    assert (r2.step, r2.steps_this_run) == (4, 2)
    # Resuming reproduces an uninterrupted run exactly.
    straight = tmp_path / "straight.pt"
    _train(image_folder, straight, 4)
    a, b = load_checkpoint(out), load_checkpoint(straight)
    assert all(torch.allclose(a.ema[k], b.ema[k], atol=1e-6) for k in a.ema)
    net, _ = load_denoiser(out)
    assert not net.training
    with pytest.raises(BenchError, match="another config"):
        train_ddpm(image_folder, out, domain="tiny32", crop_size=32, width=16, heads=2, dim_head=8, steps=5, progress=False)


def test_official_layout_loads(tmp_path) -> None:
    net = UNet(UNetConfig(width=8, mults=(1, 2, 4, 8), image_size=112))
    sd = net.state_dict()
    official = {
        "step": 7,
        "model": {"betas": torch.zeros(1000), **{f"model.{k}": v for k, v in sd.items()}},
        "ema": {"initted": torch.tensor(True), **{f"ema_model.model.{k}": v + 1 for k, v in sd.items()},
                **{f"online_model.model.{k}": v for k, v in sd.items()}},
    }
    torch.save(official, tmp_path / "model.pt")
    loaded, ck = load_denoiser(tmp_path / "model.pt")
    assert (ck.domain, ck.crop_size, ck.config.width, ck.config.mults, ck.step) == ("arcface112", 112, 8, (1, 2, 4, 8), 7)
    assert torch.equal(loaded.state_dict()["init_conv.weight"], sd["init_conv.weight"] + 1)


def test_bad_checkpoint_file(tmp_path) -> None:
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not torch")
    with pytest.raises(DataError, match="x.pt"):
        load_checkpoint(bad)


def test_save_is_atomic(tmp_path) -> None:
    ck = DDPMCheckpoint(config=UNetConfig(**TINY), domain="d", crop_size=32)
    save_checkpoint(tmp_path / "a.pt", ck)
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]
