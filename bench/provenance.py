"""What every output records about where it came from: harness version, git commit, device."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from functools import cache

from bench import __version__, resources
from bench.optional import require


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


def utc_now() -> str:
    """Current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def base_metadata(device: str) -> dict[str, str]:
    """Harness-level provenance common to every output file."""
    return {"harness_version": __version__, "git_commit": git_commit(), "created": utc_now(), "device": device_description(device)}
