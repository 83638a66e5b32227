"""Constraints sit on the parameters they constrain (`Annotated[float, Gt(0)]` on the signature):
validation reads them with the key path, the valid range and "did you mean"; `list` shows them; and
the chosen loss is called once during validation, so a setting only its own code refuses is found
before a run folder exists."""

from __future__ import annotations

import math
import re
import typing
from typing import Annotated, Any

import pytest
import torch
import torch.nn.functional as F
from annotated_types import Gt
from conftest import ROOT

from lossbench.cli import main
from lossbench.components.activations import activations
from lossbench.components.data import datasets
from lossbench.components.inits import inits
from lossbench.components.losses import REGRESSION, losses
from lossbench.components.optim import optimizers, schedules
from lossbench.config.validate import build
from lossbench.errors import UserError

REGISTRIES = [losses, activations, inits, optimizers, schedules, datasets]
LINE = {"data": {"name": "line", "n_samples": 40}, "train": {"epochs": 1}}


@pytest.fixture
def throwaway(monkeypatch):
    """Register components for one test only: each registry's entries are a copy for the test, so
    what it adds goes afterwards and what was there (a loss a contributor just added) stays."""
    for registry in REGISTRIES:
        monkeypatch.setattr(registry, "entries", dict(registry.entries))


def problems(raw: dict) -> list[tuple[str, str]]:
    with pytest.raises(UserError) as e:
        build(raw)
    return e.value.problems


@pytest.mark.parametrize(
    "registry, name, key",
    [(r, n, k) for r in REGISTRIES for n in r for k in r[n].params()],
    ids=lambda v: getattr(v, "kind", v),
)
def test_every_keyword_is_annotated(registry, name, key):
    """A config key's annotation is its schema: a keyword without one would go unchecked."""
    assert registry[name].hints()[key] is not Any, f"{registry.kind} {name!r}: annotate {key!r}"


def readme_example() -> str:
    text = open(f"{ROOT}/docs/extending.md", encoding="utf-8").read()  # moved from the README
    (code,) = re.findall(r"```python\n(@losses\.register.*?def log_cosh.*?)```", text, re.S)
    return code


def test_readme_log_cosh_is_refused_at_scale_zero(throwaway, monkeypatch):
    monkeypatch.delitem(losses.entries, "log_cosh", raising=False)  # one added by following the README
    namespace = {"losses": losses, "REGRESSION": REGRESSION, "F": F, "math": math, "torch": torch}
    namespace |= {"Annotated": Annotated, "Gt": Gt}
    exec(readme_example(), namespace)  # registers log_cosh, exactly as the README writes it
    assert problems({**LINE, "loss": {"name": "log_cosh", "scale": 0}}) == [
        ("loss.scale", "must be > 0, got 0.0")
    ]
    assert build({**LINE, "loss": {"name": "log_cosh", "scale": 0.5}}).loss.kwargs == {"scale": 0.5}


def test_a_loss_without_a_constraint_is_still_refused_by_calling_it(throwaway):
    @losses.register(tasks=(REGRESSION,), on="output")
    def plain_log_cosh(prediction: torch.Tensor, target: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
        r = (prediction - target) / scale
        return scale * (r + F.softplus(-2 * r) - math.log(2))

    [(path, message)] = problems({**LINE, "loss": {"name": "plain_log_cosh", "scale": 0}})
    assert path == "loss" and "'plain_log_cosh' is nan" in message


def test_a_loss_that_refuses_its_settings_is_reported_with_its_key(throwaway):
    @losses.register(tasks=(REGRESSION,), on="output")
    def picky(prediction: torch.Tensor, target: torch.Tensor, *, power: float = 2.0) -> torch.Tensor:
        if power not in (1.0, 2.0):
            raise ValueError(f"power must be 1 or 2, got {power}")
        return (prediction - target).abs() ** power

    assert problems({**LINE, "loss": {"name": "picky", "power": 3}}) == [
        ("loss", "loss 'picky' cannot use these settings: power must be 1 or 2, got 3.0")
    ]


def test_a_new_beta_does_not_inherit_softplus_rule(throwaway):
    @activations.register
    def shifted_relu(*, beta: float = 0.0) -> typing.Callable[[torch.Tensor], torch.Tensor]:
        return lambda z: F.relu(z - beta)

    cfg = build({**LINE, "model": {"activation": {"name": "shifted_relu", "beta": -1}}})
    assert cfg.model.activation.kwargs == {"beta": -1.0}
    assert problems({**LINE, "model": {"activation": {"name": "softplus", "beta": 0}}}) == [
        ("model.activation.beta", "must be > 0, got 0.0")
    ]


def test_elu_alpha_is_free_and_rmsprop_alpha_is_a_fraction():
    assert build({**LINE, "model": {"activation": {"name": "elu", "alpha": -2}}})
    assert problems({**LINE, "optim": {"name": "rmsprop", "alpha": 1.5}}) == [
        ("optim.alpha", "must be >= 0 and <= 1, got 1.5")
    ]


def test_choices_say_did_you_mean():
    [(path, message)] = problems(
        {**LINE, "model": {"init": {"name": "kaiming_normal", "nonlinearity": "rel"}}}
    )
    assert path == "model.init.nonlinearity"
    assert message.startswith("unknown nonlinearity 'rel' (did you mean 'relu'?); valid: linear, sigmoid")


def test_list_shows_each_keyword_with_what_is_valid(capsys):
    assert main(["list"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # as one line: list wraps at 100 columns
    assert "keys: delta=1.0 [> 0]" in out
    assert "momentum=0.0 [>= 0 and < 1]" in out
    assert "betas=(0.9, 0.999) [2 numbers, each >= 0 and < 1]" in out
    assert "nonlinearity=relu [linear|sigmoid|tanh|relu|leaky_relu|selu]" in out
    assert "keys: alpha=1.0 gelu" in out  # elu: any number, so nothing is shown after it
