"""Checkpointed scoring: every finished batch of scores is an atomic part file.

Slow methods (FaceQAN about 1 s per image on a CPU, DifFIQA likewise) must not lose finished
batches to an interrupt. While a score file is being made, each batch is written to
``<scores folder>/.<file stem>.parts-<setup>/part-<first index>-<writer>.npz``; a resumed run
with the same setup loads the parts and scores only the rest; the parts are merged into the
score file and removed at the end. The setup hash is in the folder name, so parts made with
other weights, options or seed are never mixed in. Each writer (a run, a worker's score range)
names its parts with its own token, so two runs scoring overlapping images at once never
replace each other's part; a merge removes only the parts it merged, never one written since.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.errors import DataError
from bench.core.io import atomic_path


@dataclass
class PartsContent:
    """What the part files of one score file hold, concatenated in part order."""

    ids: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    seconds_per_image: list[list[float]] = field(default_factory=list)  # per part
    extras: list[dict[str, Any]] = field(default_factory=list)  # per part
    paths: list[Path] = field(default_factory=list)  # the part files read


class ScoreParts:
    """The part files of one score file being made with one setup."""

    def __init__(self, score_file: Path, setup_hash: str) -> None:
        self.folder = score_file.with_name(f".{score_file.stem}.parts-{setup_hash[:16]}")
        self.writer = uuid.uuid4().hex[:8]

    def load(self) -> PartsContent:
        """Every part written so far (empty when none); an unreadable part names its file."""
        out = PartsContent()
        if not self.folder.is_dir():
            return out
        for path in sorted(self.folder.glob("part-*.npz"), key=lambda p: int(p.stem.split("-")[1])):
            try:
                with np.load(path, allow_pickle=False) as data:
                    out.ids += [str(x) for x in data["ids"]]
                    out.scores += data["scores"].astype(np.float64).tolist()
                    out.digests += [str(x) for x in data["digests"]]
                    out.seconds_per_image.append(data["seconds_per_image"].astype(np.float64).tolist())
                    out.extras.append(json.loads(str(data["extra"])))
                out.paths.append(path)
            except (OSError, KeyError, ValueError) as exc:
                raise DataError(f"{path}: unreadable score checkpoint ({exc}); delete it to recompute its batch") from None
        return out

    def write(self, first: int, ids: list[str], scores: np.ndarray, digests: list[str],
              seconds_per_image: list[float], extra: dict[str, Any]) -> None:
        """Write one batch's part atomically (``first``: its position in the images to score)."""
        with atomic_path(self.folder / f"part-{first}-{self.writer}.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, ids=np.asarray(ids, dtype=str), scores=np.asarray(scores, dtype=np.float64),
                     digests=np.asarray(digests, dtype=str), seconds_per_image=np.asarray(seconds_per_image, dtype=np.float64),
                     extra=np.asarray(json.dumps(extra, sort_keys=True, default=str)))

    def remove(self, merged: list[Path]) -> None:
        """Remove the part files ``merged`` into the score file (and the folder once it is empty);
        parts another run wrote since stay for its merge."""
        for path in merged:
            path.unlink(missing_ok=True)
        try:
            self.folder.rmdir()
        except OSError:  # not empty (another run's parts), or already gone
            pass
