"""A real two-node Ray cluster on this machine: a sweep with `--address` equals the local backend's.

`ray start --head` and a second `ray start --address` join as two nodes, each with its own CPU and
custom resource; the sweep's two stacks go to the cluster as two tasks. Both nodes are started with
`--block` in sessions of their own and stopped by killing exactly those process groups (and any
of their processes left, found by this cluster's own temporary folder): `ray stop` would also stop
every other Ray on the machine (another test's, another user's). Skipped, with Ray's own words,
where Ray cannot start.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest
import yaml
from conftest import ROOT, TINY

from lossbench.runs.store import load_run

pytestmark = pytest.mark.slow

START_TIMEOUT = 90  # seconds for a node to say it started (a busy 2-core machine takes ~10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], env: dict, log: str) -> subprocess.Popen:
    """`ray start ... --block` in a session of its own, output to `log`; returns once it started."""
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                shutil.which("ray"),
                "start",
                "--block",
                "--node-ip-address=127.0.0.1",
                "--disable-usage-stats",
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    deadline = time.time() + START_TIMEOUT
    while time.time() < deadline and proc.poll() is None:
        if "Ray runtime started" in open(log).read():
            return proc
        time.sleep(0.2)
    _stop([proc], None)
    pytest.skip("Ray cannot start a node here: " + open(log).read()[-600:].strip())


def _stop(procs: list[subprocess.Popen], marker: str | None) -> None:
    """SIGKILL each node's process group (a test cluster has nothing to save), then any process
    whose command line names this cluster's own temporary folder (a daemon that left the group)."""
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    if marker and os.path.isdir("/proc"):
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass


@pytest.mark.skipif(shutil.which("ray") is None, reason="the ray command is not installed")
def test_a_sweep_on_a_two_node_cluster_equals_the_local_backend(tmp_path):
    pytest.importorskip("ray")
    raw = {**TINY, "name": "cluster", "sweep": {"model.activation": ["relu", "tanh"], "seeds": 2}}
    config = tmp_path / "cluster.yaml"
    config.write_text(yaml.safe_dump(raw))
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="lbray-")  # short: Ray's socket paths must fit in 107 bytes
    env = {
        **os.environ,
        "PYTHONPATH": ROOT,
        "OMP_NUM_THREADS": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "disabled",  # a cluster of this machine alone: no token to share between nodes
    }
    nodes = []
    try:
        nodes.append(
            _start(
                [
                    "--head",
                    f"--port={port}",
                    "--num-cpus=1",
                    '--resources={"head_node": 1}',
                    "--include-dashboard=false",
                    f"--temp-dir={temp_dir}",
                ],
                env,
                str(tmp_path / "head.log"),
            )
        )
        nodes.append(
            _start(
                [f"--address=127.0.0.1:{port}", "--num-cpus=1", '--resources={"second_node": 1}'],
                env,
                str(tmp_path / "node.log"),
            )
        )

        def sweep(out: str, *backend: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "-m", "lossbench", "run", str(config), "--out", out, "--quiet", *backend],
                capture_output=True,
                text=True,
                env=env,
                timeout=300,
            )

        on_cluster = sweep(str(tmp_path / "ray"), "--backend", "ray", "--address", f"127.0.0.1:{port}")
        assert on_cluster.returncode == 0, on_cluster.stderr
        assert "4 runs: 0 reused, 4 computed" in on_cluster.stdout
    finally:
        _stop(nodes, temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
    local = sweep(str(tmp_path / "local"), "--workers", "1")
    assert local.returncode == 0, local.stderr

    folders = sorted(os.listdir(tmp_path / "local" / "cluster"))
    assert sorted(os.listdir(tmp_path / "ray" / "cluster")) == folders
    run_ids = [f for f in folders if os.path.isdir(tmp_path / "local" / "cluster" / f)]
    assert len(run_ids) == 4
    for run_id in run_ids:
        a = load_run(str(tmp_path / "ray" / "cluster" / run_id))
        b = load_run(str(tmp_path / "local" / "cluster" / run_id))
        assert a.summary["status"] == b.summary["status"] == "finished"
        assert set(a.metrics) == set(b.metrics)
        for key in a.metrics:
            if key != "time":
                assert (a.metrics[key] == b.metrics[key]).all() or key == "time", key
