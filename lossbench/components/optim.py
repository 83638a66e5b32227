"""Optimizers and learning-rate schedules.

An optimizer entry builds a torch optimizer; its keyword-only arguments are the config's `optim`
keys and keep PyTorch's names (`lr`, `momentum`, `weight_decay`, `betas`). A schedule is a factor
of the base learning rate as a function of the optimizer step `t` (counted from 0) and the total
number of steps `n`; the training loop sets `lr = base_lr * factor(t, n)` before every step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Annotated

import torch
from annotated_types import Ge, Gt, Interval, Len

from .registry import Registry

optimizers = Registry("optimizer")
schedules = Registry("schedule")

LearningRate = Annotated[float, Gt(0)]
Momentum = Annotated[float, Interval(ge=0, lt=1)]
WeightDecay = Annotated[float, Ge(0)]
Eps = Annotated[float, Gt(0)]
Betas = Annotated[Sequence[Annotated[float, Interval(ge=0, lt=1)]], Len(2, 2)]
"""Adam's two running-average decays, each in [0, 1)."""
EMPTY = "optimizer got an empty parameter list"
"""What `torch.optim.Optimizer.__init__` raises for no parameters, after the subclass's checks."""


def check_arguments(name: str, kwargs: dict) -> None:
    """Run a torch.optim optimizer's own argument checks without building one.

    Each torch.optim constructor checks its arguments (a negative `lr`, `nesterov` without
    momentum, a beta outside [0, 1)) before the base class looks at the parameters, and an empty
    parameter list stops it there. A real optimizer would import `torch._dynamo` on its first
    method call (torch wraps them in `torch._disable_dynamo`), which costs about as much as importing
    torch itself: validating a config has no reason to pay it.

    Raises whatever the constructor raises for bad arguments.
    """
    try:
        optimizers[name].fn([], **kwargs)
    except ValueError as e:
        if str(e) != EMPTY:
            raise


@optimizers.register
def sgd(
    params: Iterable[torch.Tensor],
    *,
    lr: LearningRate = 0.1,
    momentum: Momentum = 0.0,
    weight_decay: WeightDecay = 0.0,
    nesterov: bool = False,
    dampening: Annotated[float, Interval(ge=0, le=1)] = 0.0,
) -> torch.optim.Optimizer:
    """Stochastic gradient descent, optionally with (Nesterov) momentum: torch.optim.SGD."""
    return torch.optim.SGD(
        params,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        nesterov=nesterov,
        dampening=dampening,
        foreach=False,
    )


@optimizers.register
def adam(
    params: Iterable[torch.Tensor],
    *,
    lr: LearningRate = 1e-3,
    betas: Betas = (0.9, 0.999),
    eps: Eps = 1e-8,
    weight_decay: WeightDecay = 0.0,
) -> torch.optim.Optimizer:
    """Adam: per-parameter steps from running moments of the gradient: torch.optim.Adam."""
    return torch.optim.Adam(
        params, lr=lr, betas=(betas[0], betas[1]), eps=eps, weight_decay=weight_decay, foreach=False
    )


@optimizers.register
def adamw(
    params: Iterable[torch.Tensor],
    *,
    lr: LearningRate = 1e-3,
    betas: Betas = (0.9, 0.999),
    eps: Eps = 1e-8,
    weight_decay: WeightDecay = 0.01,
) -> torch.optim.Optimizer:
    """AdamW: Adam with decoupled weight decay: torch.optim.AdamW."""
    return torch.optim.AdamW(
        params, lr=lr, betas=(betas[0], betas[1]), eps=eps, weight_decay=weight_decay, foreach=False
    )


@optimizers.register
def rmsprop(
    params: Iterable[torch.Tensor],
    *,
    lr: LearningRate = 1e-2,
    alpha: Annotated[float, Interval(ge=0, le=1)] = 0.99,
    eps: Eps = 1e-8,
    momentum: Momentum = 0.0,
    weight_decay: WeightDecay = 0.0,
) -> torch.optim.Optimizer:
    """RMSprop: steps divided by a running RMS of the gradient: torch.optim.RMSprop."""
    return torch.optim.RMSprop(
        params, lr=lr, alpha=alpha, eps=eps, momentum=momentum, weight_decay=weight_decay, foreach=False
    )


@schedules.register
def constant(t: int, n: int) -> float:
    """The same learning rate at every step."""
    return 1.0


@schedules.register
def step(
    t: int, n: int, *, step_size: Annotated[int, Ge(1)] = 100, gamma: Annotated[float, Gt(0)] = 0.1
) -> float:
    """Multiply the rate by `gamma` every `step_size` steps."""
    return gamma ** (t // step_size)


@schedules.register
def exponential(t: int, n: int, *, gamma: Annotated[float, Gt(0)] = 0.99) -> float:
    """Multiply the rate by `gamma` every step."""
    return gamma**t


@schedules.register
def cosine(t: int, n: int, *, min_factor: Annotated[float, Interval(ge=0, le=1)] = 0.0) -> float:
    """Cosine decay from the base rate to `min_factor` times it over the run."""
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * t / max(n, 1)))


@schedules.register
def inverse_time(t: int, n: int, *, decay: Annotated[float, Ge(0)] = 0.01) -> float:
    """lr / (1 + decay t): the classic decaying step that stops MAE's jumping."""
    return 1.0 / (1.0 + decay * t)


# other names people use for these (offered by "did you mean", not accepted: one thing, one name)
optimizers.alias(
    gd="sgd",
    gradient_descent="sgd",
    adam_w="adamw",
)
schedules.alias(cosine_annealing="cosine", exp="exponential", step_lr="step", decay="inverse_time")
