"""Golden outputs of the official DifFIQA(R), eDifFIQA, eDifFIQA(T), insightface, AdaFace and CurricularFace code.

``tests/golden/official/base/*.npz`` hold facts recorded from the official code
(``README.md`` there: commits and how they were made): the official model's state-dict keys,
shapes and dtypes, three 112x112 RGB crops, and the official outputs (quality and features, or embeddings). The
weights are not stored (an iResNet is tens of MB even at depth 5): every tensor is a function
of its key name (:func:`recipe`, the same function the recording script used), so the test
writes the state dict the official trainer would save (``torch.save(model.state_dict())``)
under the official key names, loads it through ``bench`` and compares the outputs.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.core.cards import Card, get_card
from bench.core.registry import create

GOLDEN = Path(__file__).parent / "golden" / "official" / "base"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def recipe(name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """The deterministic value of state-dict entry ``name`` (as in the recording script)."""
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    if name.endswith("running_var"):
        return 0.5 + torch.rand(shape, generator=g, dtype=torch.float64)
    if name.endswith("running_mean") or len(shape) <= 1:
        # 1-D weights are BatchNorm scales or PReLU slopes: near 1 keeps the signal alive through deep nets.
        base = 1.0 if name.endswith(".weight") else 0.0
        return base + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)
    return torch.randn(shape, generator=g, dtype=torch.float64) / np.sqrt(int(np.prod(shape[1:])))


def official_file(golden: np.lib.npyio.NpzFile, path: Path) -> Path:
    """The state dict under the official key names, saved as the official trainers save it."""
    state = OrderedDict()
    for key, shape, dtype in zip(golden["keys"], golden["shapes"], golden["dtypes"], strict=True):
        dims = tuple(int(d) for d in str(shape).split(",") if d)
        state[str(key)] = recipe(str(key), dims, getattr(torch, str(dtype))).to(getattr(torch, str(dtype)))
    torch.save(state, path)
    return path


@pytest.mark.parametrize(("method", "golden_name", "file"), [
    ("diffiqa-r", "diffiqa_r", "model.pth"),
    ("ediffiqa", "ediffiqa", "ediffiqaL.pth"),
    ("ediffiqa-t", "ediffiqa_t", "ediffiqaT.pth"),
])
def test_official_heads_reproduced(method: str, golden_name: str, file: str, tmp_path: Path) -> None:
    golden = np.load(GOLDEN / f"{golden_name}.npz")
    path = official_file(golden, tmp_path / file)
    scorer = create("method", method, weights=path)
    crops = golden["crops"]
    quality = scorer.score_batch(crops, np.arange(len(crops)), None)
    model = scorer.load()
    with torch.no_grad():
        features = model(torch.from_numpy(crops).permute(0, 3, 1, 2).float())[0].numpy()
    dq = float(np.abs(quality - golden["quality"]).max() / np.abs(golden["quality"]).max())
    df = float(np.abs(features - golden["features"]).max() / np.abs(golden["features"]).max())
    print(f"{method}: max |dq| {np.abs(quality - golden['quality']).max():.2e} (relative {dq:.2e}), "
          f"max |dfeature| {np.abs(features - golden['features']).max():.2e} (relative {df:.2e})")
    assert len(set(np.round(golden["quality"], 6))) == len(crops)  # the facts can tell the images apart
    assert dq < 1e-5 and df < 1e-5


def _card(name: str, units: list[int]) -> Card:
    """The real FR card with the official golden model's depth."""
    card = get_card("fr", name)
    key = "layers" if "layers" in card.data["arch"] else "units"
    data = {**card.data, "arch": {**card.data["arch"], key: units}}
    return Card(kind=card.kind, name=card.name, entry=card.entry, path=card.path, data=data)


