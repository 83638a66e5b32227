"""Run the notebooks top to bottom, as a learner would, and keep their outputs in the files.

    python notebooks/execute.py                 # all of them, a minute or two on a 2-core CPU
    python notebooks/execute.py 01_losses.ipynb

The notebooks are committed executed, so the repository page shows their printed numbers and
pictures. Each runs in a temporary copy of configs/ and notebooks/ (its runs land in that copy's
results/, not in this checkout's), with this checkout's lossbench first on the kernel's path;
`tests/test_notebooks.py` runs them the same way and checks that what they print still matches what
is committed.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def execute(name: str, workdir: str):
    """The notebook `name` executed in a copy of configs/ and notebooks/ under `workdir`."""
    import nbclient
    import nbformat

    for folder in ("configs", "notebooks"):
        shutil.copytree(os.path.join(ROOT, folder), os.path.join(workdir, folder), dirs_exist_ok=True)
    notebook = nbformat.read(os.path.join(workdir, "notebooks", name), as_version=4)
    env = {"PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits them
    try:
        nbclient.NotebookClient(
            notebook,
            timeout=600,
            kernel_name="python3",
            resources={"metadata": {"path": os.path.join(workdir, "notebooks")}},
        ).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return notebook


def main(names: list[str]) -> int:
    import nbformat

    for name in names or sorted(n for n in os.listdir(HERE) if n.endswith(".ipynb")):
        with tempfile.TemporaryDirectory(prefix="lossbench-notebook-") as workdir:
            notebook = execute(name, workdir)
        for cell in notebook.cells:
            cell.get("metadata", {}).pop("execution", None)  # timestamps: no diff from a rerun
        nbformat.write(notebook, os.path.join(HERE, name))
        print(os.path.join(HERE, name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
