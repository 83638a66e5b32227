"""`key.path=value` overrides applied to a raw config mapping."""

from __future__ import annotations

import copy
from typing import Any

from ..components.registry import Registry
from ..errors import UserError
from .yaml_io import parse_yaml

# ----- overrides ------------------------------------------------------------------------------

COMPONENT_KEYS = (
    ("data",),
    ("loss",),
    ("optim",),
    ("model", "activation"),
    ("model", "init"),
    ("model", "bias_init"),
    ("optim", "schedule"),
)
"""The config paths that name a component (a name, or a mapping of `name` and its keywords);
`registry_at` gives the registry of each: the one map from config path to registry."""


# keys of a component's section that belong to the section, not to the registered function
SECTION_KEYS = {("data",): {"val_fraction"}, ("optim",): {"schedule"}}


def registry_at(path: tuple) -> Registry:
    """The registry that names the components at config `path` (imported late: it loads torch)."""
    from ..components.activations import activations
    from ..components.data import datasets
    from ..components.inits import inits
    from ..components.losses import losses
    from ..components.optim import optimizers, schedules

    return {
        ("data",): datasets,
        ("loss",): losses,
        ("optim",): optimizers,
        ("model", "activation"): activations,
        ("model", "init"): inits,
        ("model", "bias_init"): inits,
        ("optim", "schedule"): schedules,
    }[path]


def component_defaults(resolved: dict) -> dict[str, dict]:
    """Each named component's keyword defaults, by dotted config path: `{"loss": {"delta": 1.0}}`.

    A run records them in its summary, so that labels can leave out what is at its default
    without importing the registries (and torch) to find out.
    """
    out = {}
    for path in sorted(COMPONENT_KEYS):
        node: object = resolved
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        name = node.get("name") if isinstance(node, dict) else node
        registry = registry_at(path)
        if isinstance(name, str) and name in registry:
            out[".".join(path)] = registry[name].defaults()
    return out


def _drop_foreign_keys(path: tuple, node: dict, old_name, new_name, notes: list) -> None:
    """After `<path>.name=<new_name>`: remove the old component's keys the new one does not take.

    `loss.name=bce` on `loss: {name: mse, half: true}` would otherwise be refused for `half`; a
    learner changing the name means "this component instead", so its settings go, with a note.
    """
    if old_name == new_name or not isinstance(new_name, str):
        return
    registry = registry_at(path)
    if new_name not in registry:
        return  # validation names the unknown component and its choices
    keep = {"name", *registry[new_name].params(), *SECTION_KEYS.get(path, ())}
    dropped = [k for k in node if k not in keep]
    for k in dropped:
        del node[k]
    if dropped:
        where = ".".join(path)
        notes.append(
            f"{where}.name={new_name} drops {', '.join(f'{where}.{k}' for k in dropped)}: "
            f"{registry.kind} {new_name!r} does not take {'it' if len(dropped) == 1 else 'them'}"
            f" (it takes: {', '.join(registry[new_name].params()) or 'no keys'})"
        )


def set_dotted(raw: dict, key: str, value: Any, notes: list | None = None) -> None:
    """Set dotted `key` in `raw` to `value`: the one setter of overrides and sweep axes.

    The mappings on the way are copied (never shared with another grid point), a component given
    as a name becomes `{name: ...}` (`loss.delta=2` on `loss: huber`), and a component's new name
    drops the keys it does not take, with a line in `notes` (see `_drop_foreign_keys`). Raises
    ValueError when a key on the way holds a value that is not a mapping.
    """
    node, parts = raw, key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if isinstance(child, str) and tuple(parts[: i + 1]) in COMPONENT_KEYS:
            child = {"name": child}
        elif child is None:
            child = {}
        elif not isinstance(child, dict):
            raise ValueError(f"{'.'.join(parts[: i + 1])} is {child!r}, not a mapping")
        else:
            child = dict(child)
        node[part] = child
        node = child
    old = node.get(parts[-1])
    node[parts[-1]] = copy.deepcopy(value)
    if parts[-1] == "name" and tuple(parts[:-1]) in COMPONENT_KEYS:
        _drop_foreign_keys(tuple(parts[:-1]), node, old, value, [] if notes is None else notes)


def apply_overrides(raw: dict, overrides: list[str], notes: list | None = None) -> dict:
    """`raw` with `key.path=value` overrides applied (values parsed as YAML), as a new dict.

    `sweep.<dotted key>=[...]` sets a sweep axis; overriding a swept key with a single value fixes
    it (the axis is dropped) and with a list replaces the axis. A component's new name drops the
    keys it does not take; `notes` (when given) receives one line saying which.
    """
    notes = [] if notes is None else notes
    raw = copy.deepcopy(raw) if raw else {}
    problems = []
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            problems.append((item, "an override must look like key.path=value, e.g. model.depth=4"))
            continue
        if not text.strip():  # `model=` would silently reset the whole section to its defaults
            problems.append(
                (key, f"has no value after '='; write {key}=null to reset it to its default, or give a value")
            )
            continue
        try:
            value = parse_yaml(text, f"override {key}")
        except UserError as e:
            problems.append((key, e.problems[0][1]))
            continue
        sweep = raw.get("sweep") if isinstance(raw.get("sweep"), dict) else None
        if key.startswith("sweep."):
            raw.setdefault("sweep", {})
            if not isinstance(raw["sweep"], dict):
                problems.append((key, "sweep must be a mapping of dotted keys to lists"))
                continue
            raw["sweep"][key[len("sweep.") :]] = value
            continue
        if sweep is not None and key in sweep:
            if isinstance(value, list):
                sweep[key] = value
                continue
            del sweep[key]
        try:
            set_dotted(raw, key, value, notes)
        except ValueError as e:
            problems.append((key, str(e)))
    if problems:
        raise UserError(problems, "overrides")
    return raw
