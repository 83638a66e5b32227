"""The architecture, checked: imports point down the layers (import-linter's contract in
pyproject.toml), so CI, which runs `pytest`, fails when a change brings back an import circle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

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
    assert "1 kept, 0 broken" in done.stdout
