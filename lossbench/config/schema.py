"""The config's shape: dataclasses with the defaults in code and, on each field, what is valid.

A field's annotation carries its constraints (`depth: Annotated[int, Interval(ge=0, le=200)]`),
read by validation exactly as a registered function's keyword arguments are. A component's own
keys are constrained on its function's signature in `lossbench.components`, not here.
"""

from __future__ import annotations

import math
import re
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from annotated_types import Ge, Interval

# ----- the config ------------------------------------------------------------------------------


SEED_MAX = 2**31 - 1
"""The largest seed. torch's CPU generator keeps 32 bits of a seed (2**32 + 7 draws as 7), and a
run seeds its generators with seed, seed + 1, seed + 2 and seed + 7919: below 2**31 every one of
them stays distinct, so two different seeds are never the same run."""
Seed = Annotated[int, Interval(ge=0, le=SEED_MAX)]
Count = Annotated[int, Ge(1)]


@dataclass
class Component:
    """A registered function chosen by name, with the keyword arguments it gets."""

    name: str
    kwargs: dict = field(default_factory=dict)

    def to_yaml(self) -> str | dict:
        return {"name": self.name, **self.kwargs} if self.kwargs else self.name


@dataclass
class DataConfig:
    name: str = "moons"
    kwargs: dict = field(default_factory=dict)
    val_fraction: Annotated[float, Interval(ge=0, lt=1)] = 0.2


@dataclass
class ModelConfig:
    depth: Annotated[int, Interval(ge=0, le=200)] = 2
    width: Annotated[int, Interval(ge=1, le=100_000)] = 32
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
    epochs: Count = 20
    steps: Count | None = None
    batch_size: Count | None = 64
    log_every: Count = 50
    eval_every: Count | None = None
    target_loss: float | None = None
    target: list[dict] | None = None  # [{metric, value}]: read by validate._targets, not check_value
    snapshots: Annotated[int, Interval(ge=0, le=1000)] = 0  # weights kept N + 1 times, for `landscape`
    engine: Literal["stacked", "plain"] = "stacked"
    """Which loop computes the run: `stacked` (`engine.stacked`, the default, the same numbers alone
    or in any sweep) or `plain` (`engine.train`, the lesson loop, equal to rounding). Part of the
    run id when it is not the default, so the two never share a folder."""


TRAIN_LEFT_OUT = [("target", None), ("snapshots", 0), ("engine", "stacked")]
"""(key, value) pairs of `train` that `Config.to_dict` leaves out: keys added after run ids existed."""


@dataclass
class Config:
    """A resolved, validated run configuration. `to_dict()` is what is saved and hashed."""

    name: str = "run"
    seed: Seed = 0
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
            # these train keys at these values are left out, so run ids of configs without them do not change
            "train": {k: v for k, v in vars(self.train).items() if (k, v) not in TRAIN_LEFT_OUT},
        }

    def plan(self, n_train: int) -> tuple[int, int, int]:
        """(batch size, steps per epoch, total steps) of training on `n_train` examples."""
        batch = min(self.train.batch_size or n_train, n_train)
        per_epoch = math.ceil(n_train / batch)
        return batch, per_epoch, self.train.steps or self.train.epochs * per_epoch

    def __repr__(self) -> str:
        m = self.model
        return (
            f"Config({self.name!r}: {self.data.name} {m.depth}x{m.width} {m.activation.name} "
            f"{self.loss.name} {self.optim.name} lr={self.optim.kwargs.get('lr')})"
        )


PROBABILITY_OUTPUTS = ("sigmoid", "softmax")
"""The outputs that define probabilities (so the labels' NLL is recorded)."""


def higher_is_better(metric: str) -> bool:
    """Whether `metric` (`acc`, `val_acc`, ...) counts upward: accuracy does; every loss and error
    counts down. The one home of the rule: targets, figures, tables and the run summary ask it."""
    return metric.rsplit("_", 1)[-1] == "acc"  # acc, val_acc, train_acc