@pytest.mark.parametrize(("fr_name", "golden_name"), [
    ("arcface", "insightface_iresnet"),
    ("adaface", "adaface_ir18"),
    ("curricularface", "curricularface_ir50"),
])
def test_official_fr_backbones_reproduced(fr_name: str, golden_name: str, tmp_path: Path) -> None:
    from bench.core.registry import resolve

    golden = np.load(GOLDEN / f"{golden_name}.npz")
    path = official_file(golden, tmp_path / "backbone.pth")
    if fr_name == "adaface":
        # AdaFace's release is a Lightning checkpoint: the backbone under "model." in "state_dict".
        state = torch.load(path, weights_only=True)
        torch.save({"state_dict": OrderedDict((f"model.{k}", v) for k, v in state.items()), "epoch": 1}, path)
    fr = resolve("fr", fr_name)(card=_card(fr_name, golden["units"].tolist()), weights=path)
    emb = fr.embed(golden["crops"])
    want = golden["embeddings"]
    rel = float(np.abs(emb - want).max() / np.abs(want).max())
    print(f"{fr_name}: max |d| {np.abs(emb - want).max():.2e} (relative to max |e| {rel:.2e})")
    assert np.abs(want[0] - want[1]).max() > 0.1 * np.abs(want).max()  # the facts tell the images apart
    assert rel < 1e-5


def test_faceqan_formula_matches_official_util_f() -> None:
    from bench.methods.faceqan import faceqan_formula

    golden = np.load(GOLDEN / "faceqan_formula.npz")
    for p, key in ((5.0, "scores_p5"), (3.0, "scores_p3")):
        got = faceqan_formula(golden["similarities"], golden["symmetry"], p)
        d = float(np.abs(got - golden[key]).max())
        print(f"faceqan formula p={p:g}: max |d| {d:.2e}")
        np.testing.assert_allclose(got, golden[key], rtol=1e-12, atol=0)


def test_serfiq_formula_matches_official_get_score() -> None:
    from bench.methods.serfiq import serfiq_score

    golden = np.load(GOLDEN / "serfiq_formula.npz")
    got = np.array([serfiq_score(e.astype(np.float64)) for e in golden["embeddings"]])
    d = float(np.abs(got - golden["raw"]).max())
    print(f"ser-fiq formula: max |d| {d:.2e}")
    np.testing.assert_allclose(got, golden["raw"], rtol=0, atol=1e-6)


def test_official_crfiqa_reproduced(tmp_path: Path) -> None:
    golden = np.load(GOLDEN / "crfiqa_s.npz")
    path = official_file(golden, tmp_path / "32572backbone.pth")
    scorer = create("method", "cr-fiqa", weights=path, variant="S")
    quality = scorer.score_batch(golden["crops"], np.arange(3), None)
    rel = float(np.abs(quality - golden["quality"]).max() / np.abs(golden["quality"]).max())
    print(f"cr-fiqa: max |dq| {np.abs(quality - golden['quality']).max():.2e} (relative {rel:.2e})")
    assert len(set(np.round(golden["quality"], 3))) == 3
    assert rel < 1e-5


def test_official_magface_reproduced(tmp_path: Path) -> None:
    golden = np.load(GOLDEN / "magface.npz")
    path = official_file(golden, tmp_path / "magface_epoch_00025.pth")
    # The training script saves the DDP model's state dict under "state_dict" (features.module.*, fc.weight).
    torch.save({"epoch": 25, "arch": "iresnet100", "state_dict": torch.load(path, weights_only=True)}, path)
    scorer = create("method", "magface", weights=path)
    quality = scorer.score_batch(golden["crops"], np.arange(3), None)
    rel = float(np.abs(quality - golden["quality"]).max() / np.abs(golden["quality"]).max())
    print(f"magface: max |dq| {np.abs(quality - golden['quality']).max():.2e} (relative {rel:.2e})")
    assert len(set(np.round(golden["quality"] / golden["quality"].max(), 4))) == 3
    assert rel < 1e-5
