"""The architecture, checked, so CI (which runs `pytest`) fails when it breaks: imports point down
the layers (import-linter's contract in pyproject.toml: no import circle can come back), every public
function has type hints, and mypy passes on the package (its settings are in pyproject.toml)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT


def _tool(name: str) -> str:
    """The console script installed beside this Python (the dev extra), else the one on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), name)
    found = here if os.path.exists(here) else shutil.which(name)
    assert found, f"{name} is not installed: pip install -e '.[dev]'"
    return found


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def test_imports_point_down_the_layers():
    done = _run(_tool("lint-imports"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout


def _unannotated(path: str) -> list[str]:
    """Public functions and methods (no leading underscore) of one file missing a hint."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    missing = []

    def visit(body: list, owner: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                visit(node.body, f"{node.name}.")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
                a = node.args
                params = [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, [a.vararg, a.kwarg])]
                bare = [p.arg for p in params if p.annotation is None and p.arg not in ("self", "cls")]
                if bare or node.returns is None:
                    what = ", ".join(bare) + (" and" if bare and node.returns is None else "")
                    what += " the return" if node.returns is None else ""
                    missing.append(f"{os.path.relpath(path, ROOT)}:{node.lineno} {owner}{node.name}: {what}")

    visit(tree.body, "")
    return missing


def test_every_public_function_has_type_hints():
    files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(ROOT, "lossbench")) for f in fs]
    missing = [m for f in sorted(files) if f.endswith(".py") for m in _unannotated(f)]
    assert not missing, "add type hints:\n" + "\n".join(missing)


@pytest.mark.slow
def test_mypy_passes():
    done = _run(sys.executable, "-m", "mypy", "lossbench")
    assert done.returncode == 0, done.stdout + done.stderr
