"""DDPM parts: cosine schedule, UNet shapes, degradations, extended loss, checkpoints and resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.core.errors import BenchError, DataError
from bench.diffusion.bsrgan import bsrgan_pass, degrade_bsrgan
from bench.diffusion.checkpoint import (
    DDPMCheckpoint,
    from_model,
    load_checkpoint,
    load_denoiser,
    model_size,
    save_checkpoint,
    to_model,
)
from bench.diffusion.degrade import degrade
from bench.diffusion.schedule import CosineSchedule, backward_times, cosine_alphas_cumprod
from bench.diffusion.train_ddpm import RECIPES, ema_decay_at, extended_loss, train_ddpm
from bench.diffusion.unet import UNet, UNetConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = dict(width=8, mults=(1, 2, 4, 8), heads=2, dim_head=8, image_size=32)


def test_cosine_schedule_values() -> None:
    abar = cosine_alphas_cumprod(1000)
    s = 0.008
    f = lambda t: math.cos((t / 1000 + s) / (1 + s) * math.pi / 2) ** 2
    for t in (0, 4, 5, 19, 99, 500):
        assert abar[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-9)
    assert abar[5].item() == pytest.approx(0.9996795, abs=1e-7)
    assert torch.all(abar[1:] < abar[:-1])
    assert abar[-1].item() < 1e-6


def test_backward_times() -> None:
    # Official: the int-truncated linspace(-1, t-1, t+2) of ddim_sample_at_t lists 0 twice.
    assert backward_times(5) == [4, 3, 2, 1, 0, 0]
    assert backward_times(1) == [0, 0]
    for t in (2, 5, 20, 100):
        grid = [int(v) for v in np.linspace(-1, t - 1, t + 2).astype(np.float32)]
        assert backward_times(t) == [k for k in reversed(grid) if k >= 0]
    assert backward_times(5, "unique") == [4, 3, 2, 1, 0]
    assert backward_times(20, "unique")[0] == 19 and len(backward_times(20, "unique")) == 20
    with pytest.raises(ValueError):
        backward_times(0)


def test_schedule_coefficients_in_float64() -> None:
    # 1 - abar_t is ~1e-4 at t = 5: forming it from a float32 abar would be off in the 4th digit.
    sch = CosineSchedule(1000)
    x0, noise = torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1)
    got = sch.q_sample(x0, torch.tensor([5]), noise).item()
    assert got == pytest.approx(math.sqrt(1 - cosine_alphas_cumprod(1000)[5].item()), rel=1e-6)


def test_ddim_step_with_true_x0_and_zero_noise_is_consistent() -> None:
    sch = CosineSchedule(1000)
    x0 = torch.rand(2, 3, 4, 4) * 2 - 1
    eps = torch.randn(2, 3, 4, 4)
    x5 = sch.q_sample(x0, torch.tensor([5, 5]), eps)
    # eta = 0 with the true x0 lands exactly on the deterministic x_4 of the same noise.
    x4 = sch.ddim_step(x5, x0, 5, 4, 0.0, torch.zeros_like(x0))
    assert torch.allclose(x4, sch.q_sample(x0, torch.tensor([4, 4]), eps), atol=1e-5)


def test_mid_attention_normalises_over_positions() -> None:
    # q and k are unit vectors over the pixel positions (official l2norm on the last axis of
    # `b h c (x y)`), so scaling one channel's map of q leaves the attention unchanged.
    from bench.diffusion.unet import Attention

    torch.manual_seed(0)
    att = Attention(8, heads=2, dim_head=4)
    x = torch.randn(1, 8, 3, 3)
    base = att(x)
    with torch.no_grad():
        att.to_qkv.weight[0] *= 7.0  # channel 0 of q, across all positions
    assert torch.allclose(att(x), base, atol=1e-5)


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


def test_cheap_degradation_shape_range_determinism() -> None:
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


def _train(folder, out, steps, **kw):
    return train_ddpm(folder, out, domain="tiny32", crop_size=32, width=8, heads=2, dim_head=8, steps=steps,
                      batch_size=1, save_every=2, progress=False, seed=3, degradation="cheap", **kw)


def test_checkpoint_round_trip_and_resume(image_folder, tmp_path) -> None:
    out = tmp_path / "ckpt" / "ddpm.pt"
    r1 = _train(image_folder, out, 2, recipe="cheap")
    ck = load_checkpoint(out)
    assert (r1.step, ck.step, ck.domain, ck.crop_size, ck.config.image_size) == (2, 2, "tiny32", 32, 32)
    assert ck.opt is not None and ck.ema_updates == 2
    assert any(not torch.equal(ck.model[k], ck.ema[k]) for k in ck.model)  # EMA kept apart
    r2 = _train(image_folder, out, 4, recipe="cheap")
    assert (r2.step, r2.steps_this_run) == (4, 2)
    # Resuming reproduces an uninterrupted run exactly.
    straight = tmp_path / "straight.pt"
    _train(image_folder, straight, 4, recipe="cheap")
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
    # The official inference scores with data['model']; the EMA copy on request.
    assert torch.equal(loaded.state_dict()["init_conv.weight"], sd["init_conv.weight"])
    ema, _ = load_denoiser(tmp_path / "model.pt", weights_key="ema")
    assert torch.equal(ema.state_dict()["init_conv.weight"], sd["init_conv.weight"] + 1)
    del official["ema"]
    torch.save(official, tmp_path / "no_ema.pt")
    with pytest.raises(DataError, match="no 'ema' weights"):
        load_denoiser(tmp_path / "no_ema.pt", weights_key="ema")


def test_bad_checkpoint_file(tmp_path) -> None:
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not torch")
    with pytest.raises(DataError, match="x.pt"):
        load_checkpoint(bad)


def test_save_is_atomic(tmp_path) -> None:
    ck = DDPMCheckpoint(config=UNetConfig(**TINY), domain="d", crop_size=32)
    save_checkpoint(tmp_path / "a.pt", ck)
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


def test_official_ema_schedule() -> None:
    official, cheap = RECIPES["official"], RECIPES["cheap"]
    # ema_pytorch (update_every 10, update_after_step 100, power 2/3): copies, then a power ramp.
    assert [ema_decay_at(s, 0.995, official) for s in (0, 5, 10, 100, 101)] == [0.0, None, 0.0, 0.0, None]
    assert ema_decay_at(110, 0.995, official) == pytest.approx(1 - 11 ** (-2 / 3))
    assert ema_decay_at(100_000, 0.995, official) == 0.995
    assert ema_decay_at(7, 0.995, cheap) == pytest.approx(8 / 17)


def test_official_recipe_accumulates_four_micro_batches(image_folder, tmp_path, monkeypatch) -> None:
    from bench.diffusion import train_ddpm as module

    sizes: list[int] = []
    real = module.extended_loss

    def counting(net, schedule, clean, degraded, t_max, generator=None):
        sizes.append(len(clean))
        return real(net, schedule, clean, degraded, t_max, generator)

    monkeypatch.setattr(module, "extended_loss", counting)
    _train(image_folder, tmp_path / "a.pt", 2)
    assert sizes == [1] * 8  # 2 steps x 4 micro-batches
    ck = load_checkpoint(tmp_path / "a.pt")
    assert ck.ema_updates == 1 and ck.info["recipe"] == "official"  # EMA at steps 0, 10, 20, ...
    assert ck.opt["param_groups"][0]["betas"] == (0.9, 0.99)
    assert any(not torch.equal(ck.model[k], ck.ema[k]) for k in ck.model)
    sizes.clear()
    _train(image_folder, tmp_path / "b.pt", 2, recipe="cheap")
    assert sizes == [1] * 2
    ck = load_checkpoint(tmp_path / "b.pt")
    assert ck.ema_updates == 2 and ck.opt["param_groups"][0]["betas"] == (0.9, 0.999)
    with pytest.raises(BenchError, match="recipe 'cheap'"):
        _train(image_folder, tmp_path / "b.pt", 3)


def _face_like(size: int = 64) -> np.ndarray:
    """A smooth colourful test image with edges (blur and JPEG have something to act on)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.stack([np.sin(6 * xx) * 0.5 + 0.5, (xx + yy) / 2, (yy > 0.5) * 0.8 + 0.1], axis=-1)
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def test_bsrgan_shapes_range_determinism_and_every_step() -> None:
    img = _face_like(112)
    a = degrade_bsrgan(img, np.random.default_rng(4))
    assert a.shape == img.shape and a.dtype == np.uint8
    assert np.array_equal(a, degrade_bsrgan(img, np.random.default_rng(4)))
    assert not np.array_equal(a, degrade_bsrgan(img, np.random.default_rng(5)))
    assert np.abs(a.astype(int) - img).mean() > 2.0
    seen: set[str] = set()
    for seed in range(7):
        log: list[str] = []
        out = bsrgan_pass(img, np.random.default_rng(seed), log)
        assert out.shape == (128, 128, 3) and out.dtype == np.uint8  # 512 / sf 4, either downsample1 branch
        assert log.index("downsample2") < log.index("downsample3") and log[-1] == "final_jpeg"
        seen.update(log)
    assert seen == {"downsample1", "blur", "downsample2", "downsample3", "noise", "jpeg", "final_jpeg"}


