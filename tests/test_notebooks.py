"""The notebooks run top to bottom, as a learner would run them, in a copy of the repository.

Each notebook is executed by nbclient (the dev extra) in a temporary folder holding configs/ and
notebooks/, with this checkout's lossbench first on the kernel's path; any cell that raises fails the
test. The lesson configs are small, so the notebooks run at their shipped sizes.
"""

from __future__ import annotations

import glob
import os
import shutil

import pytest
from conftest import ROOT

NOTEBOOKS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))


def test_there_is_a_notebook_for_every_part_of_the_lesson_path():
    assert NOTEBOOKS == ["01_losses.ipynb", "02_gradients.ipynb", "03_likelihood.ipynb"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom(name, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    for folder in ("configs", "notebooks"):
        shutil.copytree(os.path.join(ROOT, folder), tmp_path / folder)
    monkeypatch.setenv("PYTHONPATH", ROOT)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = nbformat.read(tmp_path / "notebooks" / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path / "notebooks")}},
    )
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the notebook shows no figure"
    assert os.path.isdir(tmp_path / "results"), "runs land in the repository root's results/"
