"""DifFIQA scoring: Eq. 7 by hand, ablation wiring, seeding, domain checks, runtime breakdown."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.core.cards import Card
from bench.core.errors import BenchError, MissingWeightsError
from bench.core.registry import create
from bench.datasets.base import FaceDataset
from bench.datasets.protocol import PairProtocol
from bench.diffusion.checkpoint import DDPMCheckpoint, load_checkpoint, save_checkpoint
from bench.diffusion.schedule import CosineSchedule
from bench.diffusion.unet import UNet, UNetConfig
from bench.fr.base import FRModel, TorchFRModel
from bench.methods.base import ScoreContext, image_seed
from bench.methods.diffiqa import STEPS, DifFIQAParams, combine, draw_noise, perturb

SIZE = 32


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class LinearFR(FRModel):
    """Stub FR model: a fixed linear map of the centred pixels; logs how many crops it embeds."""

    domain = "tiny32"

    def __init__(self, domain: str = "tiny32") -> None:
        super().__init__(Card(kind="fr", name="linear-stub", entry="tests", path=Path("stub.toml"), data={"version": "1"}))
        self.domain = domain
        self.w = np.random.default_rng(5).normal(size=(SIZE * SIZE * 3, 6))
        self.calls: list[int] = []

    def embed(self, crops: np.ndarray) -> np.ndarray:
        self.calls.append(len(crops))
        x = crops.reshape(len(crops), -1).astype(np.float64) / 255.0 - 0.5
        return (x @ self.w).astype(np.float32)


class ArrayCrops:
    def __init__(self, crops: np.ndarray) -> None:
        self.crops = crops

    def get(self, idx: np.ndarray) -> np.ndarray:
        return self.crops[idx]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    config = UNetConfig(width=8, heads=2, dim_head=8, image_size=SIZE)
    net = UNet(config)
    path = tmp_path_factory.mktemp("w") / "diffiqa_ddpm.pt"
    save_checkpoint(path, DDPMCheckpoint(config=config, domain="tiny32", crop_size=SIZE, model=net.state_dict(), ema=net.state_dict()))
    return path


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, ScoreContext]:
    crops = (np.random.default_rng(1).random((3, SIZE, SIZE, 3)) * 255).astype(np.uint8)
    proto = PairProtocol(a=np.array([0]), b=np.array([1]), mated=np.array([True]))
    ds = FaceDataset(name="tiny", root=Path("."), image_ids=["a.png", "b.png", "c.png"], protocol=proto,
                     reader=lambda i: crops[i])
    ctx = ScoreContext(dataset=ds, fr=LinearFR(), crops=ArrayCrops(crops), batch_size=3, progress=False)
    return crops, ctx


def test_combine_hand_computed() -> None:
    noisy = torch.tensor([[[0.9, 0.7], [0.5, 0.3]]])  # [B=1, V=2 (x, x_f), n=2]
    recon = torch.tensor([[[0.8, 0.6], [0.4, 0.2]]])
    flip = torch.tensor([0.1])
    rep1 = (0.9 + 0.8 + 0.1 + 0.5 + 0.4) / 5
    rep2 = (0.7 + 0.6 + 0.1 + 0.3 + 0.2) / 5
    assert combine(noisy, recon, flip).item() == pytest.approx((rep1 + rep2) / 2)
    assert combine(noisy[:, :1], recon[:, :1], None).item() == pytest.approx(((0.9 + 0.8) / 2 + (0.7 + 0.6) / 2) / 2)
    assert combine(None, recon, flip).item() == pytest.approx(((0.8 + 0.1 + 0.4) / 3 + (0.6 + 0.1 + 0.2) / 3) / 2)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_score_matches_eq7_recomputed(checkpoint, data) -> None:
    crops, ctx = data
    method = create("method", "diffiqa", weights=checkpoint, seed=4, repeats=3)
    scores = method.score_batch(crops, np.arange(3), ctx)
    # Recompute by hand from the same seeded perturbations, image by image.
    p = DifFIQAParams(repeats=3)
    fr, net = LinearFR(), method.net
    for i, image_id in enumerate(["a.png", "b.png", "c.png"]):
        x = torch.from_numpy(crops[i]).permute(2, 0, 1).float()[None] / 127.5 - 1
        views = torch.cat([x, x.flip(-1)])  # [2, C, H, W]
        fwd, steps = draw_noise([image_seed(4, image_id)], 2, p, (3, SIZE, SIZE))
        model_in = views[:, None].expand(-1, 3, -1, -1, -1).reshape(6, 3, SIZE, SIZE)
        x_t, x_hat = perturb(net, CosineSchedule(), model_in, p, fwd.flatten(0, 2), steps.flatten(1, 3))

        def emb(img: torch.Tensor) -> np.ndarray:
            u8 = ((img + 1) * 127.5).clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            return fr.embed(u8[None])[0]

        e_x, e_f = emb(x[0]), emb(views[1])
        per_rep = []
        for r in range(3):
            members = [emb(x_t[r]), emb(x_hat[r]), e_f, emb(x_t[3 + r]), emb(x_hat[3 + r])]
            per_rep.append(np.mean([_cos(e_x, m) for m in members]))
        assert scores[i] == pytest.approx(np.mean(per_rep), abs=1e-5)
    assert np.all(scores > -1) and np.all(scores <= 1)


@pytest.mark.parametrize(("name", "expected"), [("diffiqa", 2 + 2 + 2 * 12), ("diffiqa-noflip", 2 + 2 * 6),
                                                ("diffiqa-noforward", 2 + 2 + 12), ("diffiqa-t20", 2 + 2 + 2 * 12)])
def test_ablation_wiring(checkpoint, data, name, expected) -> None:
    crops, ctx = data
    fr = LinearFR()
    ctx2 = ScoreContext(dataset=ctx.dataset, fr=fr, crops=ctx.crops, progress=False)
    method = create("method", name, weights=checkpoint, repeats=3)
    method.score_batch(crops[:2], np.arange(2), ctx2)
    assert fr.calls == [expected]  # x, (x_f), (x_t, x_t^f per rep), x̂ (x̂^f per rep): one FR batch
    assert method.params.t == (20 if name == "diffiqa-t20" else 5)


def test_cached_clean_embeddings_replace_embedding_x(checkpoint, data) -> None:
    """The quality FR is the evaluation FR (same weights hash): x's embedding comes from the
    run's cache, the FR model embeds only E, and the scores are the same."""
    crops, ctx = data
    fresh, cached, other = LinearFR(), LinearFR(), LinearFR()
    for fr, digest in ((fresh, "w1"), (cached, "w1"), (other, "w2")):
        fr.weights_sha256 = digest
    table = LinearFR().embed(crops)
    base = create("method", "diffiqa", weights=checkpoint, repeats=3)
    expected = base.score_batch(crops[:2], np.arange(2), ScoreContext(dataset=ctx.dataset, fr=fresh, crops=ctx.crops))
    for made_by, calls in ((cached, [2 + 2 * 12]), (other, [2 + 2 + 2 * 12])):
        fr = LinearFR()
        fr.weights_sha256 = "w1"
        reuse = ScoreContext(dataset=ctx.dataset, fr=fr, crops=ctx.crops, embeddings=lambda: table, embeddings_fr=made_by)
        got = create("method", "diffiqa", weights=checkpoint, repeats=3).score_batch(crops[:2], np.arange(2), reuse)
        assert fr.calls == calls  # without x when the cache is the same model's, with x when not
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_seeded_and_batch_independent(checkpoint, data) -> None:
    crops, ctx = data
    method = create("method", "diffiqa", weights=checkpoint, seed=1, repeats=2)
    together = method.score_batch(crops, np.arange(3), ctx)
    again = method.score_batch(crops, np.arange(3), ctx)
    alone = method.score_batch(crops[2:], np.array([2]), ctx)
    other_seed = create("method", "diffiqa", weights=checkpoint, seed=2, repeats=2).score_batch(crops, np.arange(3), ctx)
    chunked = create("method", "diffiqa", weights=checkpoint, seed=1, repeats=2, unet_batch=3).score_batch(crops, np.arange(3), ctx)
    assert np.array_equal(together, again)
    assert np.allclose(chunked, together, atol=1e-4)  # batched float kernels + uint8 rounding
    assert alone[0] == pytest.approx(together[2], abs=1e-4)
    assert not np.allclose(together, other_seed, atol=1e-7, rtol=0)


