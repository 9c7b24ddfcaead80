"""dlib FR models: the .dat parser, the dlib150 aligner, dlib's embedding and its PyTorch port."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_data
from hypothesis import given
from hypothesis import strategies as st

from bench.core.errors import DataError, MissingWeightsError
from bench.core.registry import create
from bench.fr.dlib_dat import DatReader, parse_network, read_network
from bench.fr.dlib_model import TORCH_COMPUTE

dlib = pytest.importorskip("dlib")
frm = pytest.importorskip("face_recognition_models")
torch = pytest.importorskip("torch")

pytestmark = pytest.mark.usefixtures("one_torch_thread")
GOLDEN_IMAGES = 64

# 8 images of 4 people (2 each), so one test can also check same < different distances.
LFW_IMAGES = [
    "Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Aaron_Peirsol/Aaron_Peirsol_0002.jpg",
    "Abdullah_Gul/Abdullah_Gul_0001.jpg", "Abdullah_Gul/Abdullah_Gul_0002.jpg",
    "Adrien_Brody/Adrien_Brody_0001.jpg", "Adrien_Brody/Adrien_Brody_0002.jpg",
    "Al_Gore/Al_Gore_0001.jpg", "Al_Gore/Al_Gore_0002.jpg",
]


def pack_int(value: int) -> bytes:
    """dlib's packed integer: control byte (byte count | 0x80 if negative), then LE magnitude."""
    magnitude = abs(value)
    body = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


def pack_float(value: float) -> bytes:
    """dlib's float_details of a double: 53-bit mantissa, low zero bytes shifted off."""
    m, e = math.frexp(value)
    mantissa, exponent = int(m * (1 << 53)), e - 53
    for _ in range(8):
        if mantissa & 0xFF:
            break
        mantissa >>= 8
        exponent += 8
    return pack_int(mantissa) + pack_int(exponent)


def pack_str(text: str) -> bytes:
    return pack_int(len(text)) + text.encode()


def pack_tensor(values: np.ndarray) -> bytes:
    shape = values.shape + (1,) * (4 - values.ndim)
    return pack_int(2) + b"".join(pack_int(d) for d in shape) + values.astype("<f4").tobytes()


EMPTY_TENSOR = pack_int(2) + pack_int(0) * 4


# ---------------------------------------------------------------- primitives


@pytest.mark.parametrize(
    ("raw", "value"),
    [(b"\x01\x00", 0), (b"\x01\x02", 2), (b"\x02\x80\x12", 4736), (b"\x81\x11", -17), (b"\x02\x00\x01", 256)],
)
def test_read_int_hand_made(raw: bytes, value: int) -> None:
    r = DatReader(raw)
    assert r.read_int() == value and r.at_end()


def test_read_float_hand_made() -> None:
    # dlib's input layer mean red: mantissa 0xf59062, exponent -17.
    assert DatReader(b"\x03\x62\x90\xf5\x81\x11").read_float() == pytest.approx(122.782, abs=1e-4)
    assert DatReader(b"\x01\x10\x81\x04").read_float() == 1.0
    assert DatReader(b"\x01\x00\x01\x0b").read_float() == 0.0
    assert DatReader(b"\x01\x00\x02\x00\x7d").read_float() == math.inf  # exponent 32000
    assert math.isnan(DatReader(b"\x01\x00\x02\x02\x7d").read_float())


def test_bad_primitives_raise() -> None:
    with pytest.raises(DataError, match="control byte"):
        DatReader(b"\x00").read_int()
    with pytest.raises(DataError, match="control byte"):
        DatReader(b"\x81\x01").read_int(signed=False)
    with pytest.raises(DataError, match="ends early"):
        DatReader(b"\x02\x01", "x.dat").read_int()
    with pytest.raises(DataError, match="old ASCII"):
        DatReader(b"1.5 ").read_float()
    with pytest.raises(DataError, match="bool"):
        DatReader(b"\x01").read_bool()


@given(st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1))
def test_int_round_trip(value: int) -> None:
    assert DatReader(pack_int(value)).read_int() == value


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_round_trip(value: float) -> None:
    assert DatReader(pack_float(value)).read_float() == value


def test_tensor_is_raw_float32() -> None:
    values = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
    t = DatReader(pack_tensor(values)).read_tensor()
    assert t.shape == (2, 3, 1, 1) and np.array_equal(t[:, :, 0, 0], values)


# ---------------------------------------------------------------- network layout


