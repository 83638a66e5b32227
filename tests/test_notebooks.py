"""The notebooks run top to bottom, as a learner would run them, in a copy of the repository.

Each notebook is executed by nbclient (the dev extra) in a temporary folder holding configs/ and
notebooks/, with this checkout's lossbench first on the kernel's path (`notebooks/execute.py`, which
also writes the committed, executed copies); any cell that raises fails the test, and what each cell
prints must match what is committed. The lesson configs are small, so the notebooks run at their
shipped sizes.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import re

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow

NOTEBOOKS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))


def test_there_is_a_notebook_for_every_part_of_the_lesson_path():
    assert NOTEBOOKS == ["01_losses.ipynb", "02_gradients.ipynb", "03_likelihood.ipynb"]


def _execute():
    spec = importlib.util.spec_from_file_location("execute", os.path.join(ROOT, "notebooks", "execute.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.execute


NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def printed(notebook) -> list[str]:
    """What each code cell printed (streams and plain-text results), in order."""
    out = []
    for cell in notebook.cells:
        if cell.cell_type == "code":
            text = [o.get("text", "") for o in cell.outputs if o.output_type == "stream"]
            text += [
                o["data"].get("text/plain", "") for o in cell.outputs if o.output_type == "execute_result"
            ]
            out.append("".join(text))
    return out


def same(committed: str, now: str) -> bool:
    """The same words, and numbers equal to the last digit printed (1e-6 relative: a last-bit change of
    a float32 can move a rounded digit, never more)."""
    if NUMBER.sub("#", committed) != NUMBER.sub("#", now):
        return False
    pairs = zip(NUMBER.findall(committed), NUMBER.findall(now))
    return all(
        a == b or abs(float(a) - float(b)) <= 1e-6 * max(abs(float(a)), 1.0) + _digit(a) for a, b in pairs
    )


def _digit(text: str) -> float:
    """One unit of the last printed digit."""
    mantissa = text.lower().split("e")[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    exponent = int(text.lower().split("e")[1]) if "e" in text.lower() else 0
    return 10.0 ** (exponent - decimals)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom_and_prints_what_is_committed(name, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    committed = nbformat.read(os.path.join(ROOT, "notebooks", name), as_version=4)
    notebook = _execute()(name, str(tmp_path))
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the notebook shows no figure"
    assert os.path.isdir(tmp_path / "results"), "runs land in the repository root's results/"
    # committed executed: the repository page shows the same numbers and pictures (python notebooks/execute.py)
    shown = [o for cell in committed.cells if cell.cell_type == "code" for o in cell.outputs]
    assert sum("image/png" in o.get("data", {}) for o in shown) == sum(
        "image/png" in o.get("data", {}) for o in outputs
    )
    for before, after in zip(printed(committed), printed(notebook), strict=True):
        assert same(before, after), (
            f"{name}: committed\n{before}\nnow\n{after}\n(python notebooks/execute.py)"
        )


def test_numbers_match_to_their_last_printed_digit():
    assert same("slope 2.05  loss 1e-30", "slope 2.06  loss 1.4e-30")
    assert not same("slope 2.05", "slope 2.08") and not same("val acc 0.97", "val acc 0.98 (3 seeds)")
