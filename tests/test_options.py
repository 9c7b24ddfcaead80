"""Declared options, the device check, safe checkpoint loading, fold selection, weight lookup,
pairs lines and output modes (issue 10: tracebacks and smaller things)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.core import cards, paths, registry
from bench.core.cards import get_card, load_cards
from bench.core.errors import BenchError, DataError, MissingWeightsError, RegistryError
from bench.core.options import OptionError, declared, parse_table, resolve
from bench.datasets.protocol import PairProtocol

# --- options declared on cards -------------------------------------------------------------


def test_text_from_the_command_line_is_typed_by_the_declaration() -> None:
    got = resolve(get_card("method", "ser-fiq"), {"passes": "7", "dropout": "0.25", "calibrate": "TRUE"})
    assert got.values == {"passes": 7, "dropout": 0.25, "calibrate": True, "site": "last-layer-input"}
    assert [type(v) for v in got.values.values()] == [int, float, bool, str]
    assert got.non_default == {"calibrate": True, "dropout": 0.25, "passes": 7}


def test_defaults_are_filled_and_a_spelled_out_default_is_not_a_difference() -> None:
    card = get_card("method", "ser-fiq")
    assert resolve(card, {}).values == {"passes": 100, "dropout": 0.5, "calibrate": False, "site": "last-layer-input"}
    for given in ({"passes": "100"}, {"passes": 100}, {"dropout": "5e-1"}, {"calibrate": "false"}, {}):
        assert resolve(card, given).non_default == {}, given
    # Typed values from Python are taken as they are; an int is a valid float.
    assert resolve(get_card("method", "faceqan"), {"exponent": 3}).values["exponent"] == 3.0


@pytest.mark.parametrize(("card", "given", "message"), [
    (("method", "ser-fiq"), {"passes": "abc"},
     r"^--method-option passes=abc: expected an integer \(passes: stochastic forward passes m\)$"),
    (("method", "ser-fiq"), {"passes": "1.5"}, r"^--method-option passes=1\.5: expected an integer"),
    (("method", "ser-fiq"), {"passes": True}, r"passes=true: expected an integer"),
    (("method", "ser-fiq"), {"calibrate": "maybe"}, r"calibrate=maybe: expected true or false \(calibrate: "),
    (("method", "ser-fiq"), {"dropout": "nan"}, r"dropout=nan: expected a finite number"),
    (("method", "cr-fiqa"), {"variant": "M"}, r"^--method-option variant=M: expected L or S \(variant: "),
    (("fr", "onnx"), {"color": "YUV"}, r"^--fr-option color=YUV: expected RGB or BGR \(color: channel order"),
    (("method", "ser-fiq"), {"pases": "2"}, r"^--method-option pases=2: unknown option of ser-fiq; did you mean passes\?"),
    (("method", "random"), {"passes": "2"}, r"unknown option of random; known: none"),
    (("fr", "onnx"), {"colour": "BGR"}, r"^--fr-option colour=BGR: unknown option of onnx; did you mean color\?"),
])
def test_bad_keys_and_values_are_one_line_errors(card: tuple[str, str], given: dict, message: str) -> None:
    with pytest.raises(OptionError, match=message) as info:
        resolve(get_card(*card), given)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_the_flag_named_in_messages_can_be_chosen() -> None:
    with pytest.raises(OptionError, match="^--quality-fr-option x=1: "):
        resolve(get_card("fr", "onnx"), {"x": "1"}, flag="--quality-fr-option")


def test_methods_and_fr_models_read_the_resolved_values() -> None:
    from bench.methods.serfiq import SERFIQ

    method = SERFIQ(get_card("method", "ser-fiq"), passes="3", calibrate="yes")
    assert method.options == {"passes": 3, "dropout": 0.5, "calibrate": True, "site": "last-layer-input"}
    with pytest.raises(OptionError, match="pases"):
        registry.create("method", "ser-fiq", pases=2)  # silently ignored before
    with pytest.raises(OptionError, match="unknown option of synthetic"):
        registry.create("fr", "synthetic", colour="BGR")
    # Well-typed but meaningless values fail at construction, before any image is aligned.
    with pytest.raises(OptionError, match="passes=1 dropout=0.5: ser-fiq needs passes >= 2"):
        SERFIQ(get_card("method", "ser-fiq"), passes="1")
    with pytest.raises(OptionError, match="repeats=0: DifFIQA needs t >= 1 and repeats >= 1"):
        registry.create("method", "diffiqa-noflip", repeats="0")
    assert registry.create("method", "diffiqa-noflip", repeats="2").params.flip is False


def test_diffiqa_variants_are_option_defaults_of_their_cards() -> None:
    flags = {name: (declared(get_card("method", name))["flip"].default, declared(get_card("method", name))["t"].default)
             for name in ("diffiqa", "diffiqa-noflip", "diffiqa-t20")}
    assert flags == {"diffiqa": (True, 5), "diffiqa-noflip": (False, 5), "diffiqa-t20": (True, 20)}
    for card in load_cards("method").values():
        assert "params" not in card.data, f"{card.path}: [params] is not read; declare [options]"


@pytest.mark.parametrize(("table", "message"), [
    ({"variant": "L"}, r"\[options\.variant\]: expected a table with type, default and help"),
    ({"passes": {"type": "int", "default": 1}}, r"\[options\.passes\]: lacks help"),
    ({"passes": {"type": "integer", "default": 1, "help": "h"}}, r"type must be one of int, float, bool, str"),
    ({"passes": {"type": "int", "default": "100", "help": "h"}}, r"default '100' is not an integer"),
    ({"passes": {"type": "int", "default": 1, "help": "h", "min": 0}}, r"unknown field\(s\) min"),
    ({"passes": {"type": "int", "default": 1, "help": ""}}, r"help must be one non-empty line"),
    ({"v": {"type": "str", "default": "X", "help": "h", "choices": ["L", "S"]}}, r"default 'X' is not one of the choices"),
    ({"v": {"type": "str", "default": "L", "help": "h", "choices": []}}, r"choices must be a non-empty list"),
    ({"Bad-Name": {"type": "int", "default": 1, "help": "h"}}, r"option names are lower-case"),
    (["color", "mean"], r"'options' must be a table"),
])
def test_malformed_option_tables_are_rejected(table: object, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        parse_table(table, "methods/x.toml")


def test_card_validation_rejects_a_malformed_option_table(tmp_path: Path) -> None:
    card = tmp_path / "toy.toml"
    card.write_text('name = "toy"\nentry = "x:Y"\nversion = "1"\nhigher_is_better = true\ndescription = "d"\n'
                    '[options]\npasses = 100\n')
    with pytest.raises(RegistryError, match=r"toy\.toml: \[options\.passes\]: expected a table"):
        cards._parse("method", card)


def test_list_options_prints_each_entry_without_torch() -> None:
    code = ("import sys\nfrom bench.cli import main\nmain(['list', 'methods', '--options'])\nmain(['list', 'fr', '--options'])\n"
            "assert 'torch' not in sys.modules, 'bench list --options imported torch'\n")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=paths.REPO_ROOT)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    serfiq = lines[lines.index("ser-fiq") + 1 : lines.index("ser-fiq") + 4]
    assert [line.split()[:3] for line in serfiq] == [["passes", "int", "100"], ["dropout", "float", "0.5"],
                                                     ["calibrate", "bool", "false"]]
    assert "stochastic forward passes m" in serfiq[0]
    assert lines[lines.index("random") + 1].strip() == "(no options)"
    assert lines[lines.index("onnx") + 1].split()[:3] == ["color", "RGB|BGR", "RGB"]


def test_cli_keeps_option_values_as_text() -> None:
    from bench.cli import _parse_options

    got = _parse_options(["passes=100", "calibrate=true", "eps=1e-3", "variant=S"], "--method-option")
    assert got == {"passes": "100", "calibrate": "true", "eps": "1e-3", "variant": "S"}
    with pytest.raises(BenchError, match="--method-option passes: given twice"):
        _parse_options(["passes=1", "passes=2"], "--method-option")


# --- --device --------------------------------------------------------------------------------


def test_cpu_device_needs_no_torch() -> None:
    code = "import sys\nfrom bench.core.device import check_device\ncheck_device('cpu')\nassert 'torch' not in sys.modules\n"
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=paths.REPO_ROOT)
    assert out.returncode == 0, out.stderr


def test_cuda_on_a_cpu_only_torch_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from bench.core.device import check_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(BenchError, match=rf"^--device cuda: this torch \({re.escape(torch.__version__)}\) has no CUDA; use --device cpu$"):
        check_device("cuda")
    with pytest.raises(BenchError, match=r"^--device gpu: expected cpu, cuda or cuda:N$"):
        check_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(BenchError, match=r"^--device cuda:3: only 1 CUDA device\(s\) \(cuda:0 to cuda:0\)"):
        check_device("cuda:3")
    check_device("cuda:0")


# --- weight files ------------------------------------------------------------------------------


class _Mkdir:
    """Unpickling this runs os.mkdir(path): what a hostile weight file can do."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple:
        return (os.mkdir, (self.path,))


