"""How much memory a config asks for: building its data set, and training it (parameters, optimizer
state, activations, evaluation, weight snapshots), against what this machine can spare. Validation
refuses a config that would not fit before anything is written; a sweep sizes its stacks by it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .schema import Config

if TYPE_CHECKING:  # torch loads on first use, not when the config package is imported
    from ..components.data import Dataset


def data_bytes(name: str, kwargs: dict) -> tuple[int, str]:
    """(peak bytes, what they are) of building data set `name`: its own `peak_bytes` estimate when
    it registers one (generators with large intermediates, files read from disk), else the points
    (n_samples x n_features or side^2, in float64, a few copies)."""
    from ..components.data import datasets

    estimate = datasets[name].meta.get("peak_bytes") if name in datasets else None
    try:
        if estimate is not None:
            return estimate(**kwargs)
        n = kwargs.get("n_samples") or 2000
        d = kwargs.get("n_features") or (kwargs.get("side", 0) ** 2) or 2
        return int(n) * int(d) * 8 * 3, "the points (n_samples x features); use fewer n_samples"
    except (TypeError, ValueError):
        return 0, ""


MEMORY_KEYS = {
    "the data set": ("data", "use fewer data.n_samples"),
    "the parameters with their gradients and optimizer state": ("model", "reduce model.width or model.depth"),
    "a training step's activations": ("train.batch_size", "reduce train.batch_size or model.width"),
    "an evaluation pass over the whole train or validation set": (
        "model.width",
        "reduce model.width or data.n_samples (evaluation feeds every example at once)",
    ),
    "the weight snapshots": ("train.snapshots", "use fewer train.snapshots"),
}


def memory_parts(cfg: Config, dataset: Dataset | None) -> dict[str, int]:
    """Bytes a run needs, roughly, by what needs them (keys of MEMORY_KEYS)."""
    sizes = [cfg.n_inputs] + [cfg.model.width] * cfg.model.depth + [cfg.n_outputs]
    n_params = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    item = 8 if cfg.dtype == "float64" else 4
    n_data = dataset.x.numel() + dataset.y.numel() if dataset is not None else 0
    n_all = len(dataset.x) if dataset is not None else 1
    batch = min(cfg.train.batch_size or n_all, n_all)
    names = list(MEMORY_KEYS)
    return {
        names[0]: n_data * (8 + item),
        names[1]: n_params * item * 5,
        names[2]: batch * sum(sizes) * item * 4,
        names[3]: n_all * (max(sizes) * 2 + cfg.n_outputs) * item,  # a layer's input and output at once
        names[4]: (cfg.train.snapshots + 1 if cfg.train.snapshots else 0) * n_params * 4,  # float32
    }


def memory_estimate(cfg: Config, dataset: Dataset | None) -> int:
    """Bytes a run needs, roughly: data, parameters with gradients and optimizer state,
    activations of a training step and of a whole-set evaluation pass."""
    return sum(memory_parts(cfg, dataset).values())


def memory_budget() -> int:
    """Half of this machine's physical memory."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30
