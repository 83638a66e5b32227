"""Finding run folders, loading them and grouping runs for the figures (seeds of one config form a group)."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config.overrides import COMPONENT_KEYS
from ..config.yaml_io import flatten
from ..errors import UserError
from ..runs.store import (
    MAX_METRICS_BYTES,
    Run,
    RunFolderError,
    load_run,
    read_bounded,
    read_swept,
)
from ..verdicts import seed_interval
from .style import LINESTYLES, MARKERS, PALETTE, styles  # noqa: F401 (figures import them from here)

MAX_PANELS = 12  # per-group panels (heat maps, task pictures); more groups are named in the title
SKIP_DIRS = {"figures", "report", "tensorboard", "compare"}
LAYER_LABEL = "layer (1 = next to the input, last = output layer)"


# ----- finding and loading run folders ---------------------------------------------------------------


def is_run_folder(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "config.yaml")) and os.path.isfile(
        os.path.join(path, "metrics.jsonl")
    )


def _looks_like_run(path: str) -> bool:
    """A folder holding any run file: a run, possibly with files missing (load_run says which)."""
    return any(
        os.path.isfile(os.path.join(path, f)) for f in ("config.yaml", "metrics.jsonl", "summary.json")
    )


def _walk_runs(path: str, levels: int, root: str) -> list[str]:
    """Run folders at `path` or below it, at most `levels` folders down (runs are not searched),
    never leaving `root` (a real path): a symbolic link to a folder outside it (`up -> ..`) is not
    followed."""
    if _looks_like_run(path):
        return [path]
    if levels == 0:
        return []
    children = [c for c in _subfolders(path) if not os.path.islink(c) or _within(os.path.realpath(c), root)]
    return [run for child in children for run in _walk_runs(child, levels - 1, root)]


def _within(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def find_run_folders(path: str) -> list[str]:
    """The run folders at `path`: itself, or below it (a sweep folder, a results root, a reproduce
    output folder), up to four levels down.

    Raises UserError naming the path when there is none.
    """
    if not os.path.exists(path):
        raise UserError([("", "does not exist")], path)
    if not os.path.isdir(path):
        raise UserError(
            [("", "is not a folder; give a run folder, a sweep folder or a results folder")], path
        )
    found = _walk_runs(path, 4, os.path.realpath(path))
    if not found:
        raise UserError(
            [
                (
                    "",
                    "holds no run folder (a folder with config.yaml and metrics.jsonl); give a run folder "
                    "results/<name>/<run_id>, a sweep folder results/<name> or a results folder",
                )
            ],
            path,
        )
    return found


def _subfolders(path: str) -> list[str]:
    names = sorted(n for n in os.listdir(path) if n not in SKIP_DIRS and not n.startswith("."))
    return [os.path.join(path, n) for n in names if os.path.isdir(os.path.join(path, n))]


def load_runs(paths: list[str]) -> list[Run]:
    """Every run under `paths`, each metrics file read once. Damaged folders raise UserError."""
    runs, seen = [], set()
    for path in paths:
        for folder in find_run_folders(path):
            real = os.path.realpath(folder)
            if real in seen:
                continue
            seen.add(real)
            run = load_run(folder)
            if len(run.metrics.get("step", [])) == 0:
                raise RunFolderError(
                    [("metrics.jsonl", "holds no metrics rows (truncated or empty)")], folder
                )
            runs.append(run)
    remember_defaults(runs)
    return runs


def by_folder(runs: list[Run]) -> dict[str, list[Run]]:
    """The runs by the folder that holds them (a sweep, a run name), in order: a results folder's
    parts, each drawn and reported on its own."""
    out: dict[str, list[Run]] = {}
    for r in runs:
        out.setdefault(os.path.dirname(os.path.normpath(r.path)) if len(runs) > 1 else r.path, []).append(r)
    return out


# ----- label terms: a component is one term ----------------------------------------------------------

COMPONENTS = tuple(".".join(path) for path in COMPONENT_KEYS)
"""Config paths holding a named component (dotted): a name, or a mapping of `name` and its arguments."""

UNSET = "unset"  # the text of a key a config does not have
DERIVED = {"model.output"}  # resolved from the loss when the config leaves it out


def _node(config: dict, path: str, missing: object = None):
    node = config
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return missing
        node = node[part]
    return node


def _name_of(node) -> str | None:
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and isinstance(node.get("name"), str):
        return node["name"]
    return None


def _owner(key: str) -> str | None:
    """The component whose setting `key` is (`optim` for optim.lr, `optim.schedule` for its gamma)."""
    owners = [c for c in COMPONENTS if key.startswith(c + ".")]
    return max(owners, key=len) if owners else None


def terms(config: dict) -> dict:
    """The config's keys for labels: plain keys flattened (`model.depth`), each component as its name
    at its own path (`model.init` -> `normal`, whether written as a name or a mapping) and its
    settings below it (`model.init.std`)."""
    out = {}

    def walk(node: dict, prefix: str) -> None:
        for k, v in node.items():
            key = f"{prefix}{k}"
            if key in COMPONENTS and _name_of(v) is not None:
                out[key] = _name_of(v)
                if isinstance(v, dict):
                    walk({a: b for a, b in v.items() if a != "name"}, key + ".")
            elif isinstance(v, dict):
                walk(v, key + ".")
            else:
                out[key] = v

    walk(config, "")
    return out


def component_text(path: str, node: Any) -> str:
    """A component as one label term: its name and the arguments set away from their defaults,
    `normal(std=2)`; `xavier_uniform`, not `-`, when all are defaults."""
    name = _name_of(node)
    if name is None:
        return _text(node)
    if not isinstance(node, dict):
        return name
    params = _params(path, name)
    nested = {c[len(path) + 1 :] for c in COMPONENTS if c.startswith(path + ".")}
    args = {
        k: v
        for k, v in node.items()
        if k != "name" and k not in nested and (params is None or (k in params and params[k] != _text(v)))
    }
    return f"{name}({', '.join(f'{k}={_text(v)}' for k, v in args.items())})" if args else name


RECORDED_DEFAULTS: dict[tuple[str, str], dict] = {}
"""(config path, component name) -> its keyword defaults, as the runs loaded so far recorded them
(`summary.json`'s `defaults`): labels read them instead of the registries, which load torch."""


def remember_defaults(runs: list[Run]) -> None:
    """Note the component defaults each run recorded (`RECORDED_DEFAULTS`)."""
    for run in runs:
        recorded = (run.summary or {}).get("defaults")
        for path, defaults in recorded.items() if isinstance(recorded, dict) else ():
            name = _name_of(_node(run.config, path)) if path in COMPONENTS else None
            if name is not None and isinstance(defaults, dict):
                RECORDED_DEFAULTS[path, name] = defaults


def _params(path: str, name: str) -> dict | None:
    """The component's keyword arguments and the text of their defaults, as a run recorded them;
    None when no run loaded here did (a run still training, or a foreign one): then every argument
    is shown. Where torch is loaded anyway (watch), the registry says the same."""
    defaults = RECORDED_DEFAULTS.get((path, name))
    if defaults is None and "torch" in sys.modules:
        from ..config.overrides import registry_at

        registry = registry_at(tuple(path.split(".")))
        defaults = registry[name].defaults() if name in registry else None
    return None if defaults is None else {k: _text(v) for k, v in defaults.items()}


def value_text(config: dict, key: str) -> str:
    """The text of `key` in a config: a component as one term, `P.name` as the component's name,
    another key's value; `unset` when the config does not have it."""
    if key in COMPONENTS:
        node = _node(config, key)
        return UNSET if node is None else component_text(key, node)
    head, _, last = key.rpartition(".")
    if last == "name" and head in COMPONENTS:
        return _name_of(_node(config, head)) or UNSET
    node = _node(config, key, missing=UNSET)
    return UNSET if node is UNSET else _text(node)


def known_keys(configs: list[dict]) -> list[str]:
    """Every key `value_text` can read from these configs (for --by and its "did you mean")."""
    keys = {k for c in configs for k in [*flatten(c), *terms(c)]}
    keys |= {f"{c}.name" for c in COMPONENTS if any(_node(cfg, c) is not None for cfg in configs)}
    return sorted(keys)


def differing_keys(
    configs: list[dict], drop: Sequence[str] = ("seed",), prefer: Sequence[str] = ()
) -> list[str]:
    """The keys whose values differ between configs, as label terms: a component whose name differs
    is one key (its arguments are in its text), one whose arguments alone differ gives a key per
    argument (`optim.lr`). `name` only when nothing else differs; `model.output` only when it does
    not just follow another differing key (the loss). `prefer`red (swept) keys come first."""
    all_terms = [terms(c) for c in configs]
    keys = []
    for t in all_terms:
        keys += [k for k in t if k not in keys and k not in drop]
    texts = {k: [value_text(c, k) for c in configs] for k in keys}
    differ = [k for k in keys if len(set(texts[k])) > 1]
    renamed = {k for k in differ if k in COMPONENTS and len({_name_of(_node(c, k)) for c in configs}) > 1}
    # a renamed component is one term (its arguments are in its text); one whose arguments alone
    # differ is named by those arguments
    differ = [k for k in differ if (k in renamed) or (k not in COMPONENTS and _owner(k) not in renamed)]
    if len(differ) > 1 and "name" in differ:
        differ.remove("name")
    for k in [k for k in differ if k in DERIVED and k not in prefer]:
        # a derived value (an `auto` output follows the loss) adds nothing to a label where another
        # differing key fixes it, and never leads one (it is not what the user compared)
        differ.remove(k)
        if not any(_follows(texts[k], texts[o]) for o in differ):
            differ.append(k)
    prefer = [k[: -len(".name")] if k.endswith(".name") and k[:-5] in COMPONENTS else k for k in prefer]
    first = [k for k in prefer if k in differ]
    return first + [k for k in differ if k not in first]


def _follows(derived: list[str], other: list[str]) -> bool:
    """Whether each value of `other` comes with one value of `derived` (bce -> sigmoid, mse -> identity)."""
    seen: dict[str, str] = {}
    return all(seen.setdefault(o, d) == d for o, d in zip(other, derived))


def _text(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return str(v)


def _natural(text: str) -> tuple:
    """A sort key that puts numbers in numeric order (2 before 10) and texts alphabetically."""
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


# ----- grid order, from the sweep's table -------------------------------------------------------------


def grid_positions(runs: list[Run]) -> dict[str, int]:
    """Each run's place in its sweep's grid (the row order of the sweep folder's runs.csv), by path.

    Runs outside a sweep, or of a sweep that never finished its table, are not in it.
    """
    import csv

    out = {}
    parents = dict.fromkeys(os.path.dirname(os.path.normpath(r.path)) for r in runs)
    for p, parent in enumerate(parents):
        try:  # bounded, and a FIFO is refused rather than waited on
            text = read_bounded(os.path.join(parent, "runs.csv"), MAX_METRICS_BYTES).decode(
                "utf-8", "replace"
            )
            ids = [row[0] for row in csv.reader(text.splitlines())][1:]
        except (OSError, UserError, csv.Error, IndexError):
            continue  # an order preference only: the groups are then sorted by their values
        for i, run_id in enumerate(ids):
            out[os.path.join(parent, run_id)] = p * 1_000_000 + i
    return {r.path: out[os.path.normpath(r.path)] for r in runs if os.path.normpath(r.path) in out}


@dataclass
class Group:
    """Runs with the same config but the seed; `values` are the label's key -> value."""

    label: str
    runs: list[Run]
    values: dict = field(default_factory=dict)
    color: str = PALETTE[0]
    linestyle: str = "-"
    marker: str | None = None
    swept: tuple[str, ...] = ()  # the keys the runs' sweep varied (but the seed), in grid order
    by: tuple[str, ...] = ()  # the keys the label names (--by); `values` may hold more (line styles)
    also: tuple[str, ...] = ()  # the other keys that differ between the groups (named in titles)
    _cache: dict = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return f"Group({self.label!r}, {len(self.runs)} runs)"

    @property
    def steps(self) -> np.ndarray:
        """The union of the logged steps of the group's runs."""
        if "steps" not in self._cache:
            self._cache["steps"] = np.unique(np.concatenate([r.metrics["step"] for r in self.runs]))
        return self._cache["steps"]

    def stacked(self, key: str) -> np.ndarray | None:
        """Metric `key` of every run on the group's steps: [n_runs, n_steps(, n_layers)], NaN where absent."""
        if key in self._cache:
            return self._cache[key]
        present = [r for r in self.runs if key in r.metrics]
        if not present:
            return None
        steps = self.steps
        shape = present[0].metrics[key].shape[1:]
        out = np.full((len(self.runs), len(steps), *shape), np.nan)
        for i, r in enumerate(self.runs):
            if key in r.metrics and r.metrics[key].shape[1:] == shape:
                values = np.where(np.isfinite(r.metrics[key]), r.metrics[key], np.nan)
                out[i, np.searchsorted(steps, r.metrics["step"])] = values
        self._cache[key] = out
        return out

    def mean(self, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """(steps, mean, min, max) over the runs, NaN where no run has a finite value."""
        a = self.stacked(key)
        if a is None:
            return None
        with np.errstate(all="ignore"), _quiet():
            return self.steps, np.nanmean(a, 0), np.nanmin(a, 0), np.nanmax(a, 0)

    def interval(self, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """(steps, mean, lo, hi) over the runs: the mean and its 95% Student-t interval at each step
        (`verdicts.seed_interval`; lo and hi NaN where fewer than two runs have a finite value)."""
        a = self.stacked(key)
        if a is None:
            return None
        mean, lo, hi, _ = seed_interval(a)
        return self.steps, mean, lo, hi


class _quiet:
    """Silence numpy's 'mean of empty slice' warnings for all-NaN columns (they mean: no value)."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


def group_runs(runs: list[Run], by: list[str] | None = None, swept: list[str] | None = None) -> list[Group]:
    """Groups of runs differing only in seed, labelled by the keys that differ (or the `by` keys),
    in the sweep's grid order (else sorted by their values), each with a colour, line style and
    marker it keeps in every figure drawn from these groups (`style.styles`).

    `swept`: the keys a sweep varied when the runs are given in its grid order (watch trains a sweep
    without a sweep folder); by default both are read from the runs' sweep folders (sweep.yaml, runs.csv).

    Raises UserError when a `by` key is in no run's config.
    """
    remember_defaults(runs)
    configs = [r.config for r in runs]
    if by:
        every = known_keys(configs)
        for key in by:
            if key not in every:
                from ..components.registry import did_you_mean

                raise UserError(
                    [("--by", f"no run has the config key {key!r}{did_you_mean(key, every)}")], "compare"
                )
    keyed: dict[str, list[int]] = {}
    for i, c in enumerate(configs):
        ident = json.dumps({k: _text(v) for k, v in flatten(c).items() if k != "seed"}, sort_keys=True)
        keyed.setdefault(ident, []).append(i)
    members = list(keyed.values())
    firsts = [configs[m[0]] for m in members]
    if swept is None:
        swept, grid = swept_keys(runs), grid_positions(runs)
    else:
        grid = {r.path: i for i, r in enumerate(runs)}
    differ = differing_keys(firsts, prefer=swept)
    # --by names the label (and the hue); the other differing keys still set line style and marker,
    # and are named in a label only where --by alone does not tell two configs apart
    label_keys = list(by) + _beyond(firsts, by, differ) if by else differ
    values = [{k: value_text(c, k) for k in label_keys} for c in firsts]
    shown = list(by) if by else label_keys
    also = [k for k in label_keys if k not in shown]
    also += [k for k in differ if k not in shown + also and f"{k}.name" not in shown]  # named in the title
    named = [tuple(v[k] for k in shown) for v in values]
    order = sorted(
        range(len(members)),
        key=lambda j: (
            min((grid.get(runs[i].path, math.inf) for i in members[j]), default=math.inf),
            [_natural(values[j][k]) for k in label_keys],
        ),
    )
    looks = styles([values[j] for j in order], label_keys)
    groups = []
    for (color, linestyle, marker), j in zip(looks, order):
        group_runs_ = [runs[i] for i in members[j]]
        label = ", ".join(f"{k}={values[j][k]}" for k in shown)
        if named.count(named[j]) > 1:
            label += " (" + ", ".join(f"{k}={v}" for k, v in values[j].items() if k not in shown) + ")"
        if len(group_runs_) > 1:
            label = f"{label} ({len(group_runs_)} seeds)" if label else f"{len(group_runs_)} seeds"
        groups.append(
            Group(
                label=label or _default_label(group_runs_[0]),
                runs=group_runs_,
                values=values[j],
                color=color,
                linestyle=linestyle,
                marker=marker,
                swept=tuple(k for k in swept if k != "seed"),
                by=tuple(shown),
                also=tuple(also),
            )
        )
    return groups


def _beyond(configs: list[dict], by: Sequence[str], differ: list[str]) -> list[str]:
    """The differing keys that tell apart configs the `by` keys do not (`loss` adds nothing to
    `loss.name` unless two losses of one name differ in their arguments)."""
    same: dict[tuple, list[dict]] = {}
    for c in configs:
        same.setdefault(tuple(value_text(c, k) for k in by), []).append(c)
    return [
        k for k in differ
        if k not in by and any(len({value_text(c, k) for c in cs}) > 1 for cs in same.values())
    ]  # fmt: skip


def swept_keys(runs: list[Run]) -> list[str]:
    """The keys a sweep varied, from the `swept` list of each run's sweep folder's sweep.yaml (if any)."""
    keys: list[str] = []
    for parent in dict.fromkeys(os.path.dirname(os.path.normpath(r.path)) for r in runs):
        keys += [k for k in read_swept(parent) if k not in keys]
    return keys


def _default_label(run: Run) -> str:
    return str(run.config.get("name") or os.path.basename(run.path))
