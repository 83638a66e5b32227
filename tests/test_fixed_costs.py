"""Fixed costs cut at the root (issue 13), checked by what they do, never by timing.

Timings live in bench/bench_loop.py; here: validating or reusing a run imports no `torch._dynamo`,
and the optimizer checks that avoid it refuse exactly what torch.optim refuses.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

from lossbench.components.optim import check_arguments, optimizers


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
        ("sgd", {"lr": -1.0}),
        ("sgd", {"lr": 0.1, "nesterov": True}),
        ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "dampening": 0.5}),
        ("sgd", {"weight_decay": -0.1}),
        ("adam", {"betas": [0.9, 0.999]}),
        ("adam", {"betas": [0.9, 1.5]}),
        ("adam", {"eps": -1.0}),
        ("adamw", {"weight_decay": -1.0}),
        ("rmsprop", {"alpha": -0.5}),
        ("rmsprop", {"momentum": -0.5}),
    ],
)
def test_optimizer_checks_refuse_what_torch_refuses(name, kwargs):
    """Reference: the optimizer built for real on a parameter; same error (or none) and message."""
    try:
        optimizers[name].fn([torch.zeros(1, requires_grad=True)], **kwargs)
        expected = None
    except ValueError as e:
        expected = str(e)
    try:
        check_arguments(name, kwargs)
        got = None
    except ValueError as e:
        got = str(e)
    assert got == expected


def _modules_after(*argv):
    code = (
        "import sys\n"
        "from lossbench.cli import main\n"
        f"code = main({list(argv)!r})\n"
        "print('dynamo' if 'torch._dynamo' in sys.modules else 'no dynamo', code)\n"
    )
    env = {**os.environ, "PYTHONPATH": ROOT}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_validate_and_reuse_import_no_dynamo(tmp_path, write_config, tiny):
    config = write_config(tiny)
    assert _modules_after("validate", config) == "no dynamo 0"
    tiny["sweep"] = {"seeds": 3}
    assert _modules_after("validate", write_config(tiny, "sweep.yaml")) == "no dynamo 0"
    out = str(tmp_path / "results")
    assert _modules_after("run", config, "--out", out, "--quiet") == "dynamo 0"  # torch.optim's step
    assert _modules_after("run", config, "--out", out, "--quiet") == "no dynamo 0"  # reused
