"""Issue 16: image strips (Fig. 6) from the crop cache, the agreement heat-map and the DifFIQA
reconstruction rows in ``bench report``.

The crop cache is made with numpy: image k is a gradient whose brightness grows with k, and
its score grows with k too, so the order of the thumbnails says whether the strip is ordered
by quality. The cache's rows are shuffled against the score files, so a strip that ignored
``image_ids.txt`` would show the wrong faces.
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from test_report import pauc_line

from bench.cli import main
from bench.core import registry
from bench.core.errors import BenchError, DataError
from bench.core.score_store import REQUIRED_METADATA, write_scores
from bench.datasets.crops import IMAGE_IDS_FILE, CropStore
from bench.report import build_report
from bench.report.figures import agreement_grid
from bench.report.frames import agreement_frame, score_frame
from bench.report.strips import LOWEST, example_gallery, strip_galleries
from bench.results.table import PAUC_COLUMNS

N = 30
CROP = 24
UNREADABLE_ID = "p00/img_00.jpg"  # the lowest-scored image has no crop (status 3): strips skip it
FALLBACK_ID = "p05/img_05.jpg"  # a no-face fallback crop is still a crop: strips show it
IMG_CROP = re.compile(r'<img class="crop" src="data:image/jpeg;base64,([^"]+)" alt="([^"]*)"')


def image_id(k: int) -> str:
    return f"p{k:02d}/img_{k:02d}.jpg"


def gradient(k: int, size: int = CROP) -> np.ndarray:
    """A horizontal gradient around brightness 10 + 8 k (mod 236; never one flat colour)."""
    ramp = np.linspace(-6, 6, size)[None, :, None]
    return np.clip((8.0 * k) % 236 + 10 + ramp + np.zeros((size, size, 3)), 0, 255).astype(np.uint8)


def _meta(method: str, fr: str, higher: bool) -> dict[str, object]:
    meta: dict[str, object] = {k: "x" for k in REQUIRED_METADATA}
    meta.update(method=method, fr=fr, dataset="lfw", higher_is_better=str(higher).lower())
    return meta


def write_cache(cache: Path, dataset: str = "lfw", ids: list[str] | None = None, domain: str = "dlib150") -> Path:
    """A crop cache of images ``ids`` (default the N ``image_id(k)``; crop k = ``gradient(k)``) in
    shuffled row order; in the default set image 0 is unreadable and image 5 a fallback crop."""
    ids = ids or [image_id(k) for k in range(N)]
    folder = cache / "crops" / f"{dataset}-0123456789abcdef"
    folder.mkdir(parents=True)
    order = np.random.default_rng(3).permutation(len(ids))  # row r holds image order[r]
    np.save(folder / f"{domain}.crops.npy", np.stack([gradient(int(k)) for k in order]))
    status = np.ones(len(ids), np.uint8)
    rows = {ids[k]: r for r, k in enumerate(order)}
    if UNREADABLE_ID in rows:
        status[rows[UNREADABLE_ID]], status[rows[FALLBACK_ID]] = 3, 2
    np.savez(folder / f"{domain}.state.npz", status=status, size=np.zeros(len(ids)), mtime_ns=np.zeros(len(ids)),
             sha256=np.zeros((len(ids), 32), np.uint8))
    (folder / IMAGE_IDS_FILE).write_text("".join(ids[k] + "\n" for k in order), encoding="utf-8")
    return folder


def write_examples(path: Path, k: int = 2, flip: bool = True) -> None:
    """A contract examples file (see the brief's examples_contract) of k tiny images."""
    names = ["x_t", "recon", "flip", "flip_x_t", "flip_recon"] if flip else ["x_t", "recon"]
    arrays = {
        "image_id": np.array([image_id(i) for i in range(k)]),
        "input": np.stack([gradient(10 + i, 16) for i in range(k)]),
        "x_t": np.stack([gradient(12 + i, 16) for i in range(k)]),
        "recon": np.stack([gradient(14 + i, 16) for i in range(k)]),
        "cos": np.array([[0.91, 0.95, 0.97, 0.88, 0.93][: len(names)]] * k, np.float32) - 0.1 * np.arange(k)[:, None],
        "cos_names": np.array(names),
        "score": np.linspace(0.8, 0.6, k),
        "meta": np.array(json.dumps({"method": "diffiqa", "t": 5, "repeats": 10, "seed": 0, "fr": "dlib",
                                     "dataset": "lfw", "weights_sha256": "x"})),
    }
    if flip:
        arrays["flip_x_t"] = np.stack([gradient(16 + i, 16) for i in range(k)])
        arrays["flip_recon"] = np.stack([gradient(18 + i, 16) for i in range(k)])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def make_visual_results(root: Path) -> tuple[Path, Path]:
    """(results folder, crop cache): DifFIQA and SER-FIQ (dlib) rank by k, Random (no FR,
    lower-is-better native scores) rank alike too, an examples file beside DifFIQA's scores."""
    results, cache = root / "results", root / "cache"
    write_cache(cache)
    ids = [image_id(k) for k in range(N)]
    k = np.arange(N, dtype=float)
    write_scores(results / "scores" / "diffiqa" / "lfw__dlib.parquet", ids, k / N, _meta("diffiqa", "dlib", True))
    write_scores(results / "scores" / "ser-fiq" / "lfw__dlib.parquet", ids, (k % 10) + k / 100, _meta("ser-fiq", "dlib", True))
    write_scores(results / "scores" / "random" / "lfw.parquet", ids, -k, _meta("random", "", False))
    write_examples(results / "scores" / "diffiqa" / "lfw__dlib.examples.npz")
    (results / "pauc.csv").write_text(",".join(PAUC_COLUMNS) + "\n" + pauc_line(0.3, "dlib", "diffiqa", "lfw", 0.5, "r1"),
                                      encoding="utf-8")
    (results / "curves").mkdir()
    pq.write_table(pa.table({"discard_fraction": [0.0, 0.5, 1.0], "fnmr": [0.1, 0.05, 0.0]}), results / "curves" / "r1.parquet")
    return results, cache


@pytest.fixture(scope="module")
def visual(tmp_path_factory) -> tuple[Path, Path]:
    return make_visual_results(tmp_path_factory.mktemp("visual"))


@pytest.fixture(scope="module")
def galleries(visual):
    results, cache = visual
    return strip_galleries(score_frame(results), cache, 8)


def _gallery(galleries, name):
    return next(g for g in galleries[0] if g.name == name)


def _k(tile) -> int:
    return int(tile.alt.split("_")[-1].split(".")[0])


def test_strip_runs_lowest_to_highest_quality(galleries):
    strip = _gallery(galleries, "strip_lfw_diffiqa")
    row = strip.rows[0].tiles
    assert len(row) == 8
    ks = [_k(t) for t in row]
    assert ks == sorted(ks) and ks[0] == 1 and ks[-1] == N - 1  # image 0 has no crop
    # The pixels are the crop of that image (rows mapped by image_ids.txt, not by position).
    assert [int(t.pixels.mean() // 8) for t in row] == [k + 1 for k in ks]
    quantiles = [float(t.lines[0].split("=")[1]) for t in row]
    assert quantiles == sorted(quantiles) and quantiles[-1] == 1.0
    assert row[0].lines == ("q = 0.03", f"{1 / N:.4g}")


def test_lowest_eight_skip_images_without_crop(galleries):
    lowest = _gallery(galleries, "strip_lfw_diffiqa").rows[1].tiles
    assert [t.alt for t in lowest] == [image_id(k) for k in range(1, LOWEST + 1)]
    assert FALLBACK_ID in [t.alt for t in lowest]
    assert lowest[0].lines[0] == f"#2 of {N}"
    # Random's native scores (-k) are lower-is-better: the same images, labelled with the native score.
    random_low = _gallery(galleries, "strip_lfw_random").rows[1].tiles
    assert [_k(t) for t in random_low] == list(range(1, LOWEST + 1))
    assert [t.lines[1] for t in random_low[:2]] == ["-1", "-2"]


def test_side_by_side_uses_diffiqa_images_and_others_quantiles(galleries):
    side = _gallery(galleries, "strip_lfw_methods")
    assert [r.label[0] for r in side.rows] == ["DifFIQA", "SER-FIQ", "random"]
    picked = [_k(t) for t in side.rows[0].tiles]
    assert picked == [_k(t) for t in _gallery(galleries, "strip_lfw_diffiqa").rows[0].tiles]
    assert all(t.pixels is None for r in side.rows[1:] for t in r.tiles)
    # Random orders exactly like DifFIQA (native -k, lower is better): same quantiles.
    assert [t.lines[0] for t in side.rows[2].tiles] == [t.lines[0] for t in side.rows[0].tiles]
    # SER-FIQ ranks by k mod 10: image 9 is among its best, image 10 among its worst.
    serfiq = dict(zip(picked, (float(t.lines[0].split("=")[1]) for t in side.rows[1].tiles), strict=True))
    assert all(q == pytest.approx(_expected_serfiq_quantile(k), abs=1e-9) for k, q in serfiq.items())


def _expected_serfiq_quantile(k: int) -> float:
    scores = [(j % 10) + j / 100 for j in range(N)]
    return round(sorted(scores).index(scores[k]) / (N - 1), 2)


def test_strip_count_option_and_bounds(visual, tmp_path, capsys):
    results, cache = visual
    assert main(["report", "--source", str(results), "--cache", str(cache), "--out", str(tmp_path / "r"),
                 "--table", "fig6", "--strip", "5"]) == 0
    html = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    first_row = html.split('id="gallery-strip_lfw_diffiqa"')[1].split("</tr>")[0]
    assert len(IMG_CROP.findall(first_row)) == 5
    assert (tmp_path / "r" / "figures" / "strip_lfw_diffiqa.jpg").is_file()
    md = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    assert "(figures/strip_lfw_diffiqa.jpg)" in md
    tex = (tmp_path / "r" / "report.tex").read_text(encoding="utf-8")
    assert "figures/strip_lfw_methods.jpg}" in tex
    with pytest.raises(BenchError, match="--strip must be between 2 and 32"):
        build_report(results, "x", 0.3, tmp_path / "bad", tables=["strips"], cache=cache, strip=1)


def test_thumbnails_are_small_decodable_and_not_flat(visual, tmp_path):
    results, cache = visual
    build_report(results, "x", 0.3, tmp_path / "r", tables=["strips", "reconstructions"], cache=cache)
    html = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    found = IMG_CROP.findall(html)
    assert len(found) == 8 + LOWEST + 2 * (8 + LOWEST) + 8 + 2 * 5  # 3 methods, side by side, 2 recon rows of 5
    for data, _ in found:
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        assert image.format == "JPEG" and image.size == (72, 72)
        assert np.asarray(image, dtype=float).std() > 1.0
    assert len(html.encode()) < 400_000


def test_no_images_leaves_every_face_out(visual, tmp_path):
    results, cache = visual
    written = build_report(results, "x", 0.3, tmp_path / "r", cache=cache, images=False)
    html = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert 'class="crop"' not in html and "image/jpeg" not in html
    assert not [p for p in written if p.name.startswith(("strip_", "recon_"))]
    assert html.count("Images left out (--no-images)") == 2
    assert (tmp_path / "r" / "figures" / "agreement_heatmap.png").is_file()  # numbers, not faces: kept


def test_report_with_images_is_byte_stable(visual, tmp_path):
    results, cache = visual
    a = build_report(results, "x", 0.3, tmp_path / "a", tables=["agreement", "strips", "reconstructions"], cache=cache)
    b = build_report(results, "x", 0.3, tmp_path / "b", tables=["agreement", "strips", "reconstructions"], cache=cache)
    names = sorted(p.relative_to(tmp_path / "a").as_posix() for p in a)
    assert names == sorted(p.relative_to(tmp_path / "b").as_posix() for p in b)
    assert {"figures/agreement_heatmap.png", "figures/strip_lfw_random.jpg", "figures/recon_diffiqa_lfw__dlib.jpg"} <= set(names)
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_missing_cache_is_one_line(visual, tmp_path):
    results, _ = visual
    build_report(results, "x", 0.3, tmp_path / "r", tables=["strips"], cache=tmp_path / "nowhere")
    md = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    html = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert ('<section id="strips" class="empty"><p class="note"><strong>Images ordered by quality:</strong> '
            "No crop cache found (give --cache DIR): no image strips.</p></section>") in html
    assert "**Images ordered by quality:** _No crop cache found (give --cache DIR): no image strips._" in md
    assert not (tmp_path / "r" / "figures").exists()


def test_cache_without_id_list_says_how_to_get_one(visual, tmp_path):
    results, _ = visual
    cache = tmp_path / "cache"
    folder = write_cache(cache)
    (folder / IMAGE_IDS_FILE).unlink()
    build_report(results, "x", 0.3, tmp_path / "r", tables=["strips"], cache=cache)
    md = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    assert "have no image\\_ids.txt" in md and "bench run" in md


def test_crop_store_names_its_rows(tmp_path):
    dataset = registry.create("dataset", "synthetic").load(tmp_path)
    store = CropStore(dataset, "native", tmp_path / "cache")
    store.ensure(np.arange(len(dataset)), progress=False)
    ids = (store.folder / IMAGE_IDS_FILE).read_text(encoding="utf-8").splitlines()
    assert ids == list(dataset.image_ids)
    # End to end: scores = crop brightness, read back through the real cache by image id.
    crops = store.get(np.arange(len(dataset)))
    bright = crops.reshape(len(crops), -1).mean(axis=1)
    results = tmp_path / "results"
    meta = _meta("oracle", "synthetic", True) | {"dataset": "synthetic"}
    write_scores(results / "scores" / "oracle" / "synthetic__synthetic.parquet", list(dataset.image_ids), bright, meta)
    (strip,), notes = strip_galleries(score_frame(results), tmp_path / "cache", 6)
    shown = [t.pixels.mean() for t in strip.rows[0].tiles]
    assert notes == [] and shown == sorted(shown) and shown[0] == bright.min() and shown[-1] == bright.max()


def test_agreement_heatmap_lower_spearman_upper_kendall(visual, tmp_path):
    results, _ = visual
    pairs = agreement_frame(score_frame(results))
    methods, grid = agreement_grid(pairs[pairs["dataset"] == "LFW"])
    assert methods == ["SER-FIQ", "DifFIQA", "random"]  # the paper's order, then the rest
    row = pairs[(pairs["method_a"] == "SER-FIQ") & (pairs["method_b"] == "DifFIQA")].iloc[0]
    assert grid[1, 0] == row["spearman"] and grid[0, 1] == row["kendall"] and row["spearman"] != row["kendall"]
    assert grid[2, 1] == pytest.approx(1.0) and grid[1, 2] == pytest.approx(1.0) and np.isnan(np.diag(grid)).all()
    build_report(results, "x", 0.3, tmp_path / "r", tables=["agreement"])
    html = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert 'id="figure-agreement_heatmap"' in html and 'id="table-agreement"' in html


def test_reconstruction_rows_show_eq7_cosines(visual, tmp_path):
    results, _ = visual
    gallery = example_gallery(results / "scores" / "diffiqa" / "lfw__dlib.examples.npz", results)
    assert gallery.name == "recon_diffiqa_lfw__dlib"
    assert [r.label for r in gallery.rows] == [(image_id(0), "score 0.8", "cos flip 0.970"),
                                               (image_id(1), "score 0.6", "cos flip 0.870")]
    assert [t.lines for t in gallery.rows[0].tiles] == [
        ("input x",), ("noised x_t", "cos 0.910"), ("reconstruction", "cos 0.950"), ("flipped x_t", "cos 0.880"),
        ("flipped reconstr.", "cos 0.930")]
    assert int(gallery.rows[1].tiles[2].pixels.mean() // 8) == 15 + 1  # recon of image 1: gradient(15)
    noflip = tmp_path / "scores" / "diffiqa-noflip" / "lfw__dlib.examples.npz"
    write_examples(noflip, k=3, flip=False)
    rows = example_gallery(noflip, tmp_path).rows
    assert len(rows) == 3 and [t.lines[0] for t in rows[0].tiles] == ["input x", "noised x_t", "reconstruction"]


def test_bad_examples_file_fails_with_one_line(tmp_path):
    path = tmp_path / "scores" / "diffiqa" / "lfw.examples.npz"
    write_examples(path)
    with np.load(path) as z:
        data = {k: z[k] for k in z.files if k != "cos"}
    np.savez(path, **data)
    with pytest.raises(DataError, match=r"lfw.examples.npz: examples file lacks cos; re-run with"):
        example_gallery(path, tmp_path)
    data["cos"] = np.zeros((2, 1), np.float32)
    np.savez(path, **data)
    with pytest.raises(DataError, match="do not match the examples contract"):
        example_gallery(path, tmp_path)


def test_published_source_has_no_faces(tmp_path):
    build_report(None, "published", 0.3, tmp_path / "r", tables=["fig6", "fig1"])
    md = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    assert "figures need a results folder" in md
