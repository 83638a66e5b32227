"""Loss curves and convergence speed: how fast each config learns."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..config.schema import higher_is_better
from ..runs.store import Run
from ..verdicts import seed_interval
from .canvas import (
    _diverged_step,
    _figure,
    _legend,
    _notes,
    _seeds,
    _suptitle,
    _wants_log,
    _what,
    _wrap,
    one_step,
)
from .load import Group
from .metrics import (
    METRICS,
    base,
    choose_metric,
    lacking,
    lacking_note,
    losses_differ,
    task_of,
)

if TYPE_CHECKING:  # matplotlib loads on first use
    from matplotlib.figure import Figure


def fig_loss_curves(groups: list[Group], x: str = "step", metric: str | None = None) -> Figure | None:
    """Train (and validation) curves of one metric against step or epoch: the mean over seeds and its
    95% Student-t interval as a band (`verdicts.seed_interval`; with one seed no band, and the figure
    says its differences may be chance). The metric is the loss when every run trains the same one,
    else a metric every loss shares (`metrics.choose_metric`; `metric` picks another). Raw losses of different losses can still
    be drawn (`metric="loss"`): the figure then says on it that their units differ.

    A diverged run gets an X at its divergence step, on its last finite value.
    """
    if one_step(groups):
        return None
    name = choose_metric(groups, metric)
    notes = []
    keys = [name, f"val_{name}"]
    keys = [k for k in keys if any((a := g.stacked(k)) is not None and np.isfinite(a).any() for g in groups)]
    keys = keys or [name]
    fig = _figure(6.4 * len(keys), 4.4)
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    n_diverged = 0
    for ax, key in zip(axes, keys):
        everything, bands = [], []
        for g in groups:
            m = g.interval(key)
            if m is None:
                continue
            steps, mean, lo, hi = m
            xs = _x_values(g, steps, x)
            ok = np.isfinite(mean)
            if not ok.any():
                continue
            ax.plot(xs[ok], mean[ok], label=g.label, **line_style(g, int(ok.sum())))
            bands.append((g, xs, lo, hi))
            everything.append(mean[ok])
            if key == keys[0]:
                n_diverged += _diverged_marks(ax, g, key, x)
        if everything and not higher_is_better(name) and _wants_log(np.concatenate(everything)):
            ax.set_yscale("log")
        _bands(ax, bands, 0.2 if len(groups) <= 4 else 0.08)
        ax.set_xlabel("training step" if x == "step" else "epoch")
        where = "validation" if key.startswith("val_") else "train (logged batch)"
        ax.set_ylabel(f"{where} {_short(name)}{UNITS.get(name, '')}")
        ax.set_title(("Validation " if key.startswith("val_") else "Training ") + _short(name))
        ax.grid(alpha=0.3)
        if x == "step":
            _epoch_axis(ax, groups)
    if n_diverged:
        axes[0].plot([], [], "X", color="grey", mec="black", ms=9, label="diverged here")
    seeds, one_seed = _seeds(groups, "band")
    band = f" (line: {seeds})" if seeds else ""
    if name == "loss":
        title = f"Loss curves of {_what(groups)}{band}"
    else:
        shared = "a metric every loss shares" if losses_differ(groups) else "chosen with --metric"
        title = f"{_short(name)} curves ({shared}) of {_what(groups)}{band}"
    _suptitle(fig, title)
    if name == "loss" and losses_differ(groups):
        notes.append(
            "units differ: each config trains another loss, so these curves do not compare; "
            f"draw a shared metric with --metric {'mse' if task_of(groups) == 'regression' else 'acc'}"
        )
    if not notes:
        notes.append(lacking_note(lacking(groups, keys[0]), name, groups=groups))
    notes.append(one_seed)
    _legend(fig, axes[0], len(groups) + bool(n_diverged))
    _notes(fig, notes)
    return fig


def line_style(g: Group, n_points: int) -> dict:
    """The group's line as plot keywords: its colour, line style and marker (about ten marks along
    the line; a dot on each point of a line too short to see)."""
    marker = g.marker or ("o" if n_points < 3 else None)
    return {"color": g.color, "ls": g.linestyle, "lw": 1.6, "marker": marker,
            "markevery": max(1, n_points // 10), "ms": 5}  # fmt: skip


def _bands(ax, bands: list, alpha: float) -> None:
    """Each group's interval band, drawn once the axis scale is set. The axis keeps the lines'
    limits: a band wider than that (2 or 3 seeds give wide intervals) runs off it, and on a log
    axis one reaching zero or below is drawn down to the axis' foot."""
    limits = ax.get_ylim()
    for g, xs, lo, hi in bands:
        ok = np.isfinite(lo) & np.isfinite(hi)
        if ok.any():
            low = np.maximum(lo[ok], limits[0]) if ax.get_yscale() == "log" else lo[ok]
            ax.fill_between(xs[ok], low, hi[ok], color=g.color, alpha=alpha, lw=0)
    ax.set_ylim(limits)


