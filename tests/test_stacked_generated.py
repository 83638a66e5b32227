"""Tests generated from the registries: the stacked engine records what the plain loop records.

For every registered optimizer, schedule, loss (on every task it fits), activation and init, with
its defaults and then with each of its keywords in turn at a value other than the default, two
members (different seeds, rates and inits) are trained stacked and each one plainly, in float64;
every metrics row and the summary must agree to 1e-9. The cases are read from the registries when
the tests are collected, so a new component or a new keyword is covered without editing this file.

Reference: `lossbench.engine.train.train`, the plain loop on one nn.Linear MLP with torch.optim.
"""

from __future__ import annotations

import copy
import inspect

import pytest
from test_batched import assert_same_as_plain

from lossbench.components.activations import activations
from lossbench.components.inits import inits
from lossbench.components.losses import BINARY, MULTICLASS, REGRESSION, losses
from lossbench.components.optim import optimizers, schedules
from lossbench.components.registry import spec
from lossbench.config.validate import build
from lossbench.engine.stacked import can_stack, train_stacked
from lossbench.errors import UserError

DATA = {  # a tiny data set for each task
    REGRESSION: {"name": "sine", "n_samples": 60},
    BINARY: {"name": "moons", "n_samples": 60},
    MULTICLASS: {"name": "blobs", "n_samples": 60},
}
BASE = {
    "name": "generated",
    "dtype": "float64",
    "data": DATA[BINARY],
    "model": {"depth": 2, "width": 5, "activation": "tanh"},
    "loss": "bce",
    "optim": {"name": "sgd", "lr": 0.1},
    "train": {"epochs": 3, "batch_size": 16, "log_every": 2},
}


def other_value(default, annotation):
    """A valid value other than `default`, from its type (a string: another of its Literal choices)."""
    if isinstance(default, bool):
        return not default
    if isinstance(default, str):
        return next(c for c in spec(annotation).choices if c != default)
    if isinstance(default, int):
        return 3 if default != 3 else 2
    if isinstance(default, float):
        return 0.1 if default == 0 else default / 2
    if isinstance(default, (list, tuple)):
        return [other_value(v, None) for v in default]
    raise TypeError(f"no rule for a value other than {default!r} ({annotation}): add one to other_value")


def keyword_cases(registry, kind: str, skip=("lr",)):
    """(id, name, keyword or None) for every entry: its defaults, then each keyword changed."""
    cases = []
    for name, entry in registry.entries.items():
        cases.append(pytest.param(name, None, id=f"{kind}-{name}"))
        cases += [pytest.param(name, k, id=f"{kind}-{name}-{k}") for k in entry.params() if k not in skip]
    return cases


def changed(registry, name: str, key: str | None) -> list[dict]:
    """The keyword settings to try: `key` at a non-default value, alone or with one other keyword
    changed too (nesterov needs momentum), in that order."""
    if key is None:
        return [{}]
    entry = registry[name]
    defaults, hints = entry.defaults(), entry.hints()
    first = {key: other_value(defaults[key], hints[key])}
    others = [k for k in defaults if k not in (key, "lr")]
    return [first] + [{**first, k: other_value(defaults[k], hints[k])} for k in others]


def members(component: str, setting: dict, **changes) -> list:
    """Two valid configs with `setting` under `component`, differing in seed, rate and init."""
    cfgs = []
    for m in range(2):
        raw = copy.deepcopy(BASE) | copy.deepcopy(changes)
        raw["seed"] = 3 + 7 * m
        raw["optim"] = {**raw["optim"], "lr": raw["optim"]["lr"] * (1 + 0.5 * m)}
        if m == 1 and component != "model.init":
            raw["model"] = {**raw["model"], "init": "xavier_uniform"}
        section, _, key = component.partition(".")
        if key:
            raw[section] = {**raw[section], key: setting}
        elif section == "optim":
            raw["optim"] = {**setting, "lr": raw["optim"]["lr"]}
        else:
            raw[section] = setting
        cfgs.append(build(raw))
    return cfgs


def first_valid(registry, component: str, name: str, key: str | None, **changes) -> list:
    """Members for the first keyword setting that validation accepts (else its refusal)."""
    refusals = []
    for kwargs in changed(registry, name, key):
        try:
            return members(component, {"name": name, **kwargs}, **changes)
        except UserError as e:
            refusals.append(str(e))
    raise AssertionError(f"no valid non-default setting of {name}.{key}: {refusals}")


