"""Puente's build hook (pyproject.toml holds everything else): the wheel, and the sdist a
wheel may be built from, carry the front-end libraries the pages load, copied from
node_modules (package-lock.json, `npm ci`) when the package is built. They are never
committed, and an editable install gets none: a checkout serves them from node_modules.

Which files go where is read from the tables the serving code keeps, without importing
Puente: VENDOR_FILES in src/puente/web/mount.py (copied to puente/web/static/vendor/) and
ASSETS in src/puente/sandbox/phone.py (to puente/sandbox/static/vendor/).
"""

from __future__ import annotations

import ast
import os
import shutil
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent


def _table(module: str, name: str) -> Any:
    path = ROOT / "src" / module
    for node in ast.parse(path.read_text("utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == name for target in node.targets
        ):
            return ast.literal_eval(node.value)
    raise SystemExit(f"{path}: no {name} table to read the front-end libraries from")


def vendored() -> dict[str, str]:
    """Each file's place in the package ("puente/web/static/vendor/htmx.min.js") and in
    node_modules ("htmx.org/dist/htmx.min.js")."""
    web = _table("puente/web/mount.py", "VENDOR_FILES")
    sandbox = _table("puente/sandbox/phone.py", "ASSETS")
    files = {
        f"puente/web/static/vendor/{name}": f"{package}/{rel}"
        for name, (package, rel) in web.items()
    }
    files.update(
        {f"puente/sandbox/static/vendor/{name}": rel for name, (_env, rel) in sandbox.items()}
    )
    return files


def _source(node_modules: Path, rel: str, dest: str) -> Path:
    wanted = node_modules / rel
    # The unminified build when a package ships only that, as mount.py serves it.
    for candidate in (wanted, wanted.with_name(wanted.name.replace(".min", ""))):
        if candidate.is_file():
            return candidate
    # Built from an sdist: it carries the copies already.
    carried = ROOT / "src" / dest
    if carried.is_file():
        return carried
    raise SystemExit(
        f"{wanted} is missing: run `npm ci` in Puente's project directory before building "
        "(or set PUENTE_NODE_MODULES to a node_modules folder)"
    )


def copy_vendored(target: Path) -> None:
    """Copy the front-end libraries under `target`, the folder that holds `puente/`."""
    node_modules = Path(os.environ.get("PUENTE_NODE_MODULES") or ROOT / "node_modules")
    for dest, rel in vendored().items():
        source = _source(node_modules, rel, dest)
        out = target / dest
        if source.resolve() == out.resolve():
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, out)


class BuildPy(build_py):  # type: ignore[misc]
    def run(self) -> None:
        super().run()
        if not getattr(self, "editable_mode", False):
            copy_vendored(Path(self.build_lib))


class Sdist(sdist):  # type: ignore[misc]
    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        copy_vendored(Path(base_dir) / "src")


setup(cmdclass={"build_py": BuildPy, "sdist": Sdist})
