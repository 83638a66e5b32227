"""The stacked engine records what the plain loop records, member by member.

Reference: `lossbench.engine.train.train`, the plain loop on one nn.Linear MLP with torch.optim. In float64
the two agree to rounding (1e-9 relative). Every registered component and keyword is covered by the
tests generated in `test_stacked_generated.py`; these are the mixed cases, float32 and run folders.
"""

from __future__ import annotations

import copy
import json
import math
import os

import numpy as np
import pytest
import torch

from lossbench.config.validate import build
from lossbench.engine.recording import LAYER_KEYS
from lossbench.engine.stacked import StackedOptimizer, group_key, train_stacked
from lossbench.engine.train import train
from lossbench.runs.runner import execute, run_stacked

BASE = {
    "name": "stack",
    "dtype": "float64",
    "data": {"name": "moons", "n_samples": 100},
    "model": {"depth": 2, "width": 6, "activation": "tanh"},
    "loss": "bce",
    "optim": {"name": "sgd", "lr": 0.1},
    "train": {"epochs": 3, "batch_size": 32, "log_every": 2},
}


def members(n=3, **changes):
    """n configs that differ in seed and learning rate (and init for the last one)."""
    cfgs = []
    for m in range(n):
        raw = copy.deepcopy(BASE)
        for key, value in changes.items():
            raw[key] = {**raw[key], **value} if isinstance(value, dict) and key != "loss" else value
        raw["seed"] = 5 * m + 1
        raw["optim"] = {**raw["optim"], "lr": raw["optim"]["lr"] * (1 + 0.5 * m)}
        if m == n - 1:
            raw["model"] = {**raw["model"], "init": "xavier_uniform"}
        cfgs.append(build(raw))
    return cfgs


def close(a, b, rtol, key=""):
    if isinstance(a, dict):  # a target: the seconds are the stack's, not the member's
        assert isinstance(b, dict) and list(a) == list(b), key
        for k in a:
            if k != "seconds_to":
                close(a[k], b[k], rtol, k)
    elif isinstance(a, (list, tuple)):  # (a component's default betas: a tuple)
        assert isinstance(b, type(a)) and len(a) == len(b), key
        for u, v in zip(a, b):
            close(u, v, rtol, key)
    elif a is None or isinstance(a, (bool, str)):
        assert a == b, (key, a, b)
    elif math.isnan(a):
        assert math.isnan(b), (key, a, b)
    else:
        assert b == pytest.approx(a, rel=rtol, abs=rtol * 1e-3), (key, a, b)


def assert_same_as_plain(cfgs, rtol=1e-9, layer_rtol=1e-9):
    rows = [[] for _ in cfgs]
    summaries, _, _ = train_stacked(cfgs, logs=[r.append for r in rows])
    for cfg, stacked_rows, summary in zip(cfgs, rows, summaries):
        plain_rows = []
        plain_summary, _, _ = train(cfg, log=plain_rows.append)
        assert len(stacked_rows) == len(plain_rows)
        for a, b in zip(plain_rows, stacked_rows):
            assert list(a) == list(b)  # same keys in the same order
            for key in a:
                if key != "time":
                    close(a[key], b[key], layer_rtol if key in LAYER_KEYS else rtol, key)
        for key, value in plain_summary.items():
            if key not in ("wall_time", "engine", "stack_size"):
                close(value, summary[key], layer_rtol if key.startswith("grad_ratio") else rtol, key)
    return summaries