def _tiny_network() -> bytes:
    """loss_metric_2 < fc_no_bias<2> < tag1 < con<1,1,1,1,1> < input_rgb_image_sized<4> >>>>."""
    con = (
        pack_str("con_4") + pack_tensor(np.array([0.5, -1.0, 2.0, 0.25], dtype=np.float32))  # 3 weights, 1 bias
        + b"".join(pack_int(v) for v in (1, 1, 1, 1, 1, 0, 0))
        + pack_int(1) + b"".join(pack_int(v) for v in (1, 3, 1, 1))
        + pack_int(1) + b"".join(pack_int(v) for v in (1, 1, 1, 1))
        + pack_float(1.0) * 3 + pack_float(0.0)
    )
    fc = (
        pack_str("fc_2") + pack_int(2) + pack_int(1) + pack_tensor(np.array([[3.0, -3.0]], dtype=np.float32))
        + pack_int(1) + b"".join(pack_int(v) for v in (1, 2, 1, 1)) + pack_int(1) + pack_int(0) * 4
        + pack_int(1) + pack_float(1.0) * 3 + pack_float(0.0)
    )
    tail = b"110" + EMPTY_TENSOR * 3
    return (
        pack_int(1) + pack_str("loss_metric_2") + pack_float(0.04) + pack_float(0.6)
        + pack_int(2) + pack_int(1) + pack_int(3)  # fc add_layer, tag1, con add_layer on the input
        + pack_str("input_rgb_image_sized") + pack_float(122.782) + pack_float(117.001) + pack_float(104.298)
        + pack_int(4) + pack_int(4)
        + con + tail + pack_int(1)  # version-3 add_layer also stores its sample expansion factor
        + fc + tail
    )


def test_parse_hand_made_network() -> None:
    net = parse_network(_tiny_network())
    assert net.wrapper_versions == [2, 1, 3]
    assert [layer.kind for layer in net.layers] == ["con_4", "fc_2"]
    assert net.loss.fields["distance_threshold"] == pytest.approx(0.6)
    assert net.input.fields["nr"] == 4
    con = net.layers[0].fields
    assert con["filters"] == (1, 3, 1, 1) and con["params"].reshape(-1).tolist() == [0.5, -1.0, 2.0, 0.25]
    assert net.layers[1].fields["params"].reshape(-1).tolist() == [3.0, -3.0]


def test_parse_rejects_truncated_and_trailing_bytes() -> None:
    data = _tiny_network()
    with pytest.raises(DataError, match="ends early"):
        parse_network(data[:-5], "cut.dat")
    with pytest.raises(DataError, match="trailing"):
        parse_network(data + b"\x01\x00")
    with pytest.raises(DataError, match="unsupported dlib layer 'bn_con2'"):
        parse_network(data.replace(pack_str("con_4"), pack_str("bn_con2")))


def test_read_real_model_file(tmp_path: Path) -> None:
    net = read_network(frm.face_recognition_model_location())
    kinds = [layer.kind for layer in net.layers]
    assert kinds.count("con_4") == 29 and kinds.count("add_prev_") == 14 and kinds[-1] == "fc_2"
    assert net.input.fields["avg_rgb"] == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    assert net.layers[-1].fields["params"].shape == (256, 128, 1, 1)
    with pytest.raises(DataError, match="not found"):
        read_network(tmp_path / "absent.dat")


# ---------------------------------------------------------------- aligner and models (real data)


@pytest.fixture(scope="module")
def chips() -> np.ndarray:
    from bench.align.dlib_chip import DlibChipAligner
    from bench.datasets.base import read_rgb

    root = shared_data("lfw", "lfw-deepfunneled")
    aligner = DlibChipAligner()
    made = [aligner.align(read_rgb(root / name), None, False) for name in LFW_IMAGES]
    assert all(detected for _, detected in made), "dlib's HOG detector should find these LFW faces"
    return np.stack([crop for crop, _ in made])


@pytest.fixture(scope="module")
def dlib_fr():
    return create("fr", "dlib")


@pytest.fixture(scope="module")
def dlib_torch_fr():
    return create("fr", "dlib-torch")


def test_aligner_chips(chips: np.ndarray) -> None:
    assert chips.shape == (len(LFW_IMAGES), 150, 150, 3) and chips.dtype == np.uint8
    assert chips.std() > 20  # real image content, not a blank fallback


def test_aligner_fallback_on_faceless_image() -> None:
    from bench.align.dlib_chip import DlibChipAligner

    crop, detected = DlibChipAligner().align(np.full((250, 250, 3), 128, np.uint8), None, False)
    assert crop.shape == (150, 150, 3) and not detected


