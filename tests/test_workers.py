"""The one worker pool (`lossbench.workers`): its lifetime policy, checked for each of its users.

For sweeps, `reproduce --workers 2` and figure drawing: a parent killed outright (SIGKILL) or
stopped (SIGTERM) leaves no worker computing, and none writes anything afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import yaml
from conftest import ROOT, TINY
from test_faults import files_under

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux's /proc")

# an experiment that says it started, then writes a tick every 20 ms until it is stopped
ENDLESS = """
CLAIM = "never ends"
SOURCE = "a test"
EXPECTED = {}
def run(out, fast, seed):
    import os, time
    ticks = os.path.join(os.environ["TICKS"], os.path.basename(os.path.dirname(__file__)))
    while True:
        with open(ticks, "a") as f:
            f.write("x")
        time.sleep(0.02)
def judge(m):
    return []
"""

REPRODUCE = """
import sys
from pathlib import Path
from lossbench import cli, reproduce
reproduce.experiments_dir = lambda: Path(sys.argv[1])
sys.exit(cli.main(["reproduce", "--workers", "2", "--out", sys.argv[2], "--quiet"]))
"""

DRAW = """
import os, sys, time
from lossbench.viz import draw

def endless(groups, **options):
    while True:
        with open(os.path.join(os.environ["TICKS"], str(groups)), "a") as f:
            f.write("x")
        time.sleep(0.02)

draw.draw([[("a.png", endless, "a", {}), ("b.png", endless, "b", {})]], workers=2)
"""


def _children(pid: int) -> set[int]:
    """Every descendant of `pid` (from /proc)."""
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            kids = []
        found.update(kids)
        todo += kids
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _sizes(folder) -> dict:
    return {f: os.path.getsize(os.path.join(folder, f)) for f in files_under(str(folder))}


def _stop_parent(args: list[str], started, written, sig: int, **env) -> tuple[int, str]:
    """Run `python ARGS` until `started()`, send it `sig`, then check that every worker ends and
    none writes under the folder `written` afterwards; (exit code, stderr)."""
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1", **env}
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        deadline = time.time() + 120
        while not started():  # the workers are computing
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "the workers did not start"
            time.sleep(0.05)
        workers = _children(proc.pid)
        assert len(workers) >= 2
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        deadline = time.time() + 60
        while any(_alive(w) for w in workers):  # the kernel delivers the parent-death signal at once
            assert time.time() < deadline, f"workers left running: {[w for w in workers if _alive(w)]}"
            time.sleep(0.05)
        sizes = _sizes(written)
        time.sleep(0.2)  # ten ticks' time: a worker still running would have written
        assert _sizes(written) == sizes
    finally:
        proc.kill()
        proc.wait()
    return proc.returncode, err


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
@pytest.mark.slow
def test_a_killed_sweep_leaves_no_worker_running(tmp_path, sig):
    raw = {**TINY, "train": {"steps": 10_000_000, "log_every": 50}, "sweep": {"model.depth": [1, 2]}}
    config, root = tmp_path / "tiny.yaml", tmp_path / "results"
    config.write_text(yaml.safe_dump(raw))
    argv = ["-m", "lossbench", "run", str(config), "--out", str(root), "--workers", "2", "--quiet"]

    def started():  # both workers train: each has logged a row (its loop, not its set-up, is running)
        metrics = [root / f for f in files_under(str(root)) if f.endswith("metrics.jsonl")]
        return len(metrics) >= 2 and all(m.read_text().count("\n") for m in metrics)

    code, err = _stop_parent(argv, started, root, sig)
    if sig == signal.SIGTERM:  # handled like Ctrl-C: exit 130, the runs marked interrupted
        assert code == 130, err
        assert "Traceback" not in err and "interrupted" in err
        summaries = [f for f in files_under(str(root)) if f.endswith("summary.json")]
        assert summaries and all(json.load(open(root / f))["status"] == "interrupted" for f in summaries)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
@pytest.mark.slow
def test_a_killed_reproduce_leaves_no_worker_running(tmp_path, sig):
    experiments, ticks = tmp_path / "experiments", tmp_path / "ticks"
    for slug in ("one", "two"):
        (experiments / slug).mkdir(parents=True)
        (experiments / slug / "experiment.py").write_text(ENDLESS)
    ticks.mkdir()
    args = ["-c", textwrap.dedent(REPRODUCE), str(experiments), str(tmp_path / "out")]
    code, err = _stop_parent(args, lambda: len(os.listdir(ticks)) == 2, ticks, sig, TICKS=str(ticks))
    if sig == signal.SIGTERM:  # handled like Ctrl-C
        assert code == 130, err


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
@pytest.mark.slow
def test_a_killed_drawing_leaves_no_worker_running(tmp_path, sig):
    from lossbench.viz.draw import can_fork

    if not can_fork():
        pytest.skip("figures are drawn in worker processes only where forking is safe")
    ticks = tmp_path / "ticks"
    ticks.mkdir()
    _stop_parent(
        ["-c", textwrap.dedent(DRAW)], lambda: len(os.listdir(ticks)) == 2, ticks, sig, TICKS=str(ticks)
    )
