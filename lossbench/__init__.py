"""lossbench: a PyTorch lab for seeing how the loss, the activation and the depth shape training.

    import lossbench
    run = lossbench.run("configs/quickstart.yaml", model__depth=4)
    run.metrics["grad_w"]      # [n_rows, n_layers] weight-gradient norms, input layer first

The heavy modules (torch) load on first use, so `python -m lossbench --help` answers at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for the annotations only: torch loads on first use
    import torch

    from .config.schema import Config
    from .engine.model import MLP
    from .runs.store import Run

__version__ = "0.1.0"

__all__ = [
    "run",
    "run_many",
    "load_run",
    "load_config",
    "init_model",
    "loss_fn",
    "model_loss",
    "landscape",
    "__version__",
]


def run(
    config_or_path: str | dict | Config,
    out: str = "results",
    force: bool = False,
    threads: int | None = 1,
    **overrides: Any,
) -> Run:
    """Train one config (a YAML path, a mapping or a Config); returns the loaded `Run`.

    `threads`: torch threads (1 by default; None leaves torch's setting alone).
    """
    from .runs.runner import run as _run

    return _run(config_or_path, out=out, force=force, threads=threads, **overrides)


def load_run(path: str) -> Run:
    """Read a run folder: `.config`, `.summary` (dicts) and `.metrics` (columns, per layer)."""
    from .runs.store import load_run as _load_run

    return _load_run(path)


def load_config(path: str, *overrides: str) -> Config:
    """Validate a config file with `key=value` overrides; returns the resolved `Config`."""
    from .config.validate import load

    return load(path, overrides)[0]


def run_many(
    configs: str | dict | list[Config],
    out: str = "results",
    workers: int | None = 1,
    force: bool = False,
    **overrides: Any,
) -> list[Run]:
    """Train (or reuse) several configs into run folders under `out`; returns their loaded `Run`s.

    `configs`: a list of Configs, or a config with a `sweep:` block (a YAML path or a mapping, with
    overrides as `run` takes them), run as `python -m lossbench run` runs it: `out/<name>/` with its
    sweep.yaml, sweep.csv (the table, printed) and runs.csv, the runs in grid order. Configs that
    differ only in seed, learning rate, init or target are trained as one stack (the same bits as
    each run alone with `run`). A member that fails raises RuntimeError with its error.
    """
    from .config.grid import expand
    from .config.validate import count_problem
    from .errors import UserError
    from .runs.runner import checked
    from .runs.store import check_writable
    from .runs.store import load_run as _load_run
    from .runs.sweep import run_configs, run_sweep

    if workers is not None and count_problem(workers):
        raise UserError([("workers", str(count_problem(workers)))], "lossbench.run_many")
    sweep: dict = {}
    if not isinstance(configs, list):
        from .config.validate import load

        items = [f"{k.replace('__', '.')}={json.dumps(v)}" for k, v in overrides.items()]
        path, raw = (configs, None) if isinstance(configs, str) else (None, configs)
        cfg, sweep, raw = load(path, items, raw=raw)
        check_writable(out)
        configs = expand(raw, path or "config") if sweep else [cfg]
        if sweep:
            print(
                run_sweep(
                    raw, configs, out, source=path or "config", force=force, workers=workers, progress=False
                )
            )
    else:  # Configs may have been changed by hand: each checked as the command line checks it
        configs = [checked(c, what="each of run_many's configs") for c in configs]
        check_writable(out)
    runs = []
    for summary, folder in run_configs(configs, out, workers=workers, force=force and not sweep):
        if (summary or {}).get("status") == "failed":
            raise RuntimeError(f"{folder}: {summary.get('error')}")
        runs.append(_load_run(folder))
    return runs


def init_model(cfg: Config) -> tuple[MLP, dict[str, Any]]:
    """(model, data) exactly as the trainer starts a run of `cfg`: the initial weights and the
    training data (a dict of tensors: x, y, labels, x_val, ...), without training anything.
    `cfg` is checked first, as `run` checks it (its fields may have been set by hand)."""
    import torch

    from .engine.model import build_model
    from .engine.train import prepare
    from .runs.runner import checked

    cfg = checked(cfg, what="init_model")
    torch.manual_seed(cfg.seed)
    data = prepare(cfg)
    return build_model(cfg, torch.Generator().manual_seed(cfg.seed + 1)), data


def loss_fn(name: str) -> Callable[..., torch.Tensor]:
    """The registered loss `name`: fn(prediction, target, reduction="none", **kwargs), elementwise.

    `python -m lossbench list` shows every loss; classification losses take logits.
    """
    from .components.losses import losses

    return losses[name].fn


def model_loss(
    name: str,
    z: torch.Tensor,
    output: Callable[[torch.Tensor], torch.Tensor],
    y: torch.Tensor,
    **kwargs: Any,
) -> torch.Tensor:
    """Per-example loss `name` of a model's logits `z` against prepared targets `y`, as the trainer
    computes it (`output`, the model's output nonlinearity, applied for losses on the output)."""
    from .components.losses import per_example

    return per_example(name, kwargs, z, output, y)


def landscape(
    run: str | Run,
    resolution: int = 41,
    span: float = 1.0,
    seed: int = 0,
    bias: str = "row",
    n_examples: int | None = None,
) -> dict[str, Any]:
    """The loss landscape of a run (a folder or a loaded `Run`) as numpy arrays, as
    `python -m lossbench landscape` saves them in landscape.npz: `line_a` with `line_loss`,
    `line_val_loss`, ... (initial weights at a=0, final at a=1); `slice_x`, `slice_y` with
    `slice_loss`, `slice_mse`, ... [y, x] along `directions`; with `train.snapshots`, `path_xy`,
    `path_steps`, `explained` and the surface `path_loss`, ... on that plane.
    `lossbench.viz.landscape.fig_landscape([{"label": ..., "loss": ..., "data": numbers}])` draws it.
    """
    from .engine.landscape import compute
    from .runs.store import load_run as _load_run

    loaded = _load_run(run) if isinstance(run, str) else run
    return compute(loaded.path, loaded.config, resolution, span, seed, bias, n_examples)
