"""Every shell command shown in the README and docs/ runs, as written, in a copy of the repository.

The ```bash blocks of each page are run in order, as one bash script with `set -e`, in a temporary
folder holding copies of configs/ and bench/ (so results land there, never in the checkout), with
this checkout's lossbench on PYTHONPATH. A plain `python -m lossbench ARGS` (no pipes, `&&` or
redirections) runs in this process, through `lossbench.cli.main(ARGS)`, the function the module and
the console script call, which spares a Python start and a torch import per command; every other
command runs in bash. Three kinds of command are not run as written, and the
page says so where it shows them:
- `pip install ...` (needs the network; CI runs `pip install -e ".[dev]"` itself) and `pytest` (the
  command that runs this test) are left out of a line, keeping the rest (`pip install -e . && X` runs X);
- a line ending in `# tested with ARGS` runs with ARGS appended (a benchmark at reduced size);
- `watch`, which serves until stopped, is started, must print its page's address, and is stopped
  with Ctrl-C (SIGINT), which must end it with exit code 130.
The ```python blocks run too (after the page's bash blocks, in the same folder), except on
extending.md, whose code belongs inside a lossbench module. docs/lessons.md is run by
tests/test_lessons.py, which also checks the answers it gives.
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

PAGES = [
    "README.md",
    *sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))),
]
RUN_ELSEWHERE = {"docs/lessons.md"}  # tests/test_lessons.py runs it and checks its answers
PYTHON_NOT_RUN = {"docs/extending.md"}  # code to paste into lossbench/components/losses.py
TESTED_WITH = re.compile(r"#.*\btested with (.+)$")
SHELL_SYNTAX = re.compile(r"[|&;<>$`]")


def blocks(page: str, lang: str) -> list[str]:
    with open(os.path.join(ROOT, page)) as f:
        return re.findall(rf"^```{lang}\n(.*?)^```", f.read(), flags=re.M | re.S)


def commands(page: str) -> list[str]:
    """The shell commands of a page's bash blocks, as this test runs them (see the module doc)."""
    out = []
    for block in blocks(page, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            reduced = TESTED_WITH.search(line)
            parts = [p.strip() for p in line.split("&&")]
            parts = [p for p in parts if p and not p.startswith("#")]
            parts = [
                p for p in parts if not p.startswith("pip install") and p.split("#")[0].strip() != "pytest"
            ]
            if not parts:
                continue
            command = " && ".join(parts)
            if reduced:
                command = command.split("#")[0].rstrip() + " " + reduced.group(1).strip()
            out.append(command)
    return out


def workspace(tmp_path) -> str:
    """A folder with copies of configs/ and bench/, where runs may write freely."""
    for name in ("configs", "bench"):
        shutil.copytree(os.path.join(ROOT, name), tmp_path / name)
    return str(tmp_path)


def run_page(page: str, cwd: str, timeout: int = 900) -> tuple[int, str]:
    """Run a page's commands in order in `cwd`, stopping at the first that fails, then its python
    blocks; returns (exit code, everything printed)."""
    from lossbench.cli import main

    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    printed = io.StringIO()
    here = os.getcwd()
    os.chdir(cwd)
    try:
        for command in commands(page):
            printed.write(f"$ {command}\n")
            words = shlex.split(command, comments=True)
            if words[:4] == ["python", "-m", "lossbench", "watch"]:
                code = _watch(words, env, printed)
            elif words[:3] == ["python", "-m", "lossbench"] and not SHELL_SYNTAX.search(
                command.split("#")[0]
            ):
                with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                    try:
                        code = main(words[3:])
                    except SystemExit as e:  # argparse's own exits
                        code = e.code
            else:
                script = re.sub(r"(^|&& )python ", rf"\1{sys.executable} ", command)
                done = subprocess.run(
                    ["bash", "-c", script], capture_output=True, text=True, timeout=timeout, env=env
                )
                printed.write(done.stdout + done.stderr)
                code = done.returncode
            if code:
                return code, printed.getvalue()
        for code in [] if page in PYTHON_NOT_RUN else blocks(page, "python"):
            done = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env
            )
            printed.write(f">>> python block\n{done.stdout}{done.stderr}")
            if done.returncode:
                return done.returncode, printed.getvalue()
    finally:
        os.chdir(here)
    return 0, printed.getvalue()


