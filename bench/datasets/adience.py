"""Adience (Eidinger, Enbar, Hassner 2014) with a harness-defined verification protocol.

No public code builds DifFIQA's Adience pairs, so :func:`generate_protocol` defines them
deterministically from the five fold metadata files (rule and seed in
``protocols/adience/README.md``). The loader writes the generated list into the user's
dataset folder as ``adience_pairs.csv`` with ``adience_pairs.csv.sha256`` on first use, and
verifies that checksum on every later load. Without the fold metadata (images only) it uses
the list generated from the real metadata and shipped in ``protocols/adience/``
(``adience_pairs.csv.gz``, sha256 of the uncompressed list in ``adience_pairs.csv.sha256``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd

from bench.core.errors import DataError
from bench.core.io import atomic_write_bytes, atomic_write_text
from bench.core.registry import register_dataset
from bench.core.resources import folder as shipped_folder
from bench.datasets.base import FaceDataset
from bench.datasets.common import CardLoader, check_present, list_images
from bench.datasets.protocol import PairProtocol

SEED = 2023
N_MATED = 20_000
N_NONMATED = 20_000
FOLD_FILES = tuple(f"fold_{k}_data.txt" for k in range(5))
PAIRS_FILE = "adience_pairs.csv"
_COLUMNS = ("user_id", "original_image", "face_id")
# File name prefix of each released face folder.
_PREFIX = {"faces": "coarse_tilt_aligned_face", "aligned": "landmark_aligned_face"}


def read_metadata(metadata_dir: Path) -> pd.DataFrame:
    """All rows of ``fold_0_data.txt`` .. ``fold_4_data.txt``: columns key, identity, user_id,
    face_id, original_image, fold; one row per distinct key, sorted by key.

    key = ``<user_id>/<face_id>.<original_image>``; identity = ``<user_id>/<face_id>``.
    """
    frames = []
    for k, name in enumerate(FOLD_FILES):
        path = Path(metadata_dir) / name
        if not path.is_file():
            raise DataError(f"{path}: Adience fold metadata file not found")
        try:
            df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, engine="c")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
            raise DataError(f"{path}: cannot parse tab-separated metadata ({str(exc).strip().splitlines()[-1]})") from None
        df.columns = [str(c).strip() for c in df.columns]
        missing = [c for c in _COLUMNS if c not in df.columns]
        if missing:
            raise DataError(f"{path}:1: header lacks column(s) {', '.join(missing)}: {' '.join(df.columns)[:80]!r}")
        df = df[list(_COLUMNS)].apply(lambda s: s.str.strip())
        bad = (df == "").any(axis=1) | df["user_id"].str.contains("/", regex=False) | df["original_image"].str.contains("/", regex=False)
        bad |= df["face_id"].str.contains("/", regex=False) | df["user_id"].isin([".", ".."])
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{path}:{row + 2}: empty or unsafe user_id/original_image/face_id: {' '.join(df.iloc[row])[:80]!r}")
        df["fold"] = k
        frames.append(df)
    meta = pd.concat(frames, ignore_index=True)
    meta["identity"] = meta["user_id"] + "/" + meta["face_id"]
    meta["key"] = meta["identity"] + "." + meta["original_image"]
    meta = meta.drop_duplicates("key").sort_values("key", kind="stable").reset_index(drop=True)
    return meta[["key", "identity", "user_id", "face_id", "original_image", "fold"]]


def generate_protocol(metadata_dir: Path, n_mated: int = N_MATED, n_nonmated: int = N_NONMATED, seed: int = SEED) -> pd.DataFrame:
    """The harness's Adience pairs: columns image_a, image_b (metadata keys), mated (0/1).

    Images are the metadata rows sorted by key; identity = (user_id, face_id). Mated: all
    same-identity pairs (i < j) in index order, ``n_mated`` drawn without replacement with
    ``numpy.random.default_rng(seed)``, kept in index order. Non-mated: the same generator then
    draws uniform pairs (i, j) in batches, keeps those with different identities, orders them
    (min, max), drops repeats, and takes the first ``n_nonmated`` in draw order (then sorted).
    """
    meta = read_metadata(metadata_dir)
    ident = pd.factorize(meta["identity"])[0]
    order = np.argsort(ident, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(ident[order]) != 0])
    sizes = np.diff(np.r_[starts, len(order)])
    cand_a, cand_b = [], []
    for start, size in zip(starts, sizes):
        if size > 1:
            members = np.sort(order[start : start + size])
            i, j = np.triu_indices(size, k=1)
            cand_a.append(members[i])
            cand_b.append(members[j])
    ca = np.concatenate(cand_a) if cand_a else np.empty(0, np.int64)
    cb = np.concatenate(cand_b) if cand_b else np.empty(0, np.int64)
    if len(ca) < n_mated:
        raise DataError(f"{metadata_dir}: only {len(ca)} mated pairs possible, {n_mated} needed")
    by_index = np.lexsort((cb, ca))
    ca, cb = ca[by_index], cb[by_index]
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(ca), size=n_mated, replace=False))
    mated_a, mated_b = ca[pick], cb[pick]
    n = len(meta)
    if len(np.unique(ident)) < 2:
        raise DataError(f"{metadata_dir}: fewer than two identities, no non-mated pairs possible")
    seen: set[tuple[int, int]] = set()
    non: list[tuple[int, int]] = []
    while len(non) < n_nonmated:
        i = rng.integers(0, n, size=4 * n_nonmated)
        j = rng.integers(0, n, size=4 * n_nonmated)
        for x, y in zip(np.minimum(i, j).tolist(), np.maximum(i, j).tolist()):
            if ident[x] != ident[y] and (x, y) not in seen:
                seen.add((x, y))
                non.append((x, y))
                if len(non) == n_nonmated:
                    break
    non_ab = np.array(sorted(non), dtype=np.int64).reshape(-1, 2)
    keys = meta["key"].to_numpy()
    return pd.DataFrame({
        "image_a": np.r_[keys[mated_a], keys[non_ab[:, 0]]],
        "image_b": np.r_[keys[mated_b], keys[non_ab[:, 1]]],
        "mated": np.r_[np.ones(n_mated, np.int64), np.zeros(n_nonmated, np.int64)],
    })


def _csv_bytes(pairs: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    pairs.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue().encode("utf-8")


def _parse_pairs(data: bytes, path: Path) -> pd.DataFrame:
    try:
        pairs = pd.read_csv(io.BytesIO(data), dtype={"image_a": str, "image_b": str, "mated": np.int64}, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot parse pair list ({exc})") from None
    if not {"image_a", "image_b", "mated"} <= set(pairs.columns):
        raise DataError(f"{path}: columns image_a, image_b, mated required")
    return pairs


def _verified(data: bytes, path: Path, sha_path: Path, remedy: str) -> None:
    expected = sha_path.read_text(encoding="utf-8").split()[:1]
    if [hashlib.sha256(data).hexdigest()] != expected:
        raise DataError(f"{path}: sha256 differs from {sha_path.name} (file changed); {remedy}")


def pairs_for(folder: Path, n_mated: int = N_MATED, n_nonmated: int = N_NONMATED) -> tuple[pd.DataFrame, str]:
    """The stored pair list of ``folder`` (checksum verified), or a new one written there.

    Returns the pairs and a note on where they came from.
    """
    path, sha_path = folder / PAIRS_FILE, folder / (PAIRS_FILE + ".sha256")
    if path.is_file():
        if not sha_path.is_file():
            raise DataError(f"{sha_path}: checksum file missing; delete {path} to regenerate the pairs")
        data = path.read_bytes()
        _verified(data, path, sha_path, "delete both to regenerate")
        return _parse_pairs(data, path), f"pairs read from {path} (sha256 verified)"
    pairs = generate_protocol(folder, n_mated, n_nonmated)
    data = _csv_bytes(pairs)
    digest = hashlib.sha256(data).hexdigest()
    try:
        atomic_write_bytes(path, data)
        atomic_write_text(sha_path, f"{digest}  {PAIRS_FILE}\n")
    except OSError:
        return pairs, f"pairs generated in memory (sha256 {digest}); {folder} is not writable"
    return pairs, f"pairs generated and written to {path} (sha256 {digest})"


def shipped_pairs() -> tuple[pd.DataFrame, str]:
    """The pair list generated from the real fold metadata and shipped with the harness
    (``protocols/adience/``), checksum verified, and a note saying so."""
    folder = shipped_folder("protocols") / "adience"
    path, sha_path = folder / (PAIRS_FILE + ".gz"), folder / (PAIRS_FILE + ".sha256")
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read the shipped Adience pair list ({exc})") from None
    _verified(data, path, sha_path, "the installed package is damaged; reinstall it")
    digest = hashlib.sha256(data).hexdigest()
    return _parse_pairs(data, path), f"no fold metadata: pairs from the shipped {path.name} (sha256 {digest}, verified)"


def _split_key(key: str) -> tuple[str, str, str]:
    """``<user_id>/<face_id>.<original_image>`` -> (user_id, face_id, original_image)."""
    user, _, rest = key.partition("/")
    face, _, original = rest.partition(".")
    return user, face, original


@register_dataset("adience")
class Adience(CardLoader):
    """Pair counts are attributes so that scaled-down fixtures can use the same loader.

    With all five fold files beside the face folder the pairs come from them (generated or read
    back, see :func:`pairs_for`) and Table 1's totals count the metadata; with none, from
    :func:`shipped_pairs` and the totals count the face folder.
    """

    n_mated = N_MATED
    n_nonmated = N_NONMATED

    def load(self, root: Path) -> FaceDataset:
        found = self.find(root)
        with_metadata = any((found.folder / name).is_file() for name in FOLD_FILES)
        if with_metadata:
            meta = read_metadata(found.folder)
            pairs, note = pairs_for(found.folder, self.n_mated, self.n_nonmated)
            source = found.folder / PAIRS_FILE
        else:
            pairs, note = shipped_pairs()
            source = shipped_folder("protocols") / "adience" / (PAIRS_FILE + ".gz")
        prefix = _PREFIX.get(Path(found.inner).name, _PREFIX["faces"])

        keys = sorted(set(pairs["image_a"]) | set(pairs["image_b"]))
        if with_metadata:
            rows = meta.set_index("key").reindex(keys)
            if rows["identity"].isna().any():
                first = keys[int(np.flatnonzero(rows["identity"].isna().to_numpy())[0])]
                raise DataError(f"{source}: image {first!r} is not in the fold metadata; delete the pair list to regenerate")
            parts = list(zip(rows["user_id"], rows["face_id"], rows["original_image"]))
        else:
            parts = [_split_key(k) for k in keys]
        lookup = {k: i for i, k in enumerate(keys)}
        ids = [f"{found.inner}/{u}/{prefix}.{f}.{o}" for u, f, o in parts]
        listing = list_images(found.images)
        check_present(self.card.name, found.folder, ids, {f"{found.inner}/{p}" for p in listing})
        protocol = PairProtocol(
            a=pairs["image_a"].map(lookup).to_numpy(np.int64), b=pairs["image_b"].map(lookup).to_numpy(np.int64),
            mated=pairs["mated"].to_numpy() == 1,
        )
        identity = [f"{u}/{f}" for u, f, _ in parts]
        if with_metadata:
            n_images, n_ids = len(meta), int(meta["identity"].nunique())
        else:
            # <user_id>/<prefix>.<face_id>.<original_image>: a subject is (user_id, face_id).
            n_images = len(listing)
            n_ids = len({(p.split("/", 1)[0], p.rsplit("/", 1)[-1].split(".")[1]) for p in listing if p.count(".") >= 2})
        return FaceDataset(
            name=self.card.name, root=found.folder, image_ids=ids, protocol=protocol,
            identities=pd.factorize(np.asarray(identity, dtype=object), sort=True)[0].astype(np.int64),
            n_images_total=n_images, n_identities_total=n_ids, notes=[note],
        )