UNITS = {"loss": " (loss units)", "mse": " (target units²)", "mae": " (target units)", "nll": " (nats)"}


def _short(name: str) -> str:
    return METRICS.get(name, name).split(" (")[0]


def _diverged_marks(ax, g: Group, key: str, x: str) -> int:
    """An X per diverged run of the group, at its divergence step on its last finite value of `key`."""
    n = 0
    for r in g.runs:
        s = _diverged_step(r)
        column = r.metrics.get(key)
        if s is None or column is None:
            continue
        finite = np.isfinite(column) & (r.metrics["step"] <= s)
        y = column[finite][-1] if finite.any() else np.nan
        ax.plot(_x_values(g, np.array([s]), x, run=r), [y], "X", color=g.color, ms=10, mec="black", zorder=5)
        n += 1
    return n


def _tick(g: Group, mine: dict) -> str:
    """A config's label on the convergence figure, with how many of its seeds reached the target."""
    targets = [mine[r.path] for r in g.runs if mine[r.path]]
    if len(g.runs) < 2 or not targets:
        return _wrap(g.label, 40)
    reached = sum(t.get("steps_to") is not None for t in targets)
    return _wrap(f"{g.label}: {reached}/{len(targets)} reached it", 40)


def _x_values(g: Group, steps: np.ndarray, x: str, run: Run | None = None) -> np.ndarray:
    if x == "step":
        return steps.astype(float)
    per_step = _epochs_per_step(run.metrics if run else g.runs[0].metrics)
    return steps * per_step if per_step else steps.astype(float)


def _epochs_per_step(metrics: dict) -> float | None:
    s, e = metrics.get("step"), metrics.get("epoch")
    if s is None or e is None or len(s) < 2 or s[-1] <= 0:
        return None
    return float(e[-1] / s[-1])


def _epoch_axis(ax, groups: list[Group]) -> None:
    """An epoch axis on top, when every run has the same number of steps per epoch."""
    ratios = {_epochs_per_step(r.metrics) for g in groups for r in g.runs}
    ratios = {round(r, 9) for r in ratios if r}
    if len(ratios) == 1:
        r = ratios.pop()
        top = ax.secondary_xaxis("top", functions=(lambda s: s * r, lambda e: e / r))
        top.set_xlabel("epoch")


def run_targets(run: Run) -> list[dict]:
    """The run's targets, as the summary records them: [{metric, value, steps_to, seconds_to}]."""
    return (run.summary or {}).get("targets") or []


def target_metric(groups: list[Group], metric: str | None = None) -> str | None:
    """The target metric a convergence figure draws: `metric` when some run has a target on it, else
    (when the runs train different losses) a target on a shared metric, else the most common one."""
    counts: dict[str, int] = {}
    for g in groups:
        for r in g.runs:
            for t in run_targets(r):
                counts[t["metric"]] = counts.get(t["metric"], 0) + 1
    if not counts:
        return None
    if metric and (metric in counts or f"val_{metric}" in counts or base(metric) in counts):
        return next(m for m in (metric, f"val_{metric}", base(metric)) if m in counts)
    ranked = sorted(counts, key=lambda m: (losses_differ(groups) and base(m) == "loss", -counts[m]))
    return ranked[0]


