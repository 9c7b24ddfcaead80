"""Cards are complete and consistent; the registry is lazy and strict."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.core import cards, paths, registry
from bench.core.errors import RegistryError


@pytest.mark.parametrize("kind", ["method", "dataset", "fr"])
def test_every_card_resolves_to_its_registered_class(kind: str) -> None:
    for name, card in cards.load_cards(kind).items():
        cls = registry.resolve(kind, name)
        assert cls.registered_name == name, card.path


def test_method_cards_state_orientation_explicitly() -> None:
    for card in cards.load_cards("method").values():
        assert isinstance(card.get("higher_is_better"), bool), card.path


def test_missing_higher_is_better_is_rejected(tmp_path, monkeypatch) -> None:
    (tmp_path / "bad.toml").write_text('name = "bad"\nentry = "x:Y"\nversion = "1"\ndescription = "d"\n')
    monkeypatch.setitem(cards._FOLDERS, "method", tmp_path)
    cards.load_cards.cache_clear()
    try:
        with pytest.raises(RegistryError, match="higher_is_better"):
            cards.load_cards("method")
    finally:
        cards.load_cards.cache_clear()


def test_unknown_name_suggests_close_match() -> None:
    with pytest.raises(RegistryError, match="did you mean random"):
        cards.get_card("method", "randon")


def test_double_registration_is_an_error() -> None:
    @registry.register_method("__test_dup")
    class A:  # noqa: D401 - test stub
        pass

    with pytest.raises(RegistryError, match="registered twice"):
        @registry.register_method("__test_dup")
        class B:
            pass


def test_list_and_report_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from bench.cli import main\n"
        "for what in ('methods', 'datasets', 'fr'):\n"
        "    main(['list', what])\n"
        "assert 'torch' not in sys.modules, 'bench list imported torch'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=paths.REPO_ROOT)
    assert out.returncode == 0, out.stderr
    assert "random" in out.stdout and "synthetic" in out.stdout


def test_only_bench_is_a_top_level_package() -> None:
    packages = [p.name for p in paths.REPO_ROOT.iterdir() if (p / "__init__.py").exists()]
    assert packages == ["bench"]


def test_listing_extra_cards_imports_none_of_their_modules(tmp_path) -> None:
    (tmp_path / "methods").mkdir()
    (tmp_path / "heavy_mod.py").write_text("import torch\nraise SystemExit('imported')\n")
    (tmp_path / "methods" / "heavy.toml").write_text(
        'name = "heavy"\nentry = "heavy_mod:Heavy"\nversion = "1"\nhigher_is_better = true\ndescription = "d"\n')
    code = (
        "import sys\n"
        "from bench.cli import main\n"
        f"assert main(['--cards', {str(tmp_path)!r}, 'list', 'methods']) == 0\n"
        "assert 'torch' not in sys.modules and 'heavy_mod' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=paths.REPO_ROOT)
    assert out.returncode == 0, out.stderr
    assert "heavy" in out.stdout and "random" in out.stdout
