"""Atomic file writes: a crash or a bad input never leaves a half-written output behind."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


def _umask() -> int:
    """The process umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    The temporary file lives in the same directory so the final ``os.replace`` is atomic.
    On any exception the temporary file is removed and ``target`` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates the file private (0600); outputs get the mode any writer gives them.
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    except OSError as exc:
        if exc.filename is not None:
            raise
        # A failed write (a full disk) names no file: name the output it was for.
        raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def append_text(target: str | os.PathLike[str], text: str, header: str | None = None,
                migrate: Callable[[str], str] | None = None) -> None:
    """Append ``text`` to ``target`` by rewriting it atomically (header written if new).

    Rewriting keeps earlier rows intact even when the process dies mid-write. An exclusive lock
    on a sidecar file serialises the read-and-rewrite, so two runs appending to one results folder
    at once keep both their rows (without it, the later rename drops the earlier run's rows).
    ``migrate`` brings an existing file's text to the format ``text`` is in, under the same lock.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.parent / f".{target.name}.lock"):
        old = target.read_text(encoding="utf-8") if target.exists() else (header or "")
        if migrate is not None:
            old = migrate(old)
        atomic_write_text(target, old + text)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str], shared: bool = False) -> Iterator[None]:
    """Hold a lock on the lock file ``path`` (created if missing) for the block: exclusive, or
    ``shared`` with other shared holders (writers that never touch each other's files).

    Writers of one cache or score file take the same lock, so two processes never make, extend
    or merge it at once. The lock is advisory and dies with its process: a killed writer never
    leaves it held.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