def test_domain_mismatch_and_missing_weights(checkpoint, data, monkeypatch) -> None:
    crops, ctx = data
    wrong = ScoreContext(dataset=ctx.dataset, fr=LinearFR(domain="arcface112"), crops=ctx.crops, progress=False)
    with pytest.raises(BenchError, match="trained on 'tiny32' crops.*'arcface112'"):
        create("method", "diffiqa", weights=checkpoint, repeats=1).score_batch(crops, np.arange(3), wrong)
    monkeypatch.delenv("BENCH_WEIGHTS", raising=False)
    with pytest.raises(MissingWeightsError, match="diffiqa_ddpm.pt"):
        create("method", "diffiqa", repeats=1).score_batch(crops, np.arange(3), ctx)


def test_runtime_breakdown(checkpoint, data) -> None:
    _, ctx = data
    ctx1 = ScoreContext(dataset=ctx.dataset, fr=LinearFR(), crops=ctx.crops, batch_size=1, progress=False)
    result = create("method", "diffiqa", weights=checkpoint, repeats=1).score_dataset(np.arange(3), ctx1)
    table = result.extra["runtime_breakdown"]
    assert set(table) == {*STEPS, "total"}
    assert all(len(v) == 2 and v[0] >= 0 and v[1] >= 0 for v in table.values())
    assert table["total"][0] == pytest.approx(sum(table[k][0] for k in STEPS))
    assert len(result.scores) == 3


