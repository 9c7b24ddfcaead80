"""Build hook: copy the shipped top-level folders into the wheel as ``bench/_data/``.

The source tree keeps methods/, datasets/, fr/, protocols/, results/published/, reports/ (and
plans/ when present) at the top level; bench.core.resources reads them from there in a checkout or
an editable install, and from ``bench/_data/`` in a built wheel. The list of folders is
bench.core.resources.SHIPPED, read as text so that the build does not import the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _shipped() -> tuple[str, ...]:
    tree = ast.parse((ROOT / "bench" / "core" / "resources.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "SHIPPED":
            return tuple(ast.literal_eval(node.value))
    raise RuntimeError("bench/core/resources.py defines no SHIPPED tuple")


class BuildPyWithData(build_py):
    """build_py that also copies the shipped folders (skipped for editable installs)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "bench" / "_data"
        for name in _shipped():
            for src in sorted((ROOT / name).rglob("*")):
                rel = src.relative_to(ROOT)
                if not src.is_file() or "__pycache__" in rel.parts or any(p.startswith(".") for p in rel.parts):
                    continue
                dest = target / rel
                self.mkpath(str(dest.parent))
                self.copy_file(str(src), str(dest))


setup(cmdclass={"build_py": BuildPyWithData})