def test_bsrgan_noise_mix_and_jpeg_channel_order() -> None:
    from bench.diffusion import bsrgan

    flat = np.full((6, 6, 3), 0.5, np.float32)
    kinds = []
    rng = np.random.default_rng(0)
    for _ in range(400):
        d = bsrgan.add_noise(flat.copy(), rng) - 0.5
        grey = np.allclose(d[..., 0], d[..., 1]) and np.allclose(d[..., 1], d[..., 2])
        corr = abs(np.corrcoef(d[..., 0].ravel(), d[..., 1].ravel())[0, 1])
        kinds.append("grey" if grey else "correlated" if corr > 0.5 else "colour")
    share = {k: kinds.count(k) / len(kinds) for k in ("grey", "colour", "correlated")}
    assert share["grey"] == pytest.approx(0.4, abs=0.08) and share["colour"] + share["correlated"] == pytest.approx(0.6, abs=0.08)
    # JPEG is encoded from BGR order, as OpenCV expects: same as encoding the swapped image by hand.
    import cv2

    img = _face_like(32).astype(np.float32) / 255
    got = bsrgan.add_jpeg(img, np.random.default_rng(3))
    quality = int(np.random.default_rng(3).integers(30, 96))
    _, buf = cv2.imencode(".jpg", bsrgan.to_uint8(img)[..., ::-1].copy(), [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    assert np.array_equal(got, cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1] / np.float32(255))
    _, wrong = cv2.imencode(".jpg", bsrgan.to_uint8(img), [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    assert not np.array_equal(got, cv2.imdecode(wrong, cv2.IMREAD_COLOR) / np.float32(255))


def test_bsrgan_kernels_blur_and_downsample() -> None:
    from bench.diffusion import bsrgan

    cov = np.array([[4.0, 1.5], [1.5, 2.0]])
    k = bsrgan.gaussian_kernel(41, cov)
    r = np.arange(41) - 20
    xx, yy = np.meshgrid(r, r)
    assert k.sum() == pytest.approx(1) and np.sum(k * xx * xx) == pytest.approx(4.0, rel=1e-3)
    assert np.sum(k * xx * yy) == pytest.approx(1.5, rel=1e-3)
    shifted = bsrgan._shifted(bsrgan.gaussian_kernel(25, np.eye(2)), 1.5)  # sf 4: (4 - 1) / 2 px up-left
    r = np.arange(25) - 12
    assert np.sum(shifted.sum(0) * r) == pytest.approx(-1.5, abs=1e-6)
    img = _face_like(64).astype(np.float32) / 255
    blurred = bsrgan.add_blur(img.copy(), np.random.default_rng(1), 4)
    assert blurred.shape == img.shape and np.abs(np.diff(blurred, axis=1)).mean() < np.abs(np.diff(img, axis=1)).mean()
    sizes = {bsrgan.downsample2(img, np.random.default_rng(s), 4).shape[0] for s in range(20)}
    assert 16 in sizes and all(8 <= s <= 64 for s in sizes)  # nearest subsampling by sf, or resize by 1/U(1, 8)


def test_weight_standardised_conv_reuses_its_weight_only_while_unchanged() -> None:
    """Without gradients the standardised weight is kept, bit for bit the one recomputed, and
    recomputed after the weight changes (in place or by load_state_dict)."""
    import torch

    from bench.diffusion.unet import WSConv2d

    torch.manual_seed(0)
    conv, x = WSConv2d(4, 6, 3, padding=1), torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        first = conv(x)
        kept = conv._standardised[1]
        assert torch.equal(conv(x), first) and conv._standardised[1] is kept
    fresh = conv(x)  # gradients on: standardised anew, same operations
    assert torch.equal(fresh, first)
    with torch.no_grad():
        conv.weight.mul_(2.0).add_(0.1)
        changed = conv(x)
    assert not torch.equal(changed, first)
    assert torch.equal(changed, conv(x).detach())
    other = WSConv2d(4, 6, 3, padding=1)
    conv.load_state_dict(other.state_dict())
    with torch.no_grad():
        assert torch.equal(conv(x), other(x))
