"""Finding run folders, loading them and grouping runs for the figures (seeds of one config form a group)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from ..config.yaml_io import flatten
from ..errors import UserError
from ..runs.store import Run, RunFolderError, load_run

# Okabe & Ito (2008), ordered so the first colours are the most distinct on white; colour-blind safe.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
LINESTYLES = ["-", "--", ":", "-."]
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


def _walk_runs(path: str, levels: int) -> list[str]:
    """Run folders at `path` or below it, at most `levels` folders down (runs are not searched)."""
    if _looks_like_run(path):
        return [path]
    if levels == 0:
        return []
    return [run for child in _subfolders(path) for run in _walk_runs(child, levels - 1)]


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
    found = _walk_runs(path, levels=4)
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
    return runs


# ----- grouping runs that differ only in seed ---------------------------------------------------------


def differing_keys(
    configs: list[dict], drop=("seed",), prefer: list[str] = (), minimal: bool = True
) -> list[str]:
    """Dotted config keys whose values are not the same in all configs (`name` only when nothing else).

    With `minimal`, of keys that split the configs the same way only one is kept (a `prefer`red,
    swept one first): enough for a legend label.
    """
    flat = [flatten(c) for c in configs]
    keys = []
    for f in flat:
        keys += [k for k in f if k not in keys and k not in drop]
    differ = [k for k in keys if len({_text(f.get(k, "-")) for f in flat}) > 1]
    if len(differ) > 1 and "name" in differ:
        differ.remove("name")
    if not minimal:
        return differ
    # a key that splits the runs exactly as a preferred key does adds nothing to a label (model.output
    # follows loss.name); prefer keys every run has, and set ones over derived ones
    order = sorted(
        differ,
        key=lambda k: (k not in prefer, any(k not in f for f in flat), k in DERIVED, differ.index(k)),
    )
    kept, partitions = [], set()
    for k in order:
        part = _partition([_text(f.get(k, "-")) for f in flat])
        if part not in partitions:
            partitions.add(part)
            kept.append(k)
    return [k for k in differ if k in kept]


DERIVED = {"model.output"}  # resolved from the loss when the config leaves it out


def _partition(values: list[str]) -> tuple:
    """Which items share a value, independent of the values themselves: ["a", "b", "a"] -> (0, 1, 0)."""
    first = {}
    return tuple(first.setdefault(v, len(first)) for v in values)


def _text(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return str(v)


@dataclass
class Group:
    """Runs with the same config but the seed; `values` are the label's key -> value."""

    label: str
    runs: list[Run]
    values: dict = field(default_factory=dict)
    color: str = PALETTE[0]
    linestyle: str = "-"
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

    def mean(self, key: str):
        """(steps, mean, min, max) over the runs, NaN where no run has a finite value."""
        a = self.stacked(key)
        if a is None:
            return None
        with np.errstate(all="ignore"), _quiet():
            return self.steps, np.nanmean(a, 0), np.nanmin(a, 0), np.nanmax(a, 0)


class _quiet:
    """Silence numpy's 'mean of empty slice' warnings for all-NaN columns (they mean: no value)."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


def group_runs(runs: list[Run], by: list[str] | None = None) -> list[Group]:
    """Groups of runs differing only in seed, labelled by the keys that differ (or the `by` keys).

    Raises UserError when a `by` key is in no run's config.
    """
    flat = [flatten(r.config) for r in runs]
    if by:
        every = sorted({k for f in flat for k in f})
        for key in by:
            if key not in every:
                from ..components.registry import did_you_mean

                raise UserError(
                    [("--by", f"no run has the config key {key!r}{did_you_mean(key, every)}")], "compare"
                )
    keyed: dict[str, list[int]] = {}
    for i, f in enumerate(flat):
        ident = json.dumps({k: _text(v) for k, v in f.items() if k != "seed"}, sort_keys=True)
        keyed.setdefault(ident, []).append(i)
    members = list(keyed.values())
    firsts = [runs[m[0]].config for m in members]
    differ = differing_keys(firsts, prefer=swept_keys(runs))
    label_keys = list(by) if by else differ
    labels = [_label(flat[m[0]], label_keys) for m in members]
    if by and len(set(labels)) < len(labels):  # the --by keys alone do not tell groups apart
        label_keys = list(by) + [k for k in differ if k not in by]
        labels = [_label(flat[m[0]], label_keys) for m in members]
    groups = []
    for j, (m, label) in enumerate(zip(members, labels)):
        group_runs_ = [runs[i] for i in m]
        seeds = len(group_runs_)
        if seeds > 1:
            label = f"{label} ({seeds} seeds)" if label else f"{seeds} seeds"
        groups.append(
            Group(
                label=label or _default_label(group_runs_[0]),
                runs=group_runs_,
                values={k: flat[m[0]].get(k) for k in label_keys},
                color=PALETTE[j % len(PALETTE)],
                linestyle=LINESTYLES[(j // len(PALETTE)) % len(LINESTYLES)],
            )
        )
    return groups


def swept_keys(runs: list[Run]) -> list[str]:
    """The keys a sweep varied, from the `swept` list of each run's sweep folder's sweep.yaml (if any)."""
    import yaml

    keys = []
    for parent in dict.fromkeys(os.path.dirname(os.path.normpath(r.path)) for r in runs):
        try:
            with open(os.path.join(parent, "sweep.yaml")) as f:
                swept = (yaml.safe_load(f) or {}).get("swept") or []
        except (OSError, yaml.YAMLError, AttributeError):
            continue  # a label preference only: without it the labels are still right, only longer
        keys += [k for k in swept if isinstance(k, str) and k not in keys]
    return keys


def _label(flat: dict, keys: list[str]) -> str:
    return ", ".join(f"{k}={_text(flat.get(k, '-'))}" for k in keys)


def _default_label(run: Run) -> str:
    return str(run.config.get("name") or os.path.basename(run.path))