def common_metrics(task: str, output: str | None) -> list[str]:
    """The metrics every run records beside its loss and accuracy, whatever loss it trains with
    (`lossbench.engine.recording.prediction_metrics`): regression mse and mae; classification nll
    where the output defines probabilities."""
    if task == "regression":
        return ["mse", "mae"]
    return ["nll"] if output is None or output in PROBABILITY_OUTPUTS else []


def shared_metrics(task: str, output: str | None = None) -> list[str]:
    """The metrics every run of a task records beside its own loss: classification accuracy, then
    `common_metrics` (with `output` None: every one a run of the task may record)."""
    return [*([] if task == "regression" else ["acc"]), *common_metrics(task, output)]


def target_metrics(task: str, output: str) -> list[str]:
    """The recorded metrics `train.target` may name for a task and output, train then validation."""
    names = ["loss", *shared_metrics(task, output)]
    return names + [f"val_{n}" for n in names]


TOP_KEYS = ["name", "seed", "device", "dtype", "data", "model", "loss", "optim", "train", "sweep"]


def _fields(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


MODEL_KEYS = {k: t for k, t in _fields(ModelConfig).items() if t is not Component}
"""The model's own keys (its components are parsed apart), with their annotations."""
TRAIN_KEYS = _fields(TrainConfig)
DATA_KEYS = {k: t for k, t in _fields(DataConfig).items() if k not in ("name", "kwargs")}
OUTPUT_CHOICES = ["auto", "identity", "sigmoid", "softmax"]
DEVICE_CHOICES = ["cpu", "cuda", "auto"]
DTYPE_CHOICES = ["float32", "float64"]
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}")  # whole names only: `fullmatch`


def name_problem(name: object) -> str | None:
    """Why `name` is not a run name (it becomes a folder name), or None: the one rule for a
    config's `name` and every name read back from a file that becomes part of a path."""
    if isinstance(name, str) and NAME_RE.fullmatch(name) and ".." not in name:
        return None
    shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:60] + "..."
    return f"must be 1-100 letters, digits, '_', '-', '.', '+' (no path separators or '..'), got {shown}"


# ----- the run summary's shape ------------------------------------------------------------------

RUN_FORMAT = 1
"""The version of a run folder's format (its files and the summary's keys below). Every run
records it in summary.json as `format`; a reader refuses a run of another format with one message
(`runs.store.check_format`). Raise it when a file or a key changes meaning."""

NUMBER = (int, float)
SUMMARY = {  # key -> accepted types: every finished run's summary.json holds each (the recorder
    # `engine.recording` writes them, `runs.runner` stamps where it ran, `runs.store` counts rows)
    "format": (int,),
    "status": (str,),
    "steps": (int,),
    "steps_done": (int,),
    "epochs": NUMBER,
    "wall_time": NUMBER,
    "task": (str,),
    "run_id": (str,),
    "name": (str,),
    "seed": (int,),
    "n_params": (int,),
    "n_rows": (int,),
    "targets": (list,),
    "defaults": (dict,),
    "activation": (dict,),
    "device": (str,),
    "versions": (dict,),
    "engine": (str,),  # plain or stacked: which loop trained it
}
SUMMARY_OPTIONAL = {  # key -> accepted types, or null; `final_<metric>` keys are numbers or null
    "diverged_step": (int,),
    "grad_ratio_first_last": NUMBER,
    "grad_ratio_first_last_end": NUMBER,
    "linear": (dict,),  # a depth-0 model's fitted weight and bias
    "stack_size": (int,),  # runs trained together (one clock, so wall_time is the stack's)
    "error": (str,),  # a failed run's error (its summary holds only status, error and who it is)
}
TARGET = {"metric": (str,), "value": NUMBER, "steps_to": (int,), "seconds_to": NUMBER}
"""A summary's `targets`: one mapping each; `steps_to` and `seconds_to` are null until reached."""