def test_dlib_embedding(dlib_fr, chips: np.ndarray) -> None:
    e = dlib_fr.embed(chips)
    assert e.shape == (len(chips), 128) and e.dtype == np.float32
    assert np.array_equal(e, dlib_fr.embed(chips))
    # dlib's documented operating point: same person < 0.6 <= different people (Euclidean).
    d = np.linalg.norm(e[:, None] - e[None], axis=2)
    same = [d[i, i + 1] for i in range(0, len(e), 2)]
    different = [d[i, j] for i in range(len(e)) for j in range(len(e)) if i // 2 != j // 2]
    assert max(same) < 0.6 <= min(different)
    assert dlib_fr.provenance()["fr_weights_sha256"] == dlib_fr.card.get("weights")[0]["sha256"]


@pytest.fixture(scope="module")
def golden_chips() -> np.ndarray:
    """dlib150 chips of 64 LFW images (the first image of each of the first 64 people)."""
    from bench.align.dlib_chip import DlibChipAligner
    from bench.datasets.base import read_rgb

    root = shared_data("lfw", "lfw-deepfunneled")
    files = [min(person.iterdir()) for person in sorted(p for p in root.iterdir() if p.is_dir())[:GOLDEN_IMAGES]]
    aligner = DlibChipAligner()
    return np.stack([aligner.align(read_rgb(f), None, False)[0] for f in files])


def test_dlib_computes_dlibs_embeddings_through_the_port(dlib_fr, golden_chips: np.ndarray) -> None:
    """The golden test: ``dlib`` (the PyTorch port) against dlib's own compute_face_descriptor."""
    native = create("fr", "dlib-native")
    reference = native.embed(golden_chips)
    ours = dlib_fr.embed(golden_chips)
    assert ours.shape == reference.shape == (GOLDEN_IMAGES, 128) and ours.dtype == np.float32
    # Measured 5.4e-7 (float rounding of the port's convolutions); a wrong layer, weight or
    # normalisation moves elements by 1e-2 or more.
    assert np.abs(ours - reference).max() < 1e-5
    assert dlib_fr.provenance() == {**native.provenance(), "fr": "dlib", "fr_compute": TORCH_COMPUTE}


def test_dlib_and_dlib_torch_embed_the_same_numbers(dlib_fr, dlib_torch_fr, chips: np.ndarray) -> None:
    assert np.array_equal(dlib_fr.embed(chips), dlib_torch_fr.embed(chips))


def test_dlib_without_torch_is_computed_by_dlib(monkeypatch, chips: np.ndarray) -> None:
    """No torch: dlib computes, with the provenance the reference set recorded (no fr_compute)."""
    from bench.fr import dlib_model

    monkeypatch.setattr(dlib_model, "torch_installed", lambda: False)
    fallback, native = create("fr", "dlib"), create("fr", "dlib-native")
    assert np.array_equal(fallback.embed(chips), native.embed(chips))
    assert fallback.provenance() == {**native.provenance(), "fr": "dlib"}


def test_dlib_torch_gradient_and_dropout_hook(dlib_torch_fr, chips: np.ndarray) -> None:
    x = torch.from_numpy(chips[:2]).permute(0, 3, 1, 2).float().requires_grad_(True)
    out = dlib_torch_fr.forward_images(x)
    out.pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    module = dlib_torch_fr.module
    with torch.no_grad():
        features = module.embedding_input(x)
        assert features.shape == (2, 256)
        assert torch.allclose(module.fc(features), module(x), atol=1e-6)


def test_bad_crops_and_missing_weights(dlib_fr, dlib_torch_fr, tmp_path: Path) -> None:
    wrong = np.zeros((1, 112, 112, 3), np.uint8)
    for model in (dlib_fr, dlib_torch_fr):
        with pytest.raises(DataError, match="150, 150, 3"):
            model.embed(wrong)
        assert model.embed(np.zeros((0, 150, 150, 3), np.uint8)).shape == (0, 128)
    with pytest.raises(MissingWeightsError, match="dlib_face_recognition_resnet_model_v1.dat"):
        create("fr", "dlib-torch", weights=tmp_path / "nothere.dat")
    fake = tmp_path / "dlib_face_recognition_resnet_model_v1.dat"
    fake.write_bytes(b"not a model")
    with pytest.raises(DataError, match="sha256"):
        create("fr", "dlib", weights=tmp_path)
