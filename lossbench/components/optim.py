"""Optimizers and learning-rate schedules.

An optimizer entry builds a torch optimizer; its keyword-only arguments are the config's `optim`
keys and keep PyTorch's names (`lr`, `momentum`, `weight_decay`, `betas`). A schedule is a factor
of the base learning rate as a function of the optimizer step `t` (counted from 0) and the total
number of steps `n`; the training loop sets `lr = base_lr * factor(t, n)` before every step.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any

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


IMPLEMENTATION = {"foreach", "fused", "capturable", "differentiable"}
"""torch.optim keywords that choose how an update is computed, not what it is: not config keys
(lossbench passes foreach=False, the plain per-tensor loop, on every device)."""
KEYWORD_TYPES = {
    "lr": LearningRate,
    "momentum": Momentum,
    "dampening": Annotated[float, Interval(ge=0, le=1)],
    "weight_decay": WeightDecay,
    "eps": Eps,
    "alpha": Annotated[float, Interval(ge=0, le=1)],
    "betas": Betas,
}
"""What is valid for the torch.optim keywords that hold a number (the others are true or false)."""


def from_torch(cls: type, lr: float, summary: str) -> Callable[..., torch.optim.Optimizer]:
    """A registrable builder of torch.optim optimizer `cls`: its keywords are the class's own
    (signature = schema: every keyword of `cls` but `IMPLEMENTATION`, with torch's defaults, the
    learning rate `lr` aside), annotated with `KEYWORD_TYPES`, so a keyword torch adds is a config
    key, validated, listed and tested (tests/test_stacked_generated.py), with nothing to write."""
    keywords = []
    for p in list(inspect.signature(cls).parameters.values())[1:]:
        if p.name in IMPLEMENTATION:
            continue
        default = lr if p.name == "lr" else p.default
        annotation = KEYWORD_TYPES.get(p.name, type(default))
        if isinstance(default, int) and not isinstance(default, bool) and p.name in KEYWORD_TYPES:
            default = float(default)  # torch writes `momentum=0`; the config holds a number
        keywords.append(
            inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        )

    def build(params: Iterable[torch.Tensor], **kwargs: Any) -> torch.optim.Optimizer:
        if "betas" in kwargs:
            kwargs["betas"] = tuple(kwargs["betas"])  # a YAML list
        return cls(params, **kwargs, foreach=False)

    build.__name__ = build.__qualname__ = cls.__name__.lower()
    build.__doc__ = f"{summary}: torch.optim.{cls.__name__}."
    params = inspect.Parameter(
        "params", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Iterable[torch.Tensor]
    )
    build.__signature__ = inspect.Signature([params, *keywords], return_annotation=torch.optim.Optimizer)  # type: ignore[attr-defined]
    build.__annotations__ = {p.name: p.annotation for p in keywords}
    return build


optimizers.register(
    from_torch(torch.optim.SGD, 0.1, "Stochastic gradient descent, optionally with (Nesterov) momentum")
)
optimizers.register(
    from_torch(torch.optim.Adam, 1e-3, "Adam: per-parameter steps from running moments of the gradient")
)
optimizers.register(from_torch(torch.optim.AdamW, 1e-3, "AdamW: Adam with decoupled weight decay"))
optimizers.register(
    from_torch(torch.optim.RMSprop, 1e-2, "RMSprop: steps divided by a running RMS of the gradient")
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