@pytest.mark.parametrize("name, key", keyword_cases(optimizers, "optim"))
def test_every_optimizer_keyword(name, key):
    cfgs = first_valid(optimizers, "optim", name, key)
    assert can_stack(cfgs)  # every registered optimizer steps each element apart
    assert_same_as_plain(cfgs)


def test_an_optimizer_whose_rate_enters_its_state_is_stacked_too(monkeypatch):
    """Rprop's first step size is the rate, clamped to max_step: each member's span of the stack
    is its own param group at its own rate, so even this is each member's own torch.optim."""
    import torch

    from lossbench.components.registry import Registry

    def rprop(params, *, lr: float = 0.01, max_step: float = 50.0):
        """Resilient backpropagation: sign steps of a per-weight size."""
        return torch.optim.Rprop(params, lr=lr, step_sizes=(1e-6, max_step), foreach=False)

    extra = Registry("optimizer")
    extra.register(rprop)
    monkeypatch.setitem(optimizers.entries, "rprop", extra["rprop"])
    for cfgs in (members("optim", {"name": "rprop"}), members("optim", {"name": "rprop", "max_step": 0.1})):
        assert can_stack(cfgs)
        assert_same_as_plain(cfgs)


def test_an_optimizer_that_mixes_elements_runs_on_the_plain_loop(monkeypatch, tmp_path):
    """A step scaled by the whole tensor's gradient norm would mix the members of a stack: such an
    optimizer is refused by the stack and its runs take the plain loop, alone and in a sweep."""
    import torch

    from lossbench.components.registry import Registry
    from lossbench.runs.members import run_group

    class Normalized(torch.optim.Optimizer):
        def __init__(self, params, lr):
            super().__init__(params, {"lr": lr})

        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    p.add_(p.grad / p.grad.norm(), alpha=-group["lr"])

    def normalized(params, *, lr: float = 0.01):
        """Steps of length lr: the gradient over its norm."""
        return Normalized(params, lr)

    extra = Registry("optimizer")
    extra.register(normalized)
    monkeypatch.setitem(optimizers.entries, "normalized", extra["normalized"])
    cfgs = members("optim", {"name": "normalized"})
    assert not can_stack(cfgs) and not can_stack(cfgs[:1])
    with pytest.raises(ValueError, match="run them plainly"):
        train_stacked(cfgs)
    done = run_group(cfgs, str(tmp_path))  # the sweep's worker: one plain run each
    assert [(s["status"], s["engine"]) for s, _, _ in done] == [("finished", "plain")] * 2


@pytest.mark.parametrize("name, key", keyword_cases(schedules, "schedule"))
def test_every_schedule_keyword(name, key):
    assert_same_as_plain(
        first_valid(schedules, "optim.schedule", name, key, optim={"name": "sgd", "lr": 0.3})
    )


LOSS_CASES = [
    pytest.param(task, *p.values, id=f"{p.id}-{task}")
    for p in keyword_cases(losses, "loss")
    for task in losses[p.values[0]].meta["tasks"]
]


@pytest.mark.parametrize("task, name, key", LOSS_CASES)
def test_every_loss_keyword_on_every_task(task, name, key):
    assert_same_as_plain(first_valid(losses, "loss", name, key, data=DATA[task]))


@pytest.mark.parametrize("name, key", keyword_cases(activations, "activation"))
def test_every_activation_keyword(name, key):
    assert_same_as_plain(first_valid(activations, "model.activation", name, key))


@pytest.mark.parametrize("name, key", keyword_cases(inits, "init"))
def test_every_init_keyword(name, key):
    assert_same_as_plain(first_valid(inits, "model.init", name, key))


def test_the_cases_follow_the_registry(monkeypatch):
    """A keyword added to a registered function becomes a case, and its case runs stacked."""
    import torch

    def adam(params, *, lr: float = 1e-3, betas: list[float] = (0.9, 0.999), amsgrad: bool = False):
        """Adam with amsgrad."""
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas), amsgrad=amsgrad, foreach=False)

    entry = copy.copy(optimizers["adam"])
    entry.fn = adam
    monkeypatch.setitem(optimizers.entries, "adam", entry)
    ids = [p.id for p in keyword_cases(optimizers, "optim")]
    assert "optim-adam-amsgrad" in ids and "optim-adam-eps" not in ids
    cfgs = first_valid(optimizers, "optim", "adam", "amsgrad")
    assert cfgs[0].optim.kwargs["amsgrad"] is True and can_stack(cfgs)
    assert_same_as_plain(cfgs)
    assert "amsgrad" in inspect.signature(optimizers["adam"].fn).parameters
