"""One config, one computation: a run's bits do not depend on how it was run.

A config trained alone (`execute`), as a member of a sweep, stacked with any stack-mates (other
seeds, other learning rates, in any order), with one or two workers, or resumed after a kill, gives
the same metrics rows, summary, weights and picture data, bit for bit. The config here is chaotic
(ReLU, 10 hidden layers, SGD with momentum 0.9): a last-bit difference anywhere grows into a
different run within a few epochs, so any dependence on the stack would show. The plain lesson
loop (`train.engine: plain`) is another computation, equal to rounding only: it has its own run id.
"""

from __future__ import annotations

import copy
import os
import signal

import numpy as np
import pytest
import torch
import yaml
from test_reproducible import assert_identical, weights

from lossbench.cli import main
from lossbench.config.validate import build
from lossbench.runs.runner import execute
from lossbench.runs.store import load_run
from lossbench.runs.sweep import run_configs

CHAOTIC = {
    "name": "chaotic",
    "data": {"name": "moons", "n_samples": 160, "noise": 0.1},
    "model": {"depth": 10, "width": 16, "activation": "relu", "init": "kaiming_uniform"},
    "loss": "bce",
    "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
    "train": {"epochs": 4, "batch_size": 32, "log_every": 3},
}


def member(dtype: str = "float32", seed: int = 0, **optim):
    raw = copy.deepcopy(CHAOTIC)
    raw["dtype"], raw["seed"] = dtype, seed
    raw["optim"].update(optim)
    return build(raw)


pytestmark = pytest.mark.xdist_group("one_computation")  # one module-scoped fixture, built once


@pytest.fixture(scope="module", params=["float32", "float64"])
def alone(request, tmp_path_factory):
    """Seeds 0-2 of the chaotic config, each run alone: {seed: folder}, and the dtype."""
    root = str(tmp_path_factory.mktemp(f"alone-{request.param}"))
    return {s: execute(member(request.param, s), root)[1] for s in range(3)}, request.param


def same_as_alone(alone, results) -> int:
    """Every result of a seed-0..2 member at lr 0.1 equals its run alone; returns how many there were."""
    folders, dtype = alone
    checked = 0
    for summary, folder in results:
        cfg = load_run(folder).config
        if cfg["optim"]["lr"] == 0.1 and cfg["seed"] in folders:
            assert os.path.basename(folder) == os.path.basename(folders[cfg["seed"]])
            assert summary["engine"] == "stacked"
            assert_identical(folders[cfg["seed"]], folder)
            checked += 1
    return checked


STACKS = {
    "a sweep of the 3 seeds": [(s, 0.1) for s in range(3)],
    "2 seeds, the second first": [(1, 0.1), (0, 0.1)],
    "5 seeds": [(s, 0.1) for s in range(5)],
    "mixed learning rates": [(0, 0.3), (0, 0.1), (1, 0.03), (1, 0.1), (2, 0.1), (2, 0.3)],
}


@pytest.mark.parametrize("stack", list(STACKS))
def test_a_member_is_its_run_alone_in_any_stack(alone, stack, tmp_path):
    cfgs = [member(alone[1], s, lr=lr) for s, lr in STACKS[stack]]
    results = run_configs(cfgs, str(tmp_path), workers=1)
    assert same_as_alone(alone, results) == sum(lr == 0.1 and s < 3 for s, lr in STACKS[stack])


@pytest.mark.slow
def test_two_workers_split_a_stack_and_change_nothing(alone, tmp_path):
    """8 seeds on 2 workers: two stacks of 4 in two processes (`plan_groups` splits a stack to
    keep both workers busy), each member equal to its run alone."""
    cfgs = [member(alone[1], s) for s in range(8)]
    assert same_as_alone(alone, run_configs(cfgs, str(tmp_path), workers=2)) == 3


def test_a_sweep_killed_then_resumed_changes_nothing(alone, tmp_path):
    """Killed (SIGKILL) as it writes its second member, then run again: the first member is
    reused, the others are trained again in a smaller stack, and every one equals its run alone."""
    from lossbench.runs import store

    cfgs = [member(alone[1], s) for s in range(5)]
    root = str(tmp_path)
    pid = os.fork()
    if pid == 0:  # the child: killed at its second finished member, never back into pytest
        finish, count = store.RunWriter.finish, [0]

        def finish_then_die(self, *args, **kwargs):
            count[0] += 1
            if count[0] == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return finish(self, *args, **kwargs)

        store.RunWriter.finish = finish_then_die
        try:
            run_configs(cfgs, root, workers=1)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert sum(store.is_finished(store.run_dir(root, c)) for c in cfgs) == 1
    assert same_as_alone(alone, run_configs(cfgs, root, workers=1)) == 3


