"""`key.path=value` overrides applied to a raw config mapping."""

from __future__ import annotations

import copy

from ..errors import UserError
from .yaml_io import parse_yaml

# ----- overrides ------------------------------------------------------------------------------

COMPONENT_KEYS = {
    ("data",),
    ("loss",),
    ("optim",),
    ("model", "activation"),
    ("model", "init"),
    ("model", "bias_init"),
    ("optim", "schedule"),
}


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """`raw` with `key.path=value` overrides applied (values parsed as YAML), as a new dict.

    `sweep.<dotted key>=[...]` sets a sweep axis; overriding a swept key with a single value fixes
    it (the axis is dropped) and with a list replaces the axis.
    """
    raw = copy.deepcopy(raw) if raw else {}
    problems = []
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            problems.append((item, "an override must look like key.path=value, e.g. model.depth=4"))
            continue
        try:
            value = parse_yaml(text, f"override {key}") if text.strip() else None
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
        node = raw
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if isinstance(child, str) and tuple(parts[: i + 1]) in COMPONENT_KEYS:
                child = {"name": child}  # `loss.delta=2` on `loss: huber`
            elif child is None:
                child = {}
            elif not isinstance(child, dict):
                problems.append((key, f"{'.'.join(parts[: i + 1])} is {child!r}, not a mapping"))
                break
            node[part] = child
            node = child
        else:
            node[parts[-1]] = value
    if problems:
        raise UserError(problems, "overrides")
    return raw