def test_random_bytes_are_not_a_checkpoint(tmp_path: Path) -> None:
    from bench.core.torch_load import load_checkpoint

    junk = tmp_path / "junk.pth"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    for trust in (False, True):
        with pytest.raises(DataError, match=rf"^{junk}: not a PyTorch checkpoint \(.+\)$"):
            load_checkpoint(junk, trust=trust)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.pth: not a PyTorch checkpoint \(empty file\)"):
        load_checkpoint(empty)


@pytest.mark.parametrize("legacy", [False, True])
def test_a_file_that_runs_code_is_refused_without_trust(tmp_path: Path, legacy: bool) -> None:
    import torch

    from bench.methods.crfiqa import CRFIQA

    marker = tmp_path / "code-ran"
    path = tmp_path / "181952backbone.pth"
    torch.save({"state_dict": {}, "payload": _Mkdir(marker)}, path, _use_new_zipfile_serialization=not legacy)
    # Before: the tensors-only refusal was followed by a full unpickling, which ran the payload.
    with pytest.raises(DataError, match=r"needs unpickling of arbitrary objects \(.*mkdir\).*--trust-weights") as info:
        CRFIQA(get_card("method", "cr-fiqa"), weights=path)
    assert not marker.exists(), "the weight file ran code without --trust-weights"
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    from bench.core.torch_load import load_checkpoint

    assert load_checkpoint(path, trust=True)["state_dict"] == {} and marker.is_dir()


