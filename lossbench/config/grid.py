"""The grid of a sweep: a config's `sweep:` block expanded into validated configs, one per point.

A `sweep:` block maps dotted config keys to lists of values, plus `seeds: N` (seeds
seed..seed+N-1) or `seeds: [..]`; the grid is their product, seeds innermost:

    sweep: {model.activation: [sigmoid, tanh, relu], model.depth: [2, 5], seeds: 5}

Each point is set with the overrides' own setter (`overrides.set_dotted`) and validated by
`validate.build` before anything trains; running the members is `lossbench.runs.sweep`'s job.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import yaml

from .. import progress as progress_bar
from ..errors import UserError
from .overrides import set_dotted
from .schema import SEED_MAX, Config, Seed
from .validate import build, check_value, default_name
from .yaml_io import flatten

SWEEP_LIMIT = 5000
"""Largest grid run without `--allow-large`: a bigger one is more likely a typo than a plan."""
HARD_LIMIT = 100_000
"""Largest grid run at all, `--allow-large` or not: each run is a folder of files, and the grid's
configs are held in memory while it is validated (10^12 points took 7 GB before failing)."""
MAX_PROBLEMS = 20


def _fmt(value) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(", ", ": "))
    return str(value)


def _point_text(point) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in point)


def _related(path: str, key: str) -> bool:
    return path == key or path.startswith(key + ".") or key.startswith(path + ".")


def _axes(sweep: dict, base: dict, problems: list) -> tuple[list, Sequence[int] | None]:
    """The sweep block as [(key, values)] and the seeds (None: each member keeps the config's seed;
    `seeds: N` is a range, counted before any list is built)."""
    axes: list = []
    seeds: Sequence[int] | None = None
    for key, values in sweep.items():
        path = f"sweep.{key}"
        if key == "seeds":
            base_seed = base.get("seed", 0)
            if isinstance(values, int) and not isinstance(values, bool):
                if values < 1:
                    problems.append((path, f"must be at least 1, got {values}"))
                elif isinstance(base_seed, int) and not isinstance(base_seed, bool):
                    seeds = range(base_seed, base_seed + values)
                    if seeds[-1] > SEED_MAX:  # every member's seed must be valid on its own
                        problems.append(
                            (
                                path,
                                f"{values} seeds from seed {base_seed} reach {seeds[-1]}, past the largest "
                                f"seed {SEED_MAX}; give fewer seeds or a smaller seed",
                            )
                        )
            elif isinstance(values, list) and values:
                seeds = []
                for v in values:
                    seeds.append(check_value(path, v, Seed, problems))
                if len(set(map(repr, seeds))) != len(seeds):
                    problems.append((path, f"lists a seed twice: {values}"))
            else:
                problems.append(
                    (
                        path,
                        f"must be a number of seeds N (seeds seed..seed+N-1) or a non-empty list of "
                        f"integer seeds, got {values!r}",
                    )
                )
            continue
        if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
            problems.append(("sweep", f"{key!r} is not a dotted config key like model.depth"))
            continue
        if key.split(".")[0] == "name":
            problems.append((path, "cannot be swept: every member of a sweep shares its name and folder"))
            continue
        if key.split(".")[0] == "sweep":
            problems.append(
                (path, "a sweep cannot sweep its own block (no nested sweeps); put its keys in sweep: itself")
            )
            continue
        if key == "seed" and "seeds" in sweep:
            problems.append((path, "give either seed or seeds, not both"))
            continue
        if not isinstance(values, list):
            problems.append(
                (
                    path,
                    f"must be a list of values to try, got {values!r}; a single value belongs in the config",
                )
            )
            continue
        if not values:
            problems.append((path, "is an empty list; give at least one value"))
            continue
        texts = [json.dumps(v, sort_keys=True, default=str) for v in values]
        twice = sorted({t for t in texts if texts.count(t) > 1})
        if twice:
            problems.append((path, f"lists {', '.join(twice)} more than once"))
            continue
        axes.append((key, values))
    for (a, _), (b, _) in itertools.combinations(axes, 2):
        if _related(a, b):
            problems.append((f"sweep.{b}", f"overlaps sweep.{a}; sweep one of them"))
    return axes, seeds


def expand(
    raw: dict,
    source: str = "config",
    allow_large: bool = False,
    progress: bool = False,
    notes: list[str] | None = None,
) -> list[Config]:
    """Every member of a raw config's sweep as a validated `Config`, in grid order (seeds innermost).

    Raises UserError naming the key path and the offending grid point for: a sweep that is not a
    mapping of lists, an empty list, an unknown key, a wrong type, a combination no valid config
    allows, two grid points giving one config, or a grid above `SWEEP_LIMIT` runs (unless
    `allow_large`). With `progress`, a bar counts the grid points on a terminal. `notes` (when
    given) receives each line the setter writes once (a component's new name drops its old keys).
    """
    axes, seeds, base = _check_block(raw, source, allow_large)
    said: list[str] = []
    problems: list[tuple[str, str]] = []
    name = default_name(source if os.path.isfile(source) else None)  # as `validate.load` names it
    configs: list[Config] = []
    seen: dict[str, list] = {}  # the config (as canonical JSON) -> the grid point that gave it
    found: dict[tuple[str, str], list] = {}  # (key path, message) -> the first grid point with it
    grid = itertools.product(*[v for _, v in axes])  # lazily: its size was checked from the counts
    n_points = math.prod(len(v) for _, v in axes)
    for values in progress_bar.bar(n_points, "validate", "point", progress, grid):
        point = list(zip([k for k, _ in axes], values))
        point_raw = copy.deepcopy(base)
        try:
            for key, value in point:
                try:
                    set_dotted(point_raw, key, value, said)
                except ValueError as e:
                    raise UserError([(key, str(e))], source) from None
            cfg = build(point_raw, source, name)
        except UserError as e:
            for path, msg in e.problems:
                keys = [k for k, _ in point if _related(path, k)]
                where = f"sweep.{path}" if keys and path == keys[0] else path
                found.setdefault((where, msg), point)
            continue
        members = []
        for seed in seeds or [cfg.seed]:
            member = copy.deepcopy(cfg)
            member.seed = seed
            members.append(member)
        for member in members:
            same = json.dumps(member.to_dict(), sort_keys=True, default=str)
            if same in seen:
                problems.append(
                    (
                        "sweep",
                        f"grid points {_point_text(seen[same])} and {_point_text(point)} give the "
                        f"same config (seed {member.seed}); remove one of the values",
                    )
                )
            seen[same] = point
        configs += members
    for (where, msg), point in list(found.items())[:MAX_PROBLEMS]:
        problems.append((where, f"{msg} (grid point {_point_text(point) or 'the base config'})"))
    if len(found) > MAX_PROBLEMS:
        problems.append(("sweep", f"... and {len(found) - MAX_PROBLEMS} more problems"))
    if problems:
        raise UserError(problems, source)
    if notes is not None:
        notes += dict.fromkeys(said)  # once each, not once per grid point
    return configs


def _check_block(raw: Any, source: str, allow_large: bool) -> tuple[list, Sequence[int] | None, dict]:
    """The sweep block's axes and seeds, and the config without it; UserError for a bad block."""
    if not isinstance(raw, dict):
        raise UserError([("", f"a config must be a mapping of keys, got {type(raw).__name__}")], source)
    sweep = raw.get("sweep")
    if not isinstance(sweep, dict) or not sweep:
        raise UserError(
            [
                (
                    "sweep",
                    f"must be a mapping of dotted config keys to lists, e.g. "
                    f"{{model.depth: [2, 5], seeds: 3}}; got {sweep!r}",
                )
            ],
            source,
        )
    base = {k: v for k, v in raw.items() if k != "sweep"}
    problems: list[tuple[str, str]] = []
    axes, seeds = _axes(sweep, base, problems)
    if problems:
        raise UserError(problems, source)
    n = math.prod(len(v) for _, v in axes) * (len(seeds) if seeds is not None else 1)
    if n > SWEEP_LIMIT:
        sizes = " x ".join([str(len(v)) for _, v in axes] + ([f"{len(seeds)} seeds"] if seeds else []))
        what = (
            f"more than lossbench runs at all ({HARD_LIMIT}, --allow-large or not); split it into several sweeps"
            if n > HARD_LIMIT
            else f"more than the limit of {SWEEP_LIMIT}; check it for a mistake, or pass --allow-large to run it"
        )
        if n > HARD_LIMIT or not allow_large:
            raise UserError([("sweep", f"the grid has {n} runs ({sizes}), {what}")], source)
    return axes, seeds, base


def swept_keys(sweep: dict) -> list[str]:
    """The dotted keys a sweep varies (`seed` for `seeds`)."""
    return ["seed" if k == "seeds" else k for k in sweep]


def lookup(resolved: dict, key: str) -> Any:
    """The value at dotted `key` in a resolved config (`model.activation.name` of `relu` is relu)."""
    node = resolved
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, str) and part == "name":
            return node
        else:
            return None
    if isinstance(node, dict) and "name" in node:
        extra = ", ".join(f"{k}={_fmt(v)}" for k, v in node.items() if k != "name")
        return f"{node['name']}({extra})" if extra else node["name"]
    return node


def fixed_part(resolved: dict, swept: list[str]) -> dict:
    """The resolved config's keys that the sweep does not vary (name and seed aside), flattened."""
    flat = flatten(resolved)
    skip = [*swept, "name", "seed"]
    fixed = {k: v for k, v in flat.items() if not any(_related(k, s) for s in skip)}
    return yaml.safe_load(yaml.safe_dump(fixed))  # as it reads back from sweep.yaml