OPTIMIZERS = [
    {"name": "sgd", "lr": 0.1},
    {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.01, "dampening": 0.1},
    {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
    {"name": "adam", "lr": 0.01, "weight_decay": 0.05, "betas": [0.8, 0.99]},
    {"name": "adamw", "lr": 0.01, "weight_decay": 0.1},
    {"name": "rmsprop", "lr": 0.005, "momentum": 0.5, "weight_decay": 0.01},
    {"name": "rmsprop", "lr": 0.005, "alpha": 0.9},
]


@pytest.mark.parametrize(
    "data, loss, activation",
    [
        ({"name": "blobs", "n_samples": 90}, "cross_entropy", "relu"),  # softmax output, class targets
        ({"name": "blobs", "n_samples": 90}, "mse", "sigmoid"),  # one-hot targets
        ({"name": "sine", "n_samples": 80}, {"name": "huber", "delta": 0.5}, "leaky_relu"),
        ({"name": "moons", "n_samples": 100}, "hinge", "relu"),
    ],
    ids=["cross_entropy", "mse-multiclass", "huber-regression", "hinge"],
)
def test_stacked_matches_plain_loop_for_tasks_and_losses(data, loss, activation):
    assert_same_as_plain(
        members(data=data, loss=loss, model={"activation": activation}, optim={"name": "sgd", "lr": 0.2})
    )


def test_stacked_matches_plain_loop_with_schedule_target_and_float32():
    cfgs = members(
        dtype="float32",
        optim={"name": "sgd", "lr": 0.3, "momentum": 0.5, "schedule": {"name": "cosine"}},
        train={"epochs": 4, "batch_size": 32, "log_every": 3, "eval_every": 6, "target_loss": 0.5},
    )
    summaries = assert_same_as_plain(cfgs, rtol=2e-4, layer_rtol=2e-4)
    assert any(s["targets"][0]["steps_to"] is not None for s in summaries)


def test_a_diverging_member_stops_alone():
    base = {"data": {"name": "sine", "n_samples": 80}, "loss": "mse", "model": {"activation": "identity"}}
    cfgs = members(**base, optim={"name": "sgd", "lr": 0.05})
    wild = copy.deepcopy(BASE) | base | {"seed": 99, "optim": {"name": "sgd", "lr": 30.0}}
    wild["model"] = {**BASE["model"], "activation": "identity"}
    cfgs.insert(1, build(wild))
    summaries = assert_same_as_plain(cfgs)
    assert [s["status"] for s in summaries] == ["finished", "diverged", "finished", "finished"]
    assert summaries[1]["diverged_step"] is not None and "final_train_loss" not in summaries[1]


@pytest.mark.parametrize("optim", OPTIMIZERS, ids=lambda o: "-".join(f"{v}" for v in o.values()))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stacked_optimizer_equals_torch_optim_per_member(optim, dtype):
    """Random gradients, members at rates in spans (a, b, b, a): each slice moves bit for bit as
    its own torch.optim, which `StackedOptimizer` promises whatever the stack-mates."""
    from lossbench.components.optim import optimizers

    g = torch.Generator().manual_seed(0)
    kwargs = {k: v for k, v in optim.items() if k != "name"}
    kwargs = {**optimizers[optim["name"]].defaults(), **kwargs}
    lrs = [kwargs["lr"] * f for f in (1.0, 0.3, 0.3, 1.0)]
    stacked = [torch.randn(4, 3, 5, generator=g, dtype=dtype, requires_grad=True)]
    singles = [torch.nn.Parameter(stacked[0][m].detach().clone()) for m in range(4)]
    opt = StackedOptimizer(optim["name"], stacked, kwargs, lrs)
    assert len(opt.optimizer.param_groups) == 3
    refs = [optimizers[optim["name"]].fn([p], **{**kwargs, "lr": lr}) for p, lr in zip(singles, lrs)]
    for step in range(5):
        grad = torch.randn(4, 3, 5, generator=g, dtype=dtype)
        stacked[0].grad = grad.clone()
        opt.step([lr * 0.9**step for lr in lrs])
        for m, (p, ref) in enumerate(zip(singles, refs)):
            p.grad = grad[m].clone()
            for group in ref.param_groups:
                group["lr"] = lrs[m] * 0.9**step
            ref.step()
    for m, p in enumerate(singles):
        assert torch.equal(stacked[0].detach()[m], p.detach()), m


def test_group_key_separates_shapes_and_joins_seeds():
    a, b, c = members()
    assert group_key(a) == group_key(b) == group_key(c)  # seed, lr and init may differ
    deeper = build({**BASE, "model": {**BASE["model"], "depth": 3}})
    other_loss = build({**BASE, "loss": "mse"})
    assert len({group_key(a), group_key(deeper), group_key(other_loss)}) == 3
    with pytest.raises(ValueError):
        train_stacked([a, deeper])


def test_stacked_run_folders_hold_what_execute_writes(tmp_path):
    """A stack's folders are the ones `execute` writes for each member alone, bit for bit (the
    default engine); the plain loop's (`train.engine: plain`) agree to rounding, in other folders."""
    from test_reproducible import assert_identical

    cfgs = members(n=2)
    stacked = run_stacked(cfgs, str(tmp_path / "stacked"))
    for cfg, (summary, folder) in zip(cfgs, stacked):
        _, alone, _ = execute(cfg, str(tmp_path / "alone"))
        assert os.path.basename(folder) == os.path.basename(alone)
        assert sorted(os.listdir(folder)) == sorted(os.listdir(alone))
        assert (
            open(os.path.join(folder, "config.yaml")).read()
            == open(os.path.join(alone, "config.yaml")).read()
        )
        assert summary == json.load(open(os.path.join(folder, "summary.json")))
        assert_identical(alone, folder)

        plain_cfg = copy.deepcopy(cfg)
        plain_cfg.train.engine = "plain"
        _, plain_folder, _ = execute(plain_cfg, str(tmp_path / "plain"))
        assert os.path.basename(plain_folder) != os.path.basename(folder)
        plain_summary = json.load(open(os.path.join(plain_folder, "summary.json")))
        assert set(plain_summary) == set(summary)
        assert (summary["engine"], plain_summary["engine"]) == ("stacked", "plain")
        close(plain_summary["final_val_loss"], summary["final_val_loss"], 1e-9)
        ours = torch.load(os.path.join(folder, "model.pt"))
        theirs = torch.load(os.path.join(plain_folder, "model.pt"))
        assert (
            list(ours)
            == list(theirs)
            == [
                "layers.0.weight",
                "layers.0.bias",
                "layers.1.weight",
                "layers.1.bias",
                "layers.2.weight",
                "layers.2.bias",
            ]
        )
        for key in theirs:
            assert ours[key].shape == theirs[key].shape
            torch.testing.assert_close(ours[key], theirs[key], rtol=1e-9, atol=1e-12)
        view, plain_view = (
            np.load(os.path.join(folder, "view.npz")),
            np.load(os.path.join(plain_folder, "view.npz")),
        )
        assert set(view.files) == set(plain_view.files)
        np.testing.assert_allclose(view["pred"], plain_view["pred"], rtol=1e-7, atol=1e-9)


def test_stacked_members_keep_their_own_targets_and_linear_fit():
    """Targets may differ between the members of one stack; a depth-0 summary holds the fitted line."""
    cfgs = members(
        data={"name": "line", "n_samples": 80},
        loss="mae",
        model={"depth": 0, "activation": "identity"},
        optim={"name": "sgd", "lr": 0.05},
    )
    cfgs[0].train.target = [{"metric": "val_mae", "value": 1.5}, {"metric": "mse", "value": 1e-9}]
    cfgs[1].train.target = [{"metric": "loss", "value": 2.0}]
    summaries = assert_same_as_plain(cfgs)
    assert [len(s["targets"]) for s in summaries] == [2, 1, 0]
    assert summaries[0]["targets"][1]["steps_to"] is None  # an mse of 1e-9 is never reached
    for s in summaries:
        assert len(s["linear"]["weight"]) == 1 and len(s["linear"]["weight"][0]) == 1
