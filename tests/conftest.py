"""Shared test helpers: run the CLI as a user would, and a tiny config that trains in a blink."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

torch.set_num_threads(1)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """A whole-suite run (`pytest`, `pytest -m "not slow"`, a folder) spreads the tests over one
    worker per core (pytest-xdist) unless `-n` says otherwise; naming test files runs them here, in
    one process, which is quicker for a few tests. Tests that share a module-scoped fixture carry
    an `xdist_group` mark, so the fixture is built once, on one worker."""
    option = config.option
    if (
        hasattr(config, "workerinput")
        or not hasattr(option, "numprocesses")
        or option.numprocesses is not None
    ):
        return
    if any(os.path.isfile(arg.split("::")[0]) for arg in config.args) or option.collectonly:
        return
    option.numprocesses = "auto"
    if option.dist == "no":
        option.dist = "loadgroup"


def pytest_collection_modifyitems(config, items):
    """The slow tests first, so that with several workers the long ones do not end the run alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def run_cli(*args, cwd=None, timeout=300, env=None):
    """Run `python -m lossbench ARGS`; returns the CompletedProcess (text)."""
    full_env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "lossbench", *map(str, args)],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


TINY = {
    "name": "tiny",
    "data": {"name": "moons", "n_samples": 120, "noise": 0.1},
    "model": {"depth": 2, "width": 8, "activation": "tanh"},
    "loss": {"name": "bce"},
    "optim": {"name": "sgd", "lr": 0.1},
    "train": {"epochs": 3, "batch_size": 32, "log_every": 2},
}


@pytest.fixture
def tiny():
    """A fresh copy of a tiny valid config mapping."""
    import copy

    return copy.deepcopy(TINY)


@pytest.fixture
def write_config(tmp_path):
    """Write a mapping (or text) as a YAML file in tmp_path; returns its path."""
    import yaml

    def write(content, name="config.yaml"):
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
        return str(path)

    return write
