"""Initialisations for a layer's weight [out, in] or bias [out], drawn from a given generator.

Each function fills `tensor` in place. `fan_in` is the layer's number of inputs (the bias needs it
for PyTorch's default); keyword-only arguments are what a config may set:
`model: {init: {name: normal, std: 0.01}, bias_init: zeros}`. Entries marked `bias=True` may also
initialise biases.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from annotated_types import Ge
from torch import nn

from .registry import Registry

inits = Registry("init")

Nonlinearity = Literal["linear", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]
"""The nonlinearities torch.nn.init.calculate_gain knows (the gain He init scales by)."""


@inits.register(bias=True)
def default(tensor: torch.Tensor, fan_in: int, generator: torch.Generator) -> torch.Tensor:
    """PyTorch's nn.Linear default: U(-1/sqrt(n_in), 1/sqrt(n_in)) (Glorot's "standard" init)."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    with torch.no_grad():
        return tensor.uniform_(-bound, bound, generator=generator)


@inits.register(bias=True)
def normal(
    tensor: torch.Tensor,
    fan_in: int,
    generator: torch.Generator,
    *,
    mean: float = 0.0,
    std: Annotated[float, Ge(0)] = 1.0,
) -> torch.Tensor:
    """N(mean, std^2) for every entry."""
    return nn.init.normal_(tensor, mean=mean, std=std, generator=generator)


@inits.register(bias=True)
def uniform(
    tensor: torch.Tensor, fan_in: int, generator: torch.Generator, *, a: float = -1.0, b: float = 1.0
) -> torch.Tensor:
    """U(a, b) for every entry."""
    return nn.init.uniform_(tensor, a=a, b=b, generator=generator)


@inits.register(bias=True)
def zeros(tensor: torch.Tensor, fan_in: int, generator: torch.Generator) -> torch.Tensor:
    """All zeros."""
    return nn.init.zeros_(tensor)


@inits.register(bias=True)
def constant(
    tensor: torch.Tensor, fan_in: int, generator: torch.Generator, *, value: float = 0.0
) -> torch.Tensor:
    """Every entry equal to `value` (Nielsen's single neuron starts from w=2, b=2)."""
    return nn.init.constant_(tensor, value)


@inits.register
def lecun_normal(tensor: torch.Tensor, fan_in: int, generator: torch.Generator) -> torch.Tensor:
    """N(0, 1/n_in), Nielsen's "improved" weight init (chapter 3 and 5)."""
    return nn.init.normal_(tensor, 0.0, 1.0 / math.sqrt(fan_in), generator=generator)


@inits.register
def xavier_uniform(
    tensor: torch.Tensor, fan_in: int, generator: torch.Generator, *, gain: float = 1.0
) -> torch.Tensor:
    """Glorot's normalised init: U(-a, a), a = gain sqrt(6 / (n_in + n_out))."""
    return nn.init.xavier_uniform_(tensor, gain=gain, generator=generator)


@inits.register
def xavier_normal(
    tensor: torch.Tensor, fan_in: int, generator: torch.Generator, *, gain: float = 1.0
) -> torch.Tensor:
    """N(0, gain^2 2 / (n_in + n_out))."""
    return nn.init.xavier_normal_(tensor, gain=gain, generator=generator)


@inits.register
def kaiming_uniform(
    tensor: torch.Tensor,
    fan_in: int,
    generator: torch.Generator,
    *,
    a: float = 0.0,
    nonlinearity: Nonlinearity = "relu",
) -> torch.Tensor:
    """He init, uniform: U(-b, b), b = gain sqrt(3 / n_in), gain sqrt(2) for ReLU."""
    return nn.init.kaiming_uniform_(tensor, a=a, nonlinearity=nonlinearity, generator=generator)


@inits.register
def kaiming_normal(
    tensor: torch.Tensor,
    fan_in: int,
    generator: torch.Generator,
    *,
    a: float = 0.0,
    nonlinearity: Nonlinearity = "relu",
) -> torch.Tensor:
    """He init, normal: N(0, 2 / n_in) for ReLU; keeps the signal's scale through deep ReLU nets."""
    return nn.init.kaiming_normal_(tensor, a=a, nonlinearity=nonlinearity, generator=generator)


@inits.register
def orthogonal(
    tensor: torch.Tensor, fan_in: int, generator: torch.Generator, *, gain: float = 1.0
) -> torch.Tensor:
    """A (semi-)orthogonal matrix times `gain`: every singular value equal to gain."""
    return nn.init.orthogonal_(tensor, gain=gain, generator=generator)


# other names people use for these (offered by "did you mean", not accepted: one thing, one name)
inits.alias(
    he="kaiming_normal",
    he_normal="kaiming_normal",
    he_uniform="kaiming_uniform",
    kaiming="kaiming_normal",
    glorot="xavier_uniform",
    glorot_uniform="xavier_uniform",
    glorot_normal="xavier_normal",
    xavier="xavier_uniform",
    lecun="lecun_normal",
    pytorch="default",
    zero="zeros",
)