class RecordingTorchFR(TorchFRModel):
    """A PyTorch stub FR model that records the range of the pixels it is given."""

    domain = "tiny32"

    def __init__(self) -> None:
        super().__init__(Card(kind="fr", name="torch-stub", entry="tests", path=Path("stub.toml"), data={"version": "1"}))
        torch.manual_seed(2)
        self.module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * SIZE * SIZE, 6))
        self.seen: list[tuple[float, float]] = []

    def forward_images(self, images: torch.Tensor) -> torch.Tensor:
        self.seen.append((images.min().item(), images.max().item()))
        return self.module(images / 127.5 - 1)


def test_torch_fr_gets_unclipped_floats(checkpoint, data) -> None:
    crops, _ = data
    saturated = crops.copy()
    saturated[:, :4] = 255  # bright rows: noise pushes some pixels above 255
    saturated[:, -4:] = 0
    fr = RecordingTorchFR()
    method = create("method", "diffiqa", weights=checkpoint, repeats=2)
    method.load(fr)
    method.score_crops(saturated, ["a.png", "b.png", "c.png"], fr)
    lo, hi = min(s[0] for s in fr.seen), max(s[1] for s in fr.seen)
    assert lo < 0 and hi > 255  # the official code feeds the noisy images unclipped


def test_defaults_are_official_and_options_change_scores(checkpoint, data, tmp_path) -> None:
    crops, ctx = data
    method = create("method", "diffiqa", weights=checkpoint, seed=1, repeats=2)
    assert (method.options["weights_key"], method.precision, method.params.backward_times) == ("model", "fp32", "official")
    assert method._autocast_dtype() is None
    base = method.score_batch(crops, np.arange(3), ctx)
    # A checkpoint whose EMA weights differ: weights_key picks them; the default does not.
    ck = load_checkpoint(checkpoint)
    ck.ema = {k: v + 0.05 * torch.randn_like(v) for k, v in ck.ema.items()}
    other = tmp_path / "diffiqa_ddpm.pt"
    save_checkpoint(other, ck)
    same = create("method", "diffiqa", weights=other, seed=1, repeats=2).score_batch(crops, np.arange(3), ctx)
    ema = create("method", "diffiqa", weights=other, seed=1, repeats=2, weights_key="ema").score_batch(crops, np.arange(3), ctx)
    assert np.allclose(same, base, atol=1e-6) and not np.allclose(ema, base, atol=1e-4)
    bf16 = create("method", "diffiqa", weights=checkpoint, seed=1, repeats=2, precision="bf16")
    assert bf16._autocast_dtype() is torch.bfloat16
    assert not np.array_equal(bf16.score_batch(crops, np.arange(3), ctx), base)  # autocast runs on CPU too
    with pytest.raises(BenchError, match="precision"):
        create("method", "diffiqa", weights=checkpoint, precision="auto")


def test_cards_name_the_official_quality_fr_and_the_a2_reading() -> None:
    from bench.core.registry import get_card

    assert get_card("fr", "cosface").name == "cosface"
    for name in ("diffiqa", "diffiqa-noflip", "diffiqa-noforward", "diffiqa-t20", "faceqan"):
        card = get_card("method", name)
        assert card.get("quality_fr") == "cosface" and "official" in card.get("notes", "")
    assert "no official code" in get_card("method", "diffiqa-noforward").get("notes")
