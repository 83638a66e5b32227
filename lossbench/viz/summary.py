"""The sweep summary: the result a sweep is run for, against each swept key.

For `configs/sweep_activations.yaml` one panel reads "gradient ratio against depth, one line per
activation": the thing the sweep was run to see, which twenty-seven loss curves on one axis hide.
Rows are results (the final validation metric, the first/last gradient ratio, steps to the target
when one is set), columns the swept keys (their values in grid order on x), one line per value of
the other swept keys; each point is the mean over seeds of the runs' summaries, the bar its 95%
Student-t interval (`verdicts.seed_interval`) and, for steps to a target, "k/n" says how many of
the n seeds reached it. With one seed the figure says that differences may be chance.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from ..config.schema import higher_is_better
from ..verdicts import seed_interval
from .canvas import _figure, _notes, _seeds, _suptitle, _wants_log, _wrap
from .curves import run_targets, target_metric
from .load import MARKERS, PALETTE, Group, _natural, value_text
from .metrics import METRICS, base, choose_metric, lacking_note, losses_differ, task_of

if TYPE_CHECKING:  # matplotlib loads on first use
    from matplotlib.figure import Figure

    from ..runs.store import Run


def sweep_axes(groups: list[Group]) -> list[tuple[str, list[str]]]:
    """(key, its values in grid order) for every key the sweep varied that takes two values or more
    here; none outside a sweep (a comparison of separate runs has no axes to read a result along)."""
    out = []
    for key in groups[0].swept if groups else ():
        values = list(dict.fromkeys(value_text(g.runs[0].config, key) for g in groups))
        if len(values) > 1:
            out.append((key, values))
    return out


def results(groups: list[Group], metric: str | None = None) -> list[tuple[str, str, str]]:
    """(axis label, "summary" or "target", summary key or target metric) of each result drawn: the
    final validation metric, the gradient ratio, the steps to the target (when any run has one)."""
    name = base(choose_metric(groups, metric))
    if name == "loss" and task_of(groups) != "regression":
        name = "acc"  # one loss throughout: accuracy is the result a classifier is judged by
    summaries = [r.summary or {} for g in groups for r in g.runs]
    split = (
        "val"
        if any(s.get(f"final_val_{m}") is not None for s in summaries for m in (name, "loss"))
        else "train"
    )
    where = "validation" if split == "val" else "train"
    out = [(f"final {where} {METRICS.get(name, name).split(' (')[0]}", "summary", f"final_{split}_{name}")]
    if any(s.get("grad_ratio_first_last") is not None for s in summaries):
        label = "gradient into first / last hidden layer\nat step 0 (below 1: vanishing)"
        out.append((label, "summary", "grad_ratio_first_last"))
    target = target_metric(groups, metric)
    if target is not None and base(target) == "loss" and losses_differ(groups):
        target = None  # steps to a loss value mean different things for different losses
    if target is not None:
        values = {t["value"] for g in groups for r in g.runs for t in run_targets(r) if t["metric"] == target}
        value = f"{values.pop():g}" if len(values) == 1 else "its target"
        sign = ">=" if higher_is_better(target) else "<="
        out.append((f"steps to {target} {sign} {value}", "target", target))
    return out


def result_value(run: Run, kind: str, key: str) -> float | None:
    """The run's value of one result: a summary number, or the steps to its target on `key`."""
    if kind == "target":
        t = next((t for t in run_targets(run) if t["metric"] == key), None)
        v = None if t is None else t.get("steps_to")
    else:
        v = (run.summary or {}).get(key)
    return float(v) if isinstance(v, (int, float)) and np.isfinite(v) else None


def _recorded(run, kind: str, key: str) -> bool:
    """Whether the run's summary holds the result at all (a target never reached is recorded)."""
    if kind == "target":
        return any(t["metric"] == key for t in run_targets(run))
    return key in (run.summary or {})


