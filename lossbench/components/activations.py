"""Activations: each a function returning the elementwise nonlinearity a hidden layer applies.

The training loop also needs each activation's derivative (to log the mean derivative, the factor
that multiplies into the gradient once per layer) and when a unit counts as saturated. Both are
found generically: the derivative by autograd, "saturated" as a derivative below 5% of the
activation's peak derivative (a ReLU unit at z < 0, a sigmoid unit with abs(z) > ~4.4), and "dead"
as a unit saturated on every example of the batch. A closed-form derivative registered with an
activation (`derivative=`) is used instead of autograd, for speed.

To add one: a function here with `@activations.register`, returning a callable on tensors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated

import torch
import torch.nn.functional as F
from annotated_types import Gt

from .registry import Registry

activations = Registry("activation")

Activation = Callable[[torch.Tensor], torch.Tensor]
SATURATION = 0.05  # a unit is saturated when its derivative is below 5% of the peak derivative


@activations.register(derivative=lambda z, a: a * (1 - a))
def sigmoid() -> Activation:
    """Logistic 1 / (1 + exp(-z)); derivative at most 1/4, so deep stacks vanish."""
    return torch.sigmoid


@activations.register(derivative=lambda z, a: 1 - a * a)
def tanh() -> Activation:
    """Hyperbolic tangent; zero-centred, derivative at most 1."""
    return torch.tanh


@activations.register(derivative=lambda z, a: torch.sign(a))  # 1 where z > 0, else 0: one op
def relu() -> Activation:
    """max(0, z); derivative 0 or 1, so it does not shrink the gradient where active."""
    return F.relu


@activations.register
def leaky_relu(*, negative_slope: float = 0.01) -> Activation:
    """max(z, negative_slope * z); a small slope keeps negative units alive."""
    return functools.partial(F.leaky_relu, negative_slope=negative_slope)


@activations.register
def elu(*, alpha: float = 1.0) -> Activation:
    """z for z > 0, alpha (exp(z) - 1) otherwise; smooth, saturates at -alpha."""
    return functools.partial(F.elu, alpha=alpha)


@activations.register
def gelu() -> Activation:
    """z * Phi(z), the Gaussian error linear unit (exact form)."""
    return F.gelu


@activations.register
def silu() -> Activation:
    """z * sigmoid(z) (swish); smooth and non-monotonic near zero."""
    return F.silu


@activations.register
def softsign() -> Activation:
    """z / (1 + abs(z)); like tanh but saturating polynomially."""
    return F.softsign


@activations.register
def softplus(*, beta: Annotated[float, Gt(0)] = 1.0) -> Activation:
    """log(1 + exp(beta z)) / beta, a smooth ReLU."""
    return functools.partial(F.softplus, beta=beta)


@activations.register(derivative=lambda z, a: torch.ones_like(z))
def identity() -> Activation:
    """z unchanged: a deep linear net."""
    return _identity


def _identity(z: torch.Tensor) -> torch.Tensor:
    return z


def derivative(fn: Activation, z: torch.Tensor) -> torch.Tensor:
    """The elementwise derivative of activation `fn` at `z`, by autograd."""
    with torch.inference_mode(False), torch.enable_grad():  # callable from a reading in inference mode
        z = z.detach().clone().requires_grad_(True)  # (a clone outside inference mode can be differentiated)
        (d,) = torch.autograd.grad(fn(z).sum(), z)
    return d


def derivative_fn(name: str, kwargs: dict) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """`(z, a) -> fn'(z)` for activation `name`: its closed form when registered, else autograd.

    The closed forms (sigmoid, tanh, relu, identity) only save time; tests check them against
    autograd.
    """
    closed = activations[name].meta.get("derivative")
    if closed is not None:
        return closed
    fn = activations[name].fn(**kwargs)
    return lambda z, a: derivative(fn, z)


@functools.cache
def _peak(name: str, kwargs_items: tuple) -> float:
    fn = activations[name].fn(**dict(kwargs_items))
    z = torch.linspace(-30, 30, 60001, dtype=torch.float64)
    return float(derivative(fn, z).abs().max())


def peak_derivative(name: str, kwargs: dict) -> float:
    """The largest abs derivative of the activation over [-30, 30] (1/4 for sigmoid)."""
    return _peak(name, tuple(sorted(kwargs.items())))


OUTPUTS: dict[str, Activation] = {
    "identity": _identity,
    "sigmoid": torch.sigmoid,
    "softmax": functools.partial(torch.softmax, dim=-1),
}
"""The output nonlinearities a model can end with (`model.output`)."""


# other names people use for these (offered by "did you mean", not accepted: one thing, one name)
activations.alias(
    swish="silu",
    logistic="sigmoid",
    linear="identity",
    none="identity",
    lrelu="leaky_relu",
    leakyrelu="leaky_relu",
)