def test_safe_checkpoints_load_without_trust(tmp_path: Path) -> None:
    import torch

    from bench.core.torch_load import load_checkpoint

    path = tmp_path / "ok.pth"
    torch.save({"w": torch.arange(3), "step": 7, "info": {"a": "b"}}, path)
    data = load_checkpoint(path)
    assert data["step"] == 7 and data["w"].tolist() == [0, 1, 2]


def test_every_torch_load_goes_through_the_safe_loader() -> None:
    hits = {str(p.relative_to(paths.REPO_ROOT)) for p in (paths.REPO_ROOT / "bench").rglob("*.py")
            if "torch.load(" in p.read_text(encoding="utf-8")}
    # lightning_ckpt reads AdaFace's release with an unpickler that imports and calls nothing.
    assert hits <= {"bench/core/torch_load.py", "bench/fr/lightning_ckpt.py"} and "bench/core/torch_load.py" in hits


def test_models_accept_trust_weights() -> None:
    assert registry.create("method", "random", trust_weights=True).trust_weights is True
    assert registry.create("fr", "synthetic", trust_weights=True).trust_weights is True


def test_missing_fr_weights_name_the_fr_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.core.weights import resolve_weights

    monkeypatch.delenv("BENCH_WEIGHTS", raising=False)
    with pytest.raises(MissingWeightsError, match=r"pass --fr-weights ") as info:
        resolve_weights(get_card("fr", "arcface"))
    assert "--weights" not in str(info.value).replace("--fr-weights", "")
    with pytest.raises(MissingWeightsError, match=r"pass --weights "):
        resolve_weights(get_card("method", "cr-fiqa"))


@pytest.mark.parametrize("layout", ["relative", "basename"])
def test_a_weights_folder_resolves_alike_given_or_from_the_environment(tmp_path: Path, layout: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.core.weights import resolve_weights

    card = get_card("fr", "arcface")
    name = card.get("weights")[0]["file"]
    assert "/" in name  # the card names a relative path, e.g. ms1mv3_arcface_r100_fp16/backbone.pth
    target = tmp_path / (name if layout == "relative" else Path(name).name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"x")
    assert resolve_weights(card, tmp_path) == target
    monkeypatch.setenv("BENCH_WEIGHTS", str(tmp_path))
    assert resolve_weights(card) == target


# --- folds, pairs lines, output modes -------------------------------------------------------------


def _ten_fold_protocol() -> PairProtocol:
    fold = np.repeat(np.arange(1, 11), 2)
    return PairProtocol(np.zeros(20, int), np.ones(20, int), np.tile([True, False], 10), fold)


@pytest.mark.parametrize("folds", [[0], [11], [2, 11]])
def test_folds_outside_the_protocol_are_named(folds: list[int]) -> None:
    with pytest.raises(DataError, match=rf"^--folds {','.join(map(str, folds))}: lfw has folds 1-10$"):
        _ten_fold_protocol().select_folds(folds, name="lfw")


def test_fold_selection_and_gaps() -> None:
    p = _ten_fold_protocol()
    assert len(p.select_folds([3, 4])) == 4
    gappy = PairProtocol(p.a[:6], p.b[:6], p.mated[:6], np.array([1, 1, 2, 2, 5, 5]))
    with pytest.raises(DataError, match=r"has folds 1-2, 5$"):
        gappy.select_folds([3])
    foldless = PairProtocol(p.a, p.b, p.mated)
    with pytest.raises(DataError, match=r"^--folds 1: ijbc has no folds"):
        foldless.select_folds([1], name="ijbc")


def test_a_mated_line_with_an_extra_token_is_rejected_with_its_line() -> None:
    from bench.datasets.parsers import parse_lfw_pairs

    text = "1\t1\nAbel_Pacheco\t1\t4\t2\nAbel_Pacheco\t1\tAkhmed_Zakayev\t3\n"
    with pytest.raises(DataError, match=r"^pairs\.txt:2: expected 'name n1 n2' \(mated\).*'Abel_Pacheco\\t1\\t4\\t2'"):
        parse_lfw_pairs(text, "pairs.txt")


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_outputs_respect_the_umask(tmp_path: Path, umask: int) -> None:
    from bench.core.io import atomic_write_text

    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "out.txt", "x")
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o666 & ~umask