def fig_sweep_summary(groups: list[Group], metric: str | None = None) -> Figure | None:
    """Each result against each swept key, one line per value of the other swept keys (see the module
    docstring). None outside a sweep, or when no swept key takes two values here."""
    runs = [r for g in groups for r in g.runs]
    axes_keys = sweep_axes(groups)
    if not axes_keys:
        return None
    rows = results(groups, metric)
    cols = axes_keys[:4]
    fig = _figure(max(4.8 * len(cols) + 0.8, 7.5), 3.4 * len(rows) + 1.2)
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    notes = []
    if rows[0][2].endswith("_loss") and losses_differ(groups):
        notes.append("units differ: the configs train different losses, each in its own units")
    target = target_metric(groups, metric)
    if target is not None and not any(kind == "target" for _, kind, _ in rows):
        notes.append(
            f"steps to the {target} target not shown: the configs train different losses, so a loss value "
            "means different things; set train.target on a shared metric (e.g. val_mse, val_acc)"
        )
    # keys that tell the compared configs apart beyond the swept ones (two sweeps of different epochs
    # compared) get lines of their own: their runs are never pooled as if they were seeds
    swept = [k for k, _ in axes_keys]
    same: dict[tuple, list] = {}
    for g in groups:
        same.setdefault(tuple(value_text(g.runs[0].config, k) for k in swept), []).append(g)
    extra = [
        k for k in (groups[0].values if groups else {})
        if k not in swept and any(len({value_text(g.runs[0].config, k) for g in gs}) > 1 for gs in same.values())
    ]  # fmt: skip
    for r, (label, kind, key_) in enumerate(rows):
        value = functools.partial(result_value, kind=kind, key=key_)
        without = [run for run in runs if value(run) is None]
        for c, (key, xs) in enumerate(cols):
            others = [k for k in swept if k != key] + extra
            accuracy = kind == "summary" and key_.endswith("_acc")  # (a target's row counts steps)
            top = 1.0 if accuracy else np.inf
            _panel(axes[r, c], groups, key, xs, others, value, counts=kind == "target", top=top)
            if r > 0 and axes[r, c].get_legend() is not None:
                axes[r, c].get_legend().remove()  # the column's legend is the top panel's
            axes[r, c].set_xlabel(key if r == len(rows) - 1 else "")
            if c == 0:
                axes[r, c].set_ylabel(label, fontsize="small")
            if accuracy:
                _accuracy_span(axes[r, c])
        if without:
            notes.append(_why_missing(without, label, kind, key_))
    seeds, one_seed = _seeds(groups, "bars")
    spread = f" (points: {seeds}; bars cut at 0, and at 1 for accuracy)" if seeds else ""
    notes.append(one_seed)
    what = ", ".join(label.split("\n")[0] for label, _, _ in rows)
    _suptitle(fig, f"What the sweep found: {what}, against {' and '.join(k for k, _ in cols)}{spread}")
    _notes(fig, notes)
    return fig


