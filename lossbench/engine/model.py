"""The model: an MLP with `depth` hidden layers of `width` units.

depth 0 is a linear model; with one input and one output it is Nielsen's single neuron. The
forward pass can keep every layer's pre-activation so the training loop can read the gradient that
flows back into it.
"""

from __future__ import annotations

import torch
from torch import nn

from ..components.activations import OUTPUTS, activations
from ..components.inits import inits
from ..config.schema import Config


class MLP(nn.Module):
    """Linear layers with an activation between them and an output nonlinearity at the end."""

    def __init__(
        self, sizes: list[int], activation: str, activation_kwargs: dict, output: str, dtype=torch.float32
    ):
        super().__init__()
        self.sizes = sizes
        self.activation_name = activation
        self.activation_kwargs = activation_kwargs
        self.act = activations[activation].fn(**activation_kwargs)
        self.output_name = output
        self.output = OUTPUTS[output]
        self.layers = nn.ModuleList(nn.Linear(a, b, dtype=dtype) for a, b in zip(sizes, sizes[1:]))

    def forward(self, x: torch.Tensor, keep: list | None = None) -> torch.Tensor:
        """Logits for `x`; with `keep`, append each layer's pre-activation (hidden and output)."""
        for i, layer in enumerate(self.layers):
            z = layer(x)
            if keep is not None:
                keep.append(z)
            x = self.act(z) if i < len(self.layers) - 1 else z
        return x

    def __repr__(self) -> str:
        arch = "-".join(map(str, self.sizes))
        return f"MLP({arch}, {self.activation_name}, output={self.output_name})"


def build_model(cfg: Config, generator: torch.Generator) -> MLP:
    """The config's MLP, its weights and biases drawn from `generator` by the configured inits."""
    sizes = [cfg.n_inputs] + [cfg.model.width] * cfg.model.depth + [cfg.n_outputs]
    m = cfg.model
    model = MLP(sizes, m.activation.name, m.activation.kwargs, m.output, dtype=dtype_of(cfg))
    init_layers(model.layers, cfg, generator)
    return model


def init_layers(layers: nn.ModuleList, cfg: Config, generator: torch.Generator) -> None:
    """Initialise each nn.Linear in order, weight then bias, from one generator."""
    w_init, b_init = cfg.model.init, cfg.model.bias_init
    for layer in layers:
        if not isinstance(layer, nn.Linear):
            raise TypeError(f"init_layers initialises nn.Linear layers, got {type(layer).__name__}")
        fan_in = layer.weight.shape[1]
        with torch.no_grad():
            inits[w_init.name].fn(layer.weight, fan_in, generator, **w_init.kwargs)
            inits[b_init.name].fn(layer.bias, fan_in, generator, **b_init.kwargs)


def dtype_of(cfg: Config) -> torch.dtype:
    return torch.float64 if cfg.dtype == "float64" else torch.float32


def device_of(cfg: Config) -> torch.device:
    """The torch device for `cfg.device` (`auto`: the GPU when present)."""
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)
