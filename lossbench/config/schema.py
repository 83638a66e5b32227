"""The config's shape: dataclasses with the defaults in code, the top-level keys and value rules."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# ----- the config ------------------------------------------------------------------------------


@dataclass
class Component:
    """A registered function chosen by name, with the keyword arguments it gets."""

    name: str
    kwargs: dict = field(default_factory=dict)

    def to_yaml(self):
        return {"name": self.name, **self.kwargs} if self.kwargs else self.name


@dataclass
class DataConfig:
    name: str = "moons"
    kwargs: dict = field(default_factory=dict)
    val_fraction: float = 0.2


@dataclass
class ModelConfig:
    depth: int = 2
    width: int = 32
    activation: Component = field(default_factory=lambda: Component("relu"))
    init: Component = field(default_factory=lambda: Component("default"))
    bias_init: Component = field(default_factory=lambda: Component("default"))
    output: str = "auto"


@dataclass
class OptimConfig:
    name: str = "sgd"
    kwargs: dict = field(default_factory=dict)
    schedule: Component = field(default_factory=lambda: Component("constant"))


@dataclass
class TrainConfig:
    epochs: int = 20
    steps: int | None = None
    batch_size: int | None = 64
    log_every: int = 50
    eval_every: int | None = None
    target_loss: float | None = None


@dataclass
class Config:
    """A resolved, validated run configuration. `to_dict()` is what is saved and hashed."""

    name: str = "run"
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: Component = field(default_factory=lambda: Component("mse"))
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    task: str = "binary"  # derived from the data set; not a config key
    n_inputs: int = 2
    n_outputs: int = 1

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "seed": self.seed,
            "device": self.device,
            "dtype": self.dtype,
            "data": {"name": self.data.name, "val_fraction": self.data.val_fraction, **self.data.kwargs},
            "model": {
                "depth": self.model.depth,
                "width": self.model.width,
                "activation": self.model.activation.to_yaml(),
                "init": self.model.init.to_yaml(),
                "bias_init": self.model.bias_init.to_yaml(),
                "output": self.model.output,
            },
            "loss": {"name": self.loss.name, **self.loss.kwargs},
            "optim": {
                "name": self.optim.name,
                **self.optim.kwargs,
                "schedule": self.optim.schedule.to_yaml(),
            },
            "train": dict(vars(self.train)),
        }

    def __repr__(self) -> str:
        m = self.model
        return (
            f"Config({self.name!r}: {self.data.name} {m.depth}x{m.width} {m.activation.name} "
            f"{self.loss.name} {self.optim.name} lr={self.optim.kwargs.get('lr')})"
        )


TOP_KEYS = ["name", "seed", "device", "dtype", "data", "model", "loss", "optim", "train", "sweep"]
MODEL_KEYS = {"depth": "int", "width": "int", "output": "str"}
TRAIN_KEYS = {
    "epochs": "int",
    "steps": "int | None",
    "batch_size": "int | None",
    "log_every": "int",
    "eval_every": "int | None",
    "target_loss": "float | None",
}
OUTPUT_CHOICES = ["auto", "identity", "sigmoid", "softmax"]
DEVICE_CHOICES = ["cpu", "cuda", "auto"]
DTYPE_CHOICES = ["float32", "float64"]
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}$")

# Value rules by key name: (lowest, lowest allowed?, highest, highest allowed?)
RULES = {
    "lr": (0, False, None, None),
    "delta": (0, False, None, None),
    "margin": (0, False, None, None),
    "eps": (0, False, None, None),
    "gamma": (0, False, None, None),
    "beta": (0, False, None, None),
    "std": (0, True, None, None),
    "noise": (0, True, None, None),
    "decay": (0, True, None, None),
    "momentum": (0, True, 1, False),
    "dampening": (0, True, 1, True),
    "alpha": (0, True, None, None),
    "weight_decay": (0, True, None, None),
    "label_smoothing": (0, True, 1, True),
    "outlier_fraction": (0, True, 1, True),
    "val_fraction": (0, True, 1, False),
    "min_factor": (0, True, 1, True),
    "factor": (0, False, 1, False),
    "spread": (0, False, None, None),
    "depth": (0, True, 200, True),
    "width": (1, True, 100_000, True),
    "epochs": (1, True, None, None),
    "steps": (1, True, None, None),
    "batch_size": (1, True, None, None),
    "log_every": (1, True, None, None),
    "eval_every": (1, True, None, None),
    "step_size": (1, True, None, None),
    "seed": (0, True, 2**63 - 1, True),
    "n_samples": (1, True, None, None),
    "n_classes": (1, True, 1000, True),
    "n_features": (1, True, 100_000, True),
    "side": (8, True, 256, True),
    "turns": (0, False, None, None),
    "periods": (0, False, None, None),
}
# String settings with a fixed set of values (torch.nn.init.calculate_gain's nonlinearities).
STRING_CHOICES = {"nonlinearity": ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]}
ALPHA_IS_FREE = {"elu"}  # elu's alpha may be any number; rmsprop's alpha is a decay in [0, 1]
