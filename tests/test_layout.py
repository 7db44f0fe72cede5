"""The layout is the architecture: every package folder is a declared package, nothing else is."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = {
    "core": "logwarden.core",
    "grpc_server": "logwarden.grpc_server",
    "protos": "logwarden.protos",
    "integrations": "logwarden.integrations",
}


def _declared() -> set[str]:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {name: folder for folder, name in TOP.items()}
    return set(setuptools["packages"])


def test_every_package_folder_is_listed_in_pyproject():
    found = set()
    for folder, name in TOP.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            if "__pycache__" in init.parts or "node_modules" in init.parts:
                continue
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]))
    assert found == _declared()


def test_plugins_is_not_a_python_package():
    assert not (ROOT / "plugins" / "__init__.py").exists()