@pytest.mark.parametrize(
    "optim",
    [
        {"name": "adam", "betas": [0.8, 0.99]},
        {"name": "adamw", "weight_decay": 0.05},
        {"name": "rmsprop", "momentum": 0.5},
        {"name": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
    ],
    ids=lambda o: o["name"],
)
def test_other_optimizers_mixed_rates(optim, tmp_path):
    """Each registered optimizer, stack-mates at three rates (and a schedule): a member alone
    and stacked are the same run."""
    rates = [0.003, 0.01, 0.03] if optim["name"] != "sgd" else [0.03, 0.1, 0.3]

    def cfg(seed, lr):
        raw = copy.deepcopy(CHAOTIC)
        raw["seed"], raw["optim"] = seed, {**optim, "lr": lr, "schedule": "cosine"}
        raw["model"]["depth"] = 4
        return build(raw)

    _, single = execute(cfg(1, rates[1]), str(tmp_path / "alone"))[:2]
    mates = [cfg(s, lr) for lr in rates for s in (0, 1)]
    results = run_configs(mates, str(tmp_path / "stack"), workers=1)
    (stacked,) = [f for _, f in results if os.path.basename(f) == os.path.basename(single)]
    assert_identical(single, stacked)
    others = [f for _, f in results if f != stacked]
    assert not any(
        torch.equal(weights(single)["layers.0.weight"], weights(f)["layers.0.weight"]) for f in others
    )


def test_the_plain_loop_is_another_run(tmp_path, capsys):
    """`train.engine: plain` (the lesson loop, `--no-batch`) has its own run id and says so in its
    summary; on a well-conditioned config it agrees with the default engine to rounding."""
    raw = copy.deepcopy(CHAOTIC)
    raw["model"].update(depth=2, activation="tanh")
    default = build(raw)
    raw["train"]["engine"] = "plain"
    plain = build(raw)
    s_default, f_default, _ = execute(default, str(tmp_path))
    s_plain, f_plain, _ = execute(plain, str(tmp_path))
    assert os.path.basename(f_default) != os.path.basename(f_plain)
    assert (s_default["engine"], s_plain["engine"]) == ("stacked", "plain")
    assert "engine" not in default.to_dict()["train"] and plain.to_dict()["train"]["engine"] == "plain"
    a, b = load_run(f_default).metrics, load_run(f_plain).metrics
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
    np.testing.assert_allclose(s_default["final_val_loss"], s_plain["final_val_loss"], rtol=1e-5)
    assert not np.array_equal(a["grad_w"], b["grad_w"])  # another computation, not another name

    default_raw = copy.deepcopy(raw)
    del default_raw["train"]["engine"]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(default_raw))
    for flags, folder in ((["--no-batch"], f_plain), ([], f_default)):  # `run --no-batch`: the plain loop
        assert main(["run", str(path), *flags, "--out", str(tmp_path), "--quiet"]) == 0
        assert f"reused the finished run in {folder}" in capsys.readouterr().out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_layer_computes_each_member_alike_at_any_stack_size(dtype):
    """`affine` (forward and backward) gives member 0 the same bits in stacks of 1, 2 and 3, at
    the shapes of the shipped configs and around them: 1 to 64 inputs, 1 to 32 outputs, batches
    of 1 to 1000 (a stack of one where in or out is 1 takes the other BLAS path unless
    computed as a batch of two)."""
    import itertools

    from lossbench.engine.stacked import affine

    def member_0(tensors, grad, k):
        xs, ws, bs = (t[:k].clone().requires_grad_() for t in tensors)
        z = affine(bs, xs, ws)
        z.backward(grad[:k])
        return [t[0] for t in (z.detach(), xs.grad, ws.grad, bs.grad)]

    g = torch.Generator().manual_seed(0)
    shapes = itertools.product([1, 2, 3, 16, 30, 64], [1, 2, 3, 10, 16, 32], [1, 5, 32, 200, 1000])
    for n_in, n_out, batch in shapes:
        tensors = [
            torch.randn(3, *shape, generator=g, dtype=dtype)
            for shape in [(batch, n_in), (n_in, n_out), (1, n_out)]
        ]
        grad = torch.randn(3, batch, n_out, generator=g, dtype=dtype)
        three = member_0(tensors, grad, 3)
        for k in (1, 2):
            for name, a, c in zip(["z", "grad x", "grad w", "grad b"], three, member_0(tensors, grad, k)):
                assert torch.equal(a, c), (n_in, n_out, batch, k, name)
