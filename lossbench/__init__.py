"""lossbench: a PyTorch lab for seeing how the loss, the activation and the depth shape training.

    import lossbench
    run = lossbench.run("configs/quickstart.yaml", model__depth=4)
    run.metrics["grad_w"]      # [n_rows, n_layers] weight-gradient norms, input layer first

The heavy modules (torch) load on first use, so `python -m lossbench --help` answers at once.
"""

__version__ = "0.1.0"

__all__ = ["run", "load_run", "load_config", "__version__"]


def run(config_or_path, out: str = "results", force: bool = False, threads: int | None = 1, **overrides):
    """Train one config (a YAML path, a mapping or a Config); returns the loaded `Run`.

    `threads`: torch threads (1 by default; None leaves torch's setting alone).
    """
    from .runs.runner import run as _run

    return _run(config_or_path, out=out, force=force, threads=threads, **overrides)


def load_run(path: str):
    """Read a run folder: `.config`, `.summary` (dicts) and `.metrics` (columns, per layer)."""
    from .runs.store import load_run as _load_run

    return _load_run(path)


def load_config(path: str, *overrides: str):
    """Validate a config file with `key=value` overrides; returns the resolved `Config`."""
    from .config.validate import load

    return load(path, overrides)[0]