def fig_convergence(groups: list[Group], metric: str | None = None) -> Figure | None:
    """Steps and seconds to reach a target per config: horizontal bars (mean over the seeds that
    reached it), a dot per seed, markers for runs that never reached it or diverged; a run without a
    target on that metric is written "no target", never drawn as a failure.

    Returns None when no run has a target (`train.target` or `train.target_loss`, a target on `loss`).
    """
    name = target_metric(groups, metric)
    if name is None:
        return None
    mine = {
        r.path: next((t for t in run_targets(r) if t["metric"] == name), None) for g in groups for r in g.runs
    }
    by_group = [[mine[r.path] for r in g.runs] for g in groups]
    # a member of a stack reaches its target at the stack's wall time, shared with its stack-mates
    stacked = [r for g in groups for r in g.runs if (r.summary or {}).get("stack_size", 1) > 1]
    panels = [("steps_to", "training steps")] + ([] if stacked else [("seconds_to", "seconds (wall clock)")])
    fig = _figure(5.5 * len(panels) + 1.5 * bool(stacked), 1.8 + 0.42 * len(groups))
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (key, unit) in zip(axes, panels):
        tops = [t[key] for t in mine.values() if t and t.get(key) is not None]
        his = [
            seed_interval([t[key] for t in group if t and t.get(key) is not None]).hi for group in by_group
        ]
        flag_x = max([*tops, *(h for h in his if np.isfinite(h))] or [1.0]) * 1.08 or 1.0
        never = diverged = untargeted = 0
        for i, g in enumerate(groups):
            targets = [mine[r.path] for r in g.runs]
            values = [t[key] for t in targets if t and t.get(key) is not None]
            if values:
                mean, lo, hi, n = seed_interval(values)
                ax.barh(i, mean, color=g.color, alpha=0.8, height=0.7)
                if n > 1:
                    low = max(lo, 0.0)  # (no step count below 0)
                    ax.errorbar(mean, i, xerr=[[mean - low], [hi - mean]], color="black", capsize=4, lw=1)
                if len(g.runs) > 1:
                    ax.plot(values, [i] * len(values), "o", color="black", ms=3)
            missed = [r for r, t in zip(g.runs, targets) if t and t.get(key) is None]
            for j, r in enumerate(missed):
                dy = 0.15 * j - 0.15
                if _diverged_step(r) is not None:
                    ax.plot(flag_x, i + dy, "X", color=g.color, mec="black", ms=10)
                    diverged += 1
                else:
                    ax.plot(flag_x, i + dy, "<", color="white", mec=g.color, mew=2, ms=9)
                    never += 1
            if not any(targets):
                ax.text(flag_x * 0.02, i, "no target set", va="center", color="grey", style="italic")
                untargeted += 1
        if never:
            ax.plot([], [], "<", color="white", mec="grey", mew=2, ms=9, label="never reached the target")
        if diverged:
            ax.plot([], [], "X", color="grey", mec="black", ms=9, label="diverged")
        ax.set_yticks(range(len(groups)), [_tick(g, mine) for g in groups], fontsize="small")
        ax.set_ylim(len(groups) - 0.5, -0.5)  # first config on top
        ax.set_xlabel(f"{unit} to reach the target")
        ax.set_title("Steps to target" if key == "steps_to" else "Wall time to target")
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlim(0, flag_x * 1.1)
        if never or diverged:
            ax.legend(fontsize="small", loc="lower right")
    target_values = {t["value"] for t in mine.values() if t}
    value = f"{target_values.pop():g}" if len(target_values) == 1 else "each run's target"
    sign = ">=" if higher_is_better(name) else "<="
    interval, one_seed = _seeds(groups, "line")
    seeds = (
        "\n(bar: mean of the seeds that reached it, line: its 95% Student-t interval, dots: seeds)"
        if interval
        else ""
    )
    _suptitle(fig, f"Convergence speed of {_what(groups)}: first logged {name} {sign} {value}{seeds}")
    notes = [one_seed]
    if stacked:
        notes.append(
            f"wall time to target not drawn: {len(stacked)} run{'s were' if len(stacked) > 1 else ' was'} "
            "trained as one stack with others, so its clock is the stack's, not its own (--no-batch: its own)"
        )
    if base(name) == "loss" and losses_differ(groups):
        notes.append(
            "units differ: the target is on each run's own loss, so these steps do not compare; "
            "set a target on a shared metric, e.g. train.target: {metric: "
            f"{'val_mse' if task_of(groups) == 'regression' else 'val_acc'}, value: ...}}"
        )
    _notes(fig, notes)
    return fig
