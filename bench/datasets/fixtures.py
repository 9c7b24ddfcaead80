"""Tiny, format-exact copies of each dataset's layout, written into a folder.

They let tests (and anyone trying the CLI without the real data) exercise every loader on
disk: same file names, protocol formats and folder structure as the releases, scaled down.
Each writer returns the counts Table 1 should report for what it wrote.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np

from bench.datasets.parsers import lfw_image


def jpeg(value: int = 128, size: int = 16) -> bytes:
    """A small valid JPEG of one grey level."""
    ok, buf = cv2.imencode(".jpg", np.full((size, size, 3), value % 256, dtype=np.uint8))
    assert ok
    return buf.tobytes()


def _image(path: Path, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg(value))


def write_lfw(root: Path, folds: int = 2, per_class: int = 3, folder: str = "lfw", images: str = "lfw-deepfunneled",
              pairs_file: str = "pairs.txt") -> dict[str, int]:
    """LFW layout: 6 identities x 3 images used by pairs.txt, plus one unused identity."""
    base = root / folder
    names = [f"Person_{k:02d}" for k in range(6)]
    for k, name in enumerate(names):
        for n in (1, 2, 3):
            _image(base / images / lfw_image(name, n), 10 * k + n)
    _image(base / images / lfw_image("Solo_Person", 1))
    lines = [f"{folds}\t{per_class}"]
    for f in range(folds):
        lines += [f"{names[(f * per_class + k) % 6]}\t1\t2" for k in range(per_class)]
        lines += [f"{names[k % 6]}\t1\t{names[(k + 1) % 6]}\t3" for k in range(per_class)]
    (base / pairs_file).write_text("\n".join(lines) + "\n")
    return {"images": 19, "identities": 7, "mated": folds * per_class, "nonmated": folds * per_class}


def write_paired_lines(root: Path, folder: str, pairs_file: str, number: str = "{:04d}",
                       images: str = "aligned images") -> dict[str, int]:
    """CALFW/CPLFW layout: 12 identities x 2 images flat in ``images`` (``aligned images/``), one
    unused image; one mated pair per fold (labels 1..10) then 10 non-mated pairs (label 0)."""
    base = root / folder
    names = [f"Person_{k:02d}" for k in range(12)]

    def file(name: str, n: int) -> str:
        return f"{name}_{number.format(n)}.jpg"

    for k, name in enumerate(names):
        for n in (1, 2):
            _image(base / images / file(name, n), 10 * k + n)
    _image(base / images / file("Solo_Person", 1))
    lines = []
    for f in range(10):
        lines += [f"{file(names[f], 1)} {f + 1}", f"{file(names[f], 2)} {f + 1}"]
    for k in range(10):
        lines += [f"{file(names[k], 1)} 0", f"{file(names[k + 2], 2)} 0"]
    (base / pairs_file).write_text("\n".join(lines) + "\n")
    return {"images": 25, "identities": 13, "mated": 10, "nonmated": 10}


def write_cfp(root: Path, folds: int = 2, folder: str = "cfp") -> dict[str, int]:
    """CFP layout: 4 identities x (3 frontal + 2 profile); FP folds 01..``folds`` of 2 + 2 pairs."""
    base = root / folder / "cfp-dataset"
    f_lines, p_lines = [], []
    for ident in range(1, 5):
        for k in range(1, 4):
            _image(base / f"Data/Images/{ident:03d}/frontal/{k:02d}.jpg", ident * 10 + k)
            f_lines.append(f"{len(f_lines) + 1} ../Data/Images/{ident:03d}/frontal/{k:02d}.jpg")
        for k in range(1, 3):
            _image(base / f"Data/Images/{ident:03d}/profile/{k:02d}.jpg", ident * 20 + k)
            p_lines.append(f"{len(p_lines) + 1} ../Data/Images/{ident:03d}/profile/{k:02d}.jpg")
    proto = base / "Protocol"
    proto.mkdir(parents=True)
    (proto / "Pair_list_F.txt").write_text("\n".join(f_lines) + "\n")
    (proto / "Pair_list_P.txt").write_text("\n".join(p_lines) + "\n")
    for f in range(1, folds + 1):
        d = proto / "Split" / "FP" / f"{f:02d}"
        d.mkdir(parents=True)
        # frontal index 3*(i-1)+k, profile index 2*(i-1)+k for identity i
        (d / "same.txt").write_text(f"{3 * (f - 1) + 1},{2 * (f - 1) + 1}\n{3 * f + 2},{2 * f + 2}\n")
        (d / "diff.txt").write_text(f"{3 * (f - 1) + 1},{2 * f + 1}\n{3 * f + 2},{2 * (f - 1) + 2}\n")
    return {"images": 20, "identities": 4, "mated": 2 * folds, "nonmated": 2 * folds}


def write_bin(path: Path, n_pairs: int = 20, as_arrays: bool = False, mated_first: bool = False) -> dict[str, int]:
    """An InsightFace-style bin: ``(encoded images, issame)`` pickled with protocol 2;
    even pairs mated, or (``mated_first``) the first half mated. ``as_arrays`` stores images as
    uint8 numpy arrays (some re-exports)."""
    images = [jpeg(7 * k) for k in range(2 * n_pairs)]
    payload = [np.frombuffer(b, dtype=np.uint8) for b in images] if as_arrays else images
    issame = [k < (n_pairs + 1) // 2 if mated_first else k % 2 == 0 for k in range(n_pairs)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps((payload, issame), protocol=2))
    return {"images": 2 * n_pairs, "mated": (n_pairs + 1) // 2, "nonmated": n_pairs // 2}


ADIENCE_HEADER = "user_id\toriginal_image\tface_id\tage\tgender\tx\ty\tdx\tdy\ttilt_ang\tfiducial_yaw_angle\tfiducial_score"


ADIENCE_PREFIX = {"faces": "coarse_tilt_aligned_face", "aligned": "landmark_aligned_face"}


def write_adience(root: Path, folder: str = "adience", images: str = "faces", metadata: bool = True) -> dict[str, int]:
    """Adience layout: 5 users x 2 faces x 3 photos over the 5 fold files; 30 images, 10 identities.

    ``images`` is the release's face folder (``faces`` or ``aligned``); ``metadata=False``
    leaves the fold files out (images only).
    """
    base = root / folder
    rows: list[list[str]] = [[] for _ in range(5)]
    for user in range(5):
        uid = f"1000{user}@N0{user}"
        for face in (1, 2):
            for photo in range(3):
                original = f"{900 + 10 * user + 3 * face + photo}_abc{photo}_o.jpg"
                _image(base / images / uid / f"{ADIENCE_PREFIX[images]}.{face}.{original}", user * 30 + face * 5 + photo)
                rows[user].append(f"{uid}\t{original}\t{face}\t(25, 32)\tf\t10\t20\t100\t100\t0\t0\t50")
    for k in range(5 if metadata else 0):
        (base / f"fold_{k}_data.txt").write_text(ADIENCE_HEADER + "\n" + "\n".join(rows[k]) + "\n")
    return {"images": 30, "identities": 10}


def write_ijbc(root: Path, folder: str = "ijb-c") -> dict[str, int]:
    """IJB-C layout: 6 loose crops in 4 templates (two shared across media); 3 template pairs."""
    base = root / folder
    for k in range(1, 7):
        _image(base / "loose_crop" / f"{k}.jpg", 30 * k)
    meta = base / "meta"
    meta.mkdir(parents=True)
    (meta / "ijbc_face_tid_mid.txt").write_text("1.jpg 11 101\n2.jpg 11 102\n3.jpg 12 103\n4.jpg 13 104\n5.jpg 13 104\n6.jpg 14 105\n")
    (meta / "ijbc_template_pair_label.txt").write_text("11 12 1\n11 13 0\n13 14 0\n")
    marks = "".join(f"{k}.jpg 5 6 11 6 8 9 6 12 10 12 0.99\n" for k in range(1, 7))
    (meta / "ijbc_name_5pts_score.txt").write_text(marks)
    return {"images": 6, "templates": 4, "mated": 1, "nonmated": 2}