def _watch(words: list[str], env: dict, printed, wait: float = 120) -> int:
    """Start `lossbench watch`, wait for its address, stop it with SIGINT; 0 when all went as said."""
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, *words[1:]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)

    def read() -> str:
        try:
            return os.read(fd, 65536).decode(errors="replace")
        except BlockingIOError:
            return ""

    seen, deadline = "", time.monotonic() + wait
    while "http://127.0.0.1:" not in seen and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        seen += read()
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = -9
    seen += read()
    printed.write(seen)
    return 0 if "http://127.0.0.1:" in seen and code == 130 else code or 1


def runnable(page: str) -> bool:
    return bool(commands(page) or (page not in PYTHON_NOT_RUN and blocks(page, "python")))


def _sweeps_page_holds(ws: str, printed: str) -> None:
    """docs/sweeps.md's statements that hold on any machine, checked on the sweep its commands ran
    (not the one machine's depth-10 accuracies, which are chaotic)."""
    import csv

    folder = os.path.join(ws, "results", "sweep_activations")
    with open(os.path.join(folder, "runs.csv")) as f:
        runs = list(csv.DictReader(f))
    with open(os.path.join(folder, "sweep.csv")) as f:
        points = list(csv.DictReader(f))
    assert len(runs) == 27 and len(points) == 9 and {p["seeds"] for p in points} == {"3"}

    def seeds(activation, depth, key):
        found = [r[key] for r in runs if (r["model.activation"], r["model.depth"]) == (activation, depth)]
        return [float(v) for v in found if v]

    for depth, low, high in [("2", 0.1, 1), ("5", 1e-3, 0.05), ("10", 1e-6, 1e-4)]:
        assert all(low < g < high for g in seeds("sigmoid", depth, "grad_ratio")), depth
    assert all(
        0.1 < g < 5 for a in ("tanh", "relu") for d in "2 5 10".split() for g in seeds(a, d, "grad_ratio")
    )
    assert all(v < 0.65 for v in seeds("sigmoid", "10", "val_acc"))  # every seed at chance
    assert all(v >= 0.95 for a in ("tanh", "relu") for d in "25" for v in seeds(a, d, "val_acc"))
    (deep,) = [p for p in points if (p["model.activation"], p["model.depth"]) == ("sigmoid", "10")]
    assert deep["steps to val_acc>=0.9_n"] == "0"  # no depth-10 sigmoid seed reaches the target
    assert "ends best on val_acc: activation=" in printed and "95% Student-t interval" in printed
    assert "reaches val_acc>=0.9 fastest: activation=" in printed


CHECKS = {"docs/sweeps.md": _sweeps_page_holds}
"""What a page states beyond its commands running, checked on what they wrote."""


@pytest.mark.parametrize("page", [p for p in PAGES if p not in RUN_ELSEWHERE and runnable(p)])
@pytest.mark.slow
def test_every_command_on_the_page_runs(page, tmp_path):
    code, printed = run_page(page, workspace(tmp_path))
    assert code == 0, f"{page}: a command failed\n{printed[-6000:]}"
    if page in CHECKS:
        CHECKS[page](str(tmp_path), printed)


def test_the_readme_shows_the_set_up_and_test_commands_as_ci_runs_them():
    readme = "\n".join(blocks("README.md", "bash"))
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in readme
    assert 'pip install -e ".[dev]" && pytest' in readme
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        assert 'pip install -e ".[dev]" && pytest' in f.read()


def test_pages_link_only_inside_the_repository():
    for page in [*PAGES, *glob.glob("configs/*.yaml", root_dir=ROOT)]:
        with open(os.path.join(ROOT, page)) as f:
            text = f.read()
        assert "SCIENCE.md" not in text and "shared/" not in text, page
        for target in re.findall(r"\]\(([^)#]*)(?:#[^)]*)?\)", text):
            if not target:
                continue
            assert not re.match(r"[a-z]+://", target), f"{page} links outside the repository: {target}"
            path = os.path.normpath(os.path.join(ROOT, os.path.dirname(page), target))
            assert os.path.exists(path), f"{page} links to {target}, which does not exist"


def test_commands_are_taken_as_the_module_doc_says():
    assert commands("README.md")[:3] == [
        "python -m lossbench run configs/quickstart.yaml",  # pip install -e . && ... keeps the run
        "python -m lossbench run configs/five_losses.yaml",
        "python -m lossbench plot results/five_losses",
    ]
    assert "python bench/bench_engine.py --repeats 2" in commands("docs/performance.md")