def _panel(
    ax, groups: list[Group], key: str, xs: list[str], others: list[str], value, counts: bool, top: float
) -> None:
    """One result against `key`: a line per combination of the `others` keys' values, each point the
    mean over seeds with its 95% interval; `counts`: "k/n" beside each point, the seeds that have a
    value (reached the target) out of all. A bar stops where the value cannot go: at 0, and at
    `top` (1 for accuracy)."""
    lines: dict[tuple, dict[int, list]] = {}
    for g in groups:
        config = g.runs[0].config
        combo = tuple(value_text(config, o) for o in others)
        at = lines.setdefault(combo, {}).setdefault(xs.index(value_text(config, key)), [])
        at += [value(run) for run in g.runs]
    everything = [v for line in lines.values() for vs in line.values() for v in vs if v is not None]
    numeric = all(_natural(x)[0] == 0 for x in xs)  # categories (losses) are points, never joined
    for j, (combo, points) in enumerate(lines.items()):
        pos = sorted(p for p, vs in points.items() if any(v is not None for v in vs))
        if not pos:
            continue
        found = [seed_interval([v for v in points[p] if v is not None]) for p in pos]
        mean = np.array([f.mean for f in found])
        # one seed: no bar; a bar is cut where the value cannot go (below 0; accuracy above 1)
        lo = np.nan_to_num(mean - np.maximum([f.lo for f in found], 0.0))
        hi = np.nan_to_num(np.minimum([f.hi for f in found], top) - mean)
        colour = _line_colour(groups, others, combo, j, len(lines))
        name = ", ".join(f"{o}={v}" for o, v in zip(others, combo)) or "all runs"
        dodge = 0.05 * (j - (len(lines) - 1) / 2)  # side by side, so equal values keep apart bars
        ax.errorbar(
            np.array(pos) + dodge,
            mean,
            yerr=[lo, hi],
            color=colour,
            marker=MARKERS[j % len(MARKERS)],
            ms=6,
            capsize=4,
            lw=1.6,
            ls="-" if numeric else "none",
            label=name,
        )
        if not others:  # one point per value of the one swept key: each in that value's colour
            hue = {value_text(g.runs[0].config, key): g.color for g in reversed(groups)}
            ax.scatter(np.array(pos) + dodge, mean, c=[hue[xs[p]] for p in pos], s=60, zorder=3)
        for p, f, m in zip(pos, found, mean) if counts else ():
            if len(points[p]) > 1:  # one seed: reached or not is the point itself
                text = f"{f.n}/{len(points[p])}"
                ax.annotate(
                    text, (p + dodge, m), xytext=(5, 3), textcoords="offset points", fontsize="x-small"
                )
    ax.set_xticks(range(len(xs)), [_wrap(x, 14) for x in xs], fontsize="small")
    ax.set_xlim(-0.4, len(xs) - 0.6)
    if _wants_log(everything):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0] and (len(lines) > 1 or others):
        n = len(ax.get_legend_handles_labels()[0])  # above the axes, never over the points
        ax.legend(
            fontsize="x-small", loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(n, 3), frameon=False
        )


def _accuracy_span(ax, least: float = 0.1) -> None:
    """An accuracy axis spans at least `least`, so that 0.96 against 0.98 (one example in fifty)
    does not fill the panel as if it were a large difference."""
    lo, hi = ax.get_ylim()
    if hi - lo < least:
        top = min(max(hi, (lo + hi + least) / 2), 1.0 + least / 10)
        ax.set_ylim(top - least, top)


def _why_missing(runs: list, label: str, kind: str, key: str) -> str:
    """Why some runs have no point: diverged, never reached the target, or recorded no value (named)."""
    diverged = [r for r in runs if (r.summary or {}).get("status") == "diverged"]
    unrecorded = [r for r in runs if r not in diverged and not _recorded(r, kind, key)]
    parts = [f"{len(diverged)} diverged"] if diverged else []
    if len(runs) - len(diverged) - len(unrecorded):
        parts.append(f"{len(runs) - len(diverged) - len(unrecorded)} never reached it")
    if unrecorded:
        parts.append(lacking_note([r.path for r in unrecorded], key, prefix=""))
    return f"no point for {label.splitlines()[0]}: " + "; ".join(parts)


def _line_colour(groups: list[Group], others: list[str], combo: tuple, j: int, n: int):
    """A line per value of the groups' colour key wears that value's hue, as in every other figure;
    lines per value of another key are greys (black to light), so that no hue means two things."""
    keys = list(groups[0].values)
    if len(others) == 1 and keys and others[0] == keys[0]:
        hues = list(dict.fromkeys(value_text(g.runs[0].config, keys[0]) for g in groups))
        return PALETTE[hues.index(combo[0]) % len(PALETTE)]
    return str(0.65 * j / max(n - 1, 1))
