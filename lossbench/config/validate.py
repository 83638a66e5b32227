"""Configs: YAML in, a validated `Config` out, every problem reported at once.

Defaults live here in code, so a config file holds only what differs. A component (data set, loss,
activation, init, optimizer, schedule) is written `name` or `{name: ..., key: value}`; its keys are
checked against the keyword-only arguments of the registered function, so the signature is the
schema. Configs only ever name things: nothing in a config is imported or executed.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..components.registry import Registry, check_value, did_you_mean, is_number
from ..errors import UserError
from .memory import MEMORY_KEYS, data_bytes, memory_budget, memory_parts
from .overrides import apply_overrides, registry_at
from .schema import (
    DATA_KEYS,
    DEVICE_CHOICES,
    DTYPE_CHOICES,
    MODEL_KEYS,
    OUTPUT_CHOICES,
    TOP_KEYS,
    TRAIN_KEYS,
    Component,
    Config,
    Seed,
    name_problem,
    target_metrics,
)
from .yaml_io import read_yaml_file

if TYPE_CHECKING:  # torch loads on first use, not when the config package is imported
    from ..components.data import Dataset


def parse_component(
    path: str, raw: Any, registry: Registry, problems: list, default: str, extra: dict | None = None
) -> tuple[Component, dict]:
    """A `Component` from `name` or `{name: ..., **kwargs}`, kwargs checked against the signature.

    `extra` names keys that belong to the section rather than the function (e.g. `val_fraction`);
    their raw values are returned separately.
    """
    extra = extra or {}
    if raw is None:
        raw = {}
    written_as_name = isinstance(raw, str)
    if written_as_name:
        raw = {"name": raw}
    if not isinstance(raw, dict):
        problems.append((path, f"must be a {registry.kind} name or a mapping with 'name', got {raw!r}"))
        return Component(default), {}
    name = raw.get("name", default)
    if not isinstance(name, str) or name not in registry:
        hint = registry.hint(name)
        problems.append(
            (
                f"{path}.name" if "name" in raw and not written_as_name else path,
                f"unknown {registry.kind} {name!r}{hint}; valid: {', '.join(registry.names())}",
            )
        )
        return Component(default), {}
    entry = registry[name]
    params = entry.params()
    hints = entry.hints()
    kwargs, extras = {}, {}
    for key, value in raw.items():
        if key == "name":
            continue
        if key in extra:
            extras[key] = value
            continue
        if not isinstance(key, str) or key not in params:
            valid = sorted([*params, *extra])
            hint = did_you_mean(key, valid)
            problems.append(
                (
                    f"{path}.{key}",
                    f"{registry.kind} {name!r} takes no key {key!r}{hint}; "
                    f"valid: {', '.join(valid) if valid else 'none'}",
                )
            )
            continue
        kwargs[key] = check_value(f"{path}.{key}", value, hints[key], problems)
    for key, default_value in entry.defaults().items():
        if key not in kwargs:
            kwargs[key] = list(default_value) if isinstance(default_value, tuple) else default_value
    return Component(name, kwargs), extras


def _section(raw: dict, key: str, problems: list) -> dict:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append((key, f"must be a mapping, got {value!r}"))
        return {}
    return value


def _unknown_keys(path: str, section: dict, valid, problems: list) -> None:
    for key in section:
        if key not in valid:
            problems.append(
                (
                    f"{path}.{key}" if path else str(key),
                    f"unknown key{did_you_mean(key, valid)}; valid: {', '.join(valid)}",
                )
            )


def build(raw: Any, source: str = "config", default_name: str = "run") -> Config:
    """Validate a raw config mapping (sweep block excluded) into a `Config`, or raise UserError.

    What a key may hold and its default come from the schema (`config.schema`: the dataclasses'
    defaults and annotated constraints) and, for a component, from its function's signature.
    """
    problems: list[tuple[str, str]] = []
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError([("", f"a config must be a mapping of keys, got {type(raw).__name__}")], source)
    _unknown_keys("", raw, TOP_KEYS, problems)
    cfg = Config(name=default_name)
    why = name_problem(raw.get("name", cfg.name))
    if why:
        problems.append(("name", why))
    else:
        cfg.name = raw.get("name", cfg.name)
    cfg.seed = check_value("seed", raw.get("seed", cfg.seed), Seed, problems)
    for key, choices in (("device", DEVICE_CHOICES), ("dtype", DTYPE_CHOICES)):
        value = raw.get(key, getattr(cfg, key))
        if value not in choices and not (
            key == "device" and isinstance(value, str) and re.match(r"^cuda:\d+$", value)
        ):
            problems.append(
                (key, f"unknown {key} {value!r}{did_you_mean(value, choices)}; valid: {', '.join(choices)}")
            )
        else:
            setattr(cfg, key, value)
    dataset = _build_data(raw.get("data"), cfg, problems)
    _build_model(_section(raw, "model", problems), cfg, problems)
    _build_loss(raw.get("loss"), cfg, dataset is not None, problems)
    _build_optim(raw.get("optim"), cfg, problems)
    train_raw = _section(raw, "train", problems)
    _unknown_keys("train", train_raw, list(TRAIN_KEYS), problems)
    for key, ann in TRAIN_KEYS.items():
        if key in train_raw and key != "target":
            setattr(cfg.train, key, check_value(f"train.{key}", train_raw[key], ann, problems))
    if train_raw.get("target") not in (None, []):
        cfg.train.target = _targets(train_raw["target"], cfg, problems)
    if not problems:
        _check_device(cfg, problems)
        _try_components(cfg, dataset, problems)
        _try_loss(cfg, dataset, problems)
    if not problems:
        _check_memory(cfg, dataset, problems)
    if problems:
        raise UserError(problems, source)
    return cfg


def _build_data(raw: Any, cfg: Config, problems: list) -> Dataset | None:
    """The data section into `cfg.data`, and the data set built now (training reuses it), so a
    bad data setting is found before anything is written; None when it cannot be built."""
    from ..components.data import DataError, datasets, make

    comp, extra = parse_component("data", raw, datasets, problems, cfg.data.name, {"val_fraction": None})
    cfg.data.name, cfg.data.kwargs = comp.name, comp.kwargs
    default_fraction = datasets[comp.name].meta.get("val_fraction", cfg.data.val_fraction)
    fraction = extra.get("val_fraction", default_fraction)
    cfg.data.val_fraction = check_value("data.val_fraction", fraction, DATA_KEYS["val_fraction"], problems)
    if any(p.startswith("data") for p, _ in problems):
        return None
    estimate, cause = data_bytes(comp.name, comp.kwargs)
    if estimate > memory_budget():
        problems.append(
            (
                "data",
                f"needs about {estimate / 2**30:.1f} GiB to build ({cause}), more than "
                f"this machine can spare ({memory_budget() / 2**30:.1f} GiB)",
            )
        )
        return None
    try:
        seed = cfg.seed if isinstance(cfg.seed, int) and not isinstance(cfg.seed, bool) else 0
        dataset = make(comp.name, comp.kwargs, seed)
    except DataError as e:
        problems.extend(e.problems)
        return None
    except (ValueError, RuntimeError, TypeError) as e:
        problems.append(("data", f"cannot build {comp.name!r}: {e}"))
        return None
    cfg.task, cfg.n_inputs, cfg.n_outputs = dataset.task, dataset.x.shape[1], dataset.n_outputs
    n_val = int(len(dataset.x) * (cfg.data.val_fraction or 0))
    if isinstance(cfg.data.val_fraction, float) and len(dataset.x) - n_val < 1:
        problems.append(("data.val_fraction", "leaves no training examples"))
    return dataset


def _build_model(raw: dict, cfg: Config, problems: list) -> None:
    from ..components.inits import inits

    _unknown_keys("model", raw, [*MODEL_KEYS, "activation", "init", "bias_init"], problems)
    for key, ann in MODEL_KEYS.items():
        if key in raw:
            setattr(cfg.model, key, check_value(f"model.{key}", raw[key], ann, problems))
    if cfg.model.output not in OUTPUT_CHOICES:
        problems.append(
            (
                "model.output",
                f"unknown output {cfg.model.output!r}"
                f"{did_you_mean(cfg.model.output, OUTPUT_CHOICES)}; valid: {', '.join(OUTPUT_CHOICES)}",
            )
        )
    for key in ("activation", "init", "bias_init"):  # each named by the one map, `registry_at`
        default, registry = getattr(cfg.model, key).name, registry_at(("model", key))
        setattr(cfg.model, key, parse_component(f"model.{key}", raw.get(key), registry, problems, default)[0])
    if cfg.model.bias_init.name in inits and not inits[cfg.model.bias_init.name].meta.get("bias"):
        valid = [n for n in inits.names() if inits[n].meta.get("bias")]
        problems.append(
            (
                "model.bias_init",
                f"{cfg.model.bias_init.name!r} needs a 2-D weight; a bias can use: {', '.join(valid)}",
            )
        )


def _build_loss(raw: Any, cfg: Config, has_data: bool, problems: list) -> None:
    """The loss (its default follows the task) and the model output it works on."""
    from ..components.losses import default_loss, default_output, losses

    cfg.loss, _ = parse_component("loss", raw, losses, problems, default_loss(cfg.task))
    if not has_data or cfg.loss.name not in losses:
        return
    tasks = losses[cfg.loss.name].meta["tasks"]
    if cfg.task not in tasks:
        fits = [n for n in losses.names() if cfg.task in losses[n].meta["tasks"]]
        bce = " ('bce' is the cross-entropy for two classes)" if cfg.loss.name == "cross_entropy" else ""
        problems.append(
            (
                "loss.name",
                f"loss {cfg.loss.name!r} does not fit the {cfg.task} task of data set "
                f"{cfg.data.name!r}; losses for {cfg.task}: {', '.join(fits)}"
                + (bce if "bce" in fits else ""),
            )
        )
    elif cfg.model.output in OUTPUT_CHOICES:
        needed = losses[cfg.loss.name].meta.get("output")
        if cfg.model.output == "auto":
            cfg.model.output = default_output(cfg.loss.name, cfg.task)
        elif needed and cfg.model.output != needed:
            problems.append(
                (
                    "model.output",
                    f"loss {cfg.loss.name!r} needs model.output: {needed}; "
                    f"set model.output to {needed} or auto",
                )
            )
        if cfg.model.output == "softmax" and cfg.n_outputs == 1:
            problems.append(("model.output", "softmax over a single output is always 1; use sigmoid"))


def _build_optim(raw: Any, cfg: Config, problems: list) -> None:
    from ..components.optim import optimizers, schedules

    comp, extra = parse_component("optim", raw, optimizers, problems, cfg.optim.name, {"schedule": None})
    cfg.optim.name, cfg.optim.kwargs = comp.name, comp.kwargs
    default = cfg.optim.schedule.name
    cfg.optim.schedule, _ = parse_component(
        "optim.schedule", extra.get("schedule"), schedules, problems, default
    )


def _check_memory(cfg: Config, dataset: Dataset | None, problems: list) -> None:
    parts = memory_parts(cfg, dataset)
    if sum(parts.values()) > memory_budget():
        largest = max(parts, key=lambda part: parts[part])
        problems.append(
            (
                MEMORY_KEYS[largest][0],
                f"training needs about {sum(parts.values()) / 2**30:.1f} GiB, more than this "
                f"machine can spare ({memory_budget() / 2**30:.1f} GiB); most of it "
                f"({parts[largest] / 2**30:.1f} GiB) for {largest}: {MEMORY_KEYS[largest][1]}",
            )
        )


def _targets(raw: Any, cfg: Config, problems: list[tuple[str, str]]) -> list[dict]:
    """`train.target`: `{metric: ..., value: ...}` or a list of them, each on a metric this run records."""
    items = raw if isinstance(raw, list) else [raw]
    valid = target_metrics(cfg.task, cfg.model.output)
    targets = []
    for i, item in enumerate(items):
        path = f"train.target[{i}]" if isinstance(raw, list) else "train.target"
        if not isinstance(item, dict) or sorted(item) != ["metric", "value"]:
            problems.append((path, f"must be {{metric: ..., value: ...}} or a list of them, got {item!r}"))
            continue
        metric, value = item["metric"], item["value"]
        if metric not in valid:
            known = metric in target_metrics("regression", "") + target_metrics("multiclass", "softmax")
            what = (
                f"{metric!r} is not recorded for this {cfg.task} run"
                if known
                else f"unknown metric {metric!r}"
            )
            hint = did_you_mean(metric, valid)
            problems.append((f"{path}.metric", f"{what}{hint}; valid: {', '.join(valid)}"))
        if not is_number(value) or not math.isfinite(value):
            problems.append((f"{path}.value", f"must be a finite number, got {value!r}"))
        targets.append({"metric": metric, "value": float(value) if is_number(value) else value})
    return targets


def _check_device(cfg: Config, problems: list) -> None:
    if cfg.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            problems.append(
                ("device", f"{cfg.device!r} asked for, but no CUDA GPU is available here; use cpu or auto")
            )


def _try_components(cfg: Config, dataset, problems: list) -> None:
    """Call every chosen init, activation, optimizer and schedule once on tiny tensors.

    A setting that only the function itself refuses (an unknown `nonlinearity`, uniform with
    a > b, nesterov without momentum, a schedule whose factor overflows by the last step) is then
    reported here, before a run folder exists, rather than as a crash in the middle of a run.
    """
    import torch

    from ..components.activations import activations
    from ..components.inits import inits
    from ..components.optim import check_arguments, schedules

    def attempt(path, what, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ValueError, RuntimeError, TypeError, OverflowError, ZeroDivisionError) as e:
            problems.append((path, f"{what} cannot use these settings: {e}"))
            return None

    m, g = cfg.model, torch.Generator().manual_seed(0)
    for path, comp, shape in (("model.init", m.init, (3, 2)), ("model.bias_init", m.bias_init, (3,))):
        attempt(path, f"init {comp.name!r}", inits[comp.name].fn, torch.empty(shape), 2, g, **comp.kwargs)
    act = m.activation
    fn = attempt("model.activation", f"activation {act.name!r}", activations[act.name].fn, **act.kwargs)
    if fn is not None:
        attempt("model.activation", f"activation {act.name!r}", fn, torch.linspace(-3, 3, 7))
    optim = cfg.optim  # its checks only: a built optimizer would import torch._dynamo (slow)
    attempt("optim", f"optimizer {optim.name!r}", check_arguments, optim.name, optim.kwargs)
    if dataset is None:
        return
    n_train = len(dataset.x) - int(len(dataset.x) * cfg.data.val_fraction)
    n_steps = cfg.plan(n_train)[2]
    sched, lr = cfg.optim.schedule, cfg.optim.kwargs.get("lr", 1.0)
    what = f"schedule {sched.name!r}"
    for t in sorted({0, n_steps // 2, n_steps - 1}):
        factor = attempt("optim.schedule", what, schedules[sched.name].fn, t, n_steps, **sched.kwargs)
        if factor is None:
            break
        if not math.isfinite(factor * lr):
            problems.append(("optim.schedule", f"{what} gives a learning rate of {factor * lr} at step {t}"))
            break


def _try_loss(cfg: Config, dataset: Dataset | None, problems: list[tuple[str, str]]) -> None:
    """Call the chosen loss once, forward and backward, on four examples of the data set.

    A setting only the loss itself refuses, or one that makes it non-finite from the very first
    step (a `scale: 0` dividing the residual), is then reported here, before a run folder exists.
    """
    if dataset is None:
        return
    import torch

    from ..components.activations import OUTPUTS
    from ..components.losses import MULTICLASS, loss_target, mean_loss

    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    y = dataset.y[:4] if cfg.task == MULTICLASS else dataset.y[:4].to(dtype)
    y = loss_target(cfg.loss.name, y, cfg.task, cfg.n_outputs, dtype)
    z = torch.linspace(-2, 2, len(y) * cfg.n_outputs, dtype=dtype).reshape(len(y), cfg.n_outputs)
    z.requires_grad_(True)
    what = f"loss {cfg.loss.name!r}"
    try:
        with torch.enable_grad():
            loss = mean_loss(cfg.loss.name, cfg.loss.kwargs, OUTPUTS[cfg.model.output])(z, y)
            loss.backward()
    except (ValueError, RuntimeError, TypeError, OverflowError, ZeroDivisionError) as e:
        problems.append(("loss", f"{what} cannot use these settings: {e}"))
        return
    if not (torch.isfinite(loss) and z.grad is not None and torch.isfinite(z.grad).all()):
        problems.append(
            (
                "loss",
                f"{what} is {loss.item()} (or its gradient is not finite) on four examples of the data set",
            )
        )


def count_problem(value: object) -> str | None:
    """Why `value` is not a thread or worker count (an integer from 1 to 4 per core, at least 8),
    or None: the one rule for `--threads`, `--workers` and `lossbench.run(threads=)` (torch crashes
    at absurd counts)."""
    n_cores = os.cpu_count() or 1
    hi = max(8, 4 * n_cores)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= hi:
        return None
    shown = value if isinstance(value, str) else repr(value)
    shown = shown if len(shown) <= 40 else shown[:40] + "..."
    return f"must be an integer from 1 to {hi} (4 per core, at least 8; this machine has {n_cores} cores), got {shown!r}"


def load(
    path: str | None = None, overrides: Sequence[str] = (), raw: dict | None = None
) -> tuple[Config, dict, dict]:
    """Load and validate a config file (or a raw mapping) with overrides.

    Returns the run `Config`, the sweep block (empty for a single run; checked by
    `lossbench.runs.sweep`) and the raw mapping with the overrides applied.
    """
    source = path or "config"
    if path is not None:
        raw = read_yaml_file(path)
    if raw is not None and not isinstance(raw, dict):  # `false` or `0` is not an empty config
        raise UserError([("", f"a config must be a mapping of keys, got {type(raw).__name__}")], source)
    notes: list[str] = []
    raw = apply_overrides(raw or {}, list(overrides), notes)
    for note in notes:  # e.g. the keys `loss.name=bce` dropped from `loss: {name: mse, half: true}`
        print(f"lossbench: note: {note}", file=sys.stderr)
    sweep = raw.get("sweep") or {}
    base = {k: v for k, v in raw.items() if k != "sweep"}
    try:
        return build(base, source, default_name(path)), sweep, raw
    except UserError as e:  # a value typed on the command line is blamed there, not on the file
        keys = {o.split("=", 1)[0].strip() for o in overrides}
        if keys and all(k in keys for k, _ in e.problems):
            e.source = f"{source} with the override{'s' if len(keys) > 1 else ''} {', '.join(sorted(keys))}"
        raise


def default_name(path: str | None) -> str:
    """The name of a config without a `name:` key: its file's name made a valid run name ("run")."""
    name = os.path.splitext(os.path.basename(path))[0] if path else "run"
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", name)
    return re.sub(r"\.\.+", "_", name).lstrip("_.+-")[:100] or "run"
