"""Progress bars on a terminal, silence elsewhere; figures drawn in parallel equal those drawn here.

A terminal is a pseudo-terminal given to the command as its stderr; no test depends on timing.
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest
from conftest import ROOT, TINY, run_cli

pytestmark = pytest.mark.xdist_group("progress")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished tiny run and a 2-seed sweep of it, in one results folder."""
    import yaml

    tmp = tmp_path_factory.mktemp("progress")
    config = tmp / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "sweep": {"seeds": 2}}))
    r = run_cli("run", config, "--out", tmp / "results", "--quiet")
    assert r.returncode == 0, r.stderr
    return tmp / "results"


def on_terminal(*args) -> tuple[int, str, str]:
    """Run `python -m lossbench ARGS` with a pseudo-terminal as stderr: (exit code, stdout, stderr)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 rows, 100 columns
    env = {**os.environ, "PYTHONPATH": ROOT, "COLUMNS": "100"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lossbench", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=slave,
        cwd=ROOT,
        env=env,
        text=True,
    )
    os.close(slave)
    err = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        err += chunk
    os.close(master)
    out = proc.stdout.read()
    proc.stdout.close()
    return proc.wait(timeout=300), out, err.decode(errors="replace")


@pytest.mark.parametrize(
    "command, word",
    [
        (["plot", "{run}", "--out", "{tmp}/f"], "plot"),
        (["compare", "{run}", "--out", "{tmp}/c"], "compare"),
        (["report", "{run}", "--out", "{tmp}/r"], "report"),
    ],
)
@pytest.mark.slow
def test_bar_on_a_terminal_only(tiny_run, tmp_path, command, word):
    args = [a.format(run=tiny_run, tmp=tmp_path) for a in command]
    code, out, err = on_terminal(*args)
    assert code == 0, err
    assert f"{word}:" in err and "figure" in err  # tqdm: "plot:  43%|####  | 3/7 [00:01<...figure/s]"
    assert os.path.exists(out.split()[0])  # the paths still go to stdout, whole


@pytest.mark.slow
def test_quiet_or_not_a_terminal_writes_no_bar(tiny_run, tmp_path):
    args = ["plot", tiny_run, "--out", tmp_path / "f"]
    code, out, err = on_terminal(*args, "--quiet")
    assert code == 0 and err == ""
    r = run_cli(*args)  # stderr a pipe: nothing there
    assert r.returncode == 0 and r.stderr == ""


@pytest.mark.slow
def test_sweep_validation_counts_grid_points(tmp_path, write_config):
    config = write_config({**TINY, "sweep": {"model.depth": [1, 2, 3], "seeds": 2}})
    code, out, err = on_terminal("validate", config)
    assert code == 0 and "valid sweep of 6 runs" in out
    assert "validate:" in err and "point" in err
    assert on_terminal("validate", config, "--quiet")[2] == ""


@pytest.mark.slow
def test_parallel_figures_equal_serial(tiny_run):
    """Reference: the same figures drawn one by one in one process, byte for byte.

    In a fresh process, where forking is cheap.
    """
    code = (
        "import sys\n"
        "from lossbench.viz import draw\n"
        "from lossbench.viz.figures import figure_jobs\n"
        "from lossbench.viz.load import group_runs, load_runs\n"
        f"groups = group_runs(load_runs([{str(tiny_run)!r}]))\n"
        "jobs = [figure_jobs(groups), figure_jobs(groups[:1])]\n"
        "assert draw.can_fork()\n"
        "serial = draw.draw(jobs, workers=1)\n"
        "parallel = draw.draw(jobs, workers=2)\n"
        "assert len(serial[0]) >= 5 and list(serial[0]) == list(parallel[0])\n"
        "print('equal' if serial == parallel else 'different')\n"
    )
    env = {**os.environ, "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "equal"
