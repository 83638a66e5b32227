"""Pictures of runs, drawn from run folders alone (config.yaml, metrics.jsonl, summary.json, view.npz).

`python -m lossbench plot PATH...` draws the figures of each run, sweep or results folder into
`PATH/figures/`; `compare PATH... [--by KEY]` overlays the runs of several folders. Runs that differ
only in `seed` form one group, drawn as the mean over seeds with a min-max band; legend labels name
the config keys whose values differ between groups. Each figure function takes groups and returns a
matplotlib `Figure` (so tests can read the plotted data back from its artists); nothing here imports
the trainer or trains anything.

This module is longer than most: the loading and grouping (~150 lines) and the six figures belong
together, and splitting them would only add imports.
"""

from __future__ import annotations

import io
import math
import os

import numpy as np

from ..runs.store import Run, RunFolderError, atomic_write, check_writable
from .load import LAYER_LABEL, MAX_PANELS, PALETTE, Group, _default_label

# ----- figure helpers --------------------------------------------------------------------------------


def _figure(width: float, height: float):
    """A Figure on the Agg canvas (no pyplot, no global state, nothing to close)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _legend(fig, ax, n_entries: int) -> None:
    """One legend for the figure: inside the axes for a few short entries, below the axes otherwise."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    if n_entries > 3 or max(len(t) for t in labels) > 30:
        ncol = 1 if max(len(t) for t in labels) > 60 else min(3, len(labels))
        fig.legend(handles, labels, loc="outside lower center", fontsize="small", ncol=ncol)
    else:
        ax.legend(handles, labels, fontsize="small")


def _wrap(text: str, width: int = 48) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width, break_long_words=False)) or text


def _suptitle(fig, text: str) -> None:
    width = int(fig.get_figwidth() * 11)
    fig.suptitle("\n".join(_wrap(line, width) for line in text.split("\n")))


def _wants_log(values) -> bool:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return v.size > 1 and bool((v > 0).all()) and v.max() / v.min() > 30


def _diverged_step(run: Run) -> int | None:
    s = (run.summary or {}).get("diverged_step")
    if s is not None:
        return int(s)
    flags = run.metrics.get("diverged")
    if flags is not None and (flags == 1).any():
        return int(run.metrics["step"][np.argmax(flags == 1)])
    return None


def _too_many(groups: list[Group]) -> str:
    extra = len(groups) - MAX_PANELS
    return f" (first {MAX_PANELS} of {len(groups)} configs)" if extra > 0 else ""


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 4)
    return math.ceil(n / cols), cols


# ----- the figures -----------------------------------------------------------------------------------


def fig_loss_curves(groups: list[Group], x: str = "step"):
    """Train (and validation) loss against step or epoch: the mean over seeds and a min-max band.

    A diverged run gets an X at its divergence step, on its last finite loss.
    """
    has_val = any(
        g.stacked("val_loss") is not None and np.isfinite(g.stacked("val_loss")).any() for g in groups
    )
    keys = ["loss", "val_loss"] if has_val else ["loss"]
    fig = _figure(6.4 * len(keys), 4.4)
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    n_diverged = 0
    for ax, key in zip(axes, keys):
        everything = []
        for g in groups:
            m = g.mean(key)
            if m is None:
                continue
            steps, mean, lo, hi = m
            xs = _x_values(g, steps, x)
            ok = np.isfinite(mean)
            marker = "o" if ok.sum() < 3 else None  # a line of one point is invisible
            ax.plot(xs[ok], mean[ok], color=g.color, ls=g.linestyle, lw=1.6, marker=marker, label=g.label)
            if len(g.runs) > 1:
                ax.fill_between(xs[ok], lo[ok], hi[ok], color=g.color, alpha=0.2, lw=0)
            everything.append(mean[ok])
            if key == "loss":
                for r in g.runs:
                    s = _diverged_step(r)
                    if s is None:
                        continue
                    loss = r.metrics["loss"]
                    finite = np.isfinite(loss) & (r.metrics["step"] <= s)
                    y = loss[finite][-1] if finite.any() else np.nan
                    xs_run = _x_values(g, np.array([s]), x, run=r)
                    ax.plot(xs_run, [y], "X", color=g.color, ms=10, mec="black", zorder=5)
                    n_diverged += 1
        if everything and _wants_log(np.concatenate(everything)):
            ax.set_yscale("log")
        ax.set_xlabel("training step" if x == "step" else "epoch")
        ax.set_ylabel(("train" if key == "loss" else "validation") + " loss (loss units, mean per example)")
        ax.set_title(("Training" if key == "loss" else "Validation") + " loss")
        ax.grid(alpha=0.3)
        if x == "step":
            _epoch_axis(ax, groups)
    if n_diverged:
        axes[0].plot([], [], "X", color="grey", mec="black", ms=9, label="diverged here")
    band = " (line: mean over seeds, band: min-max)" if any(len(g.runs) > 1 for g in groups) else ""
    _suptitle(fig, f"Loss curves of {_what(groups)}{band}")
    _legend(fig, axes[0], len(groups) + bool(n_diverged))
    return fig


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


def _what(groups: list[Group]) -> str:
    keys = list(groups[0].values) if groups else []
    n_runs = sum(len(g.runs) for g in groups)
    if len(groups) > 1 and keys:
        return f"{len(groups)} configs by {', '.join(keys)}"
    return f"{_default_label(groups[0].runs[0])} ({n_runs} run{'s' if n_runs != 1 else ''})"


def fig_convergence(groups: list[Group]):
    """Steps and seconds to reach the target loss per config: horizontal bars (mean over the seeds that
    reached it), a dot per seed, and markers for runs that never reached it or diverged.

    Returns None when no run has a `train.target_loss`.
    """
    targets = {(r.summary or {}).get("target_loss") for g in groups for r in g.runs}
    targets.discard(None)
    if not targets:
        return None
    fig = _figure(11, 1.8 + 0.42 * len(groups))
    axes = fig.subplots(1, 2, sharey=True)
    keys = [("steps_to_target", "training steps"), ("seconds_to_target", "seconds (wall clock)")]
    for ax, (key, unit) in zip(axes, keys):
        tops = [v for g in groups for r in g.runs if (v := (r.summary or {}).get(key)) is not None]
        flag_x = (max(tops) if tops else 1.0) * 1.08 or 1.0
        never = diverged = 0
        for i, g in enumerate(groups):
            reached = [(r.summary or {}).get(key) for r in g.runs]
            values = [v for v in reached if v is not None]
            if values:
                ax.barh(i, np.mean(values), color=g.color, alpha=0.8, height=0.7)
                if len(g.runs) > 1:
                    ax.plot(values, [i] * len(values), "o", color="black", ms=3)
            for j, r in enumerate(r for r, v in zip(g.runs, reached) if v is None):
                dy = 0.15 * j - 0.15
                if _diverged_step(r) is not None:
                    ax.plot(flag_x, i + dy, "X", color=g.color, mec="black", ms=10)
                    diverged += 1
                else:
                    ax.plot(flag_x, i + dy, "<", color="white", mec=g.color, mew=2, ms=9)
                    never += 1
        if never:
            ax.plot([], [], "<", color="white", mec="grey", mew=2, ms=9, label="never reached the target")
        if diverged:
            ax.plot([], [], "X", color="grey", mec="black", ms=9, label="diverged")
        ax.set_yticks(range(len(groups)), [_wrap(g.label, 40) for g in groups], fontsize="small")
        ax.set_ylim(len(groups) - 0.5, -0.5)  # first config on top
        ax.set_xlabel(f"{unit} to reach the target loss")
        ax.set_title("Steps to target" if key == "steps_to_target" else "Wall time to target")
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlim(0, flag_x * 1.1)
        if never or diverged:
            ax.legend(fontsize="small", loc="lower right")
    target = f"{targets.pop():g}" if len(targets) == 1 else "each run's target"
    seeds = (
        " (bar: mean of the seeds that reached it, dots: seeds)"
        if any(len(g.runs) > 1 for g in groups)
        else ""
    )
    _suptitle(fig, f"Convergence speed of {_what(groups)}: first logged train loss <= {target}{seeds}")
    return fig


def _at(g: Group, key: str, where: str):
    """The group's per-layer mean of `key` at the start, the middle or the end (last finite row)."""
    m = g.mean(key)
    if m is None or m[1].ndim != 2:
        return None, None
    steps, mean = m[0], m[1]
    finite = np.where(np.isfinite(mean).all(1))[0]
    if finite.size == 0:
        return None, None
    i = {"start": finite[0], "end": finite[-1]}.get(where)
    if i is None:
        half = (steps[finite[0]] + steps[finite[-1]]) / 2
        i = finite[np.argmin(np.abs(steps[finite] - half))]
    return int(steps[i]), mean[i]


GRAD_NAMES = {
    "grad_w": "weight gradient ||dL/dW||",
    "grad_out": "back-propagated gradient ||dL/dz|| (into the layer's pre-activation)",
}


def fig_grad_heatmap(groups: list[Group], key: str = "grad_w"):
    """Per-layer gradient norm as a heat map, layer x step, log colour scale, input layer at the bottom.

    One panel per config (mean over its seeds), all on one colour scale.
    """
    from matplotlib.colors import LogNorm

    shown = [g for g in groups if g.stacked(key) is not None][:MAX_PANELS]
    if not shown:
        return None
    rows, cols = _grid(len(shown))
    fig = _figure(4.6 * cols + 1.2, 3.4 * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    data = [g.mean(key) for g in shown]
    positive = np.concatenate([m[1][np.isfinite(m[1]) & (m[1] > 0)] for m in data] + [np.array([])])
    norm = LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size else LogNorm(1e-12, 1)
    mesh = None
    for ax, g, (steps, mean, _, _) in zip(axes, shown, data):
        n_layers = mean.shape[1]
        values = np.ma.masked_where(~(np.isfinite(mean) & (mean > 0)), mean)
        mesh = ax.pcolormesh(
            _edges(steps), np.arange(n_layers + 1) + 0.5, values.T, norm=norm, cmap="viridis"
        )
        ax.set_yticks(range(1, n_layers + 1))
        ax.set_xlabel("training step")
        ax.set_ylabel(LAYER_LABEL if len(shown) == 1 else "layer (1 = input side)")
        ax.set_title(_wrap(g.label), fontsize="small")
        s = next((s for r in g.runs if (s := _diverged_step(r)) is not None), None)
        if s is not None:
            ax.axvline(s, color="red", ls="--", lw=1.5, label="diverged")
            ax.legend(fontsize="small")
    for ax in axes[len(shown) :]:
        ax.set_visible(False)
    fig.colorbar(mesh, ax=axes[: len(shown)].tolist(), label=f"{GRAD_NAMES[key].split(' (')[0]} (L2 norm)")
    _suptitle(
        fig,
        f"{GRAD_NAMES[key][0].upper()}{GRAD_NAMES[key][1:]} per layer over training, {_what(groups)}{_too_many(groups)}",
    )
    return fig


def _edges(centres: np.ndarray) -> np.ndarray:
    c = centres.astype(float)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def fig_grad_profile(groups: list[Group]):
    """Gradient norm against layer index (log axis) at the start, middle and end of training, one line
    per config: the weight gradient on top, the back-propagated gradient below, so they can be told apart."""
    if not any(g.stacked("grad_w") is not None for g in groups):
        return None
    fig = _figure(14, 8)
    axes = fig.subplots(2, 3, sharey="row")
    any_line = False
    for row, key in zip(axes, ["grad_w", "grad_out"]):
        for ax, where in zip(row, ["start", "middle", "end"]):
            steps_seen = set()
            for g in groups:
                step, values = _at(g, key, where)
                if values is None:
                    continue
                layers = np.arange(1, len(values) + 1)
                ok = values > 0
                ax.plot(layers[ok], values[ok], "o", ls=g.linestyle, color=g.color, label=g.label, ms=4)
                steps_seen.add(step)
                any_line = True
            if any_line:
                ax.set_yscale("log")
            if key == "grad_out":
                ax.set_xlabel(LAYER_LABEL)
            n_layers = max(
                (g.stacked(key).shape[-1] for g in groups if g.stacked(key) is not None), default=1
            )
            ax.set_xticks(range(1, n_layers + 1))
            if where == "start":
                ax.set_ylabel(f"{GRAD_NAMES[key].split(' (')[0]} (L2 norm)")
            at = f"step {steps_seen.pop()}" if len(steps_seen) == 1 else "per config"
            ax.set_title(f"{where} ({at}): {key}", fontsize="medium")
            ax.grid(alpha=0.3)
    _suptitle(
        fig,
        f"Gradient profile across layers, {_what(groups)}\n"
        "top: weight gradient ||dL/dW||; bottom: back-propagated gradient ||dL/dz||",
    )
    _legend(fig, axes[0, 0], len(groups))
    return fig


def fig_activation_health(groups: list[Group]):
    """Per layer against step: the saturated fraction, the dead fraction and the update-to-weight ratio
    (log axis, with the 1e-3 guide line). One column per config."""
    from matplotlib import colormaps

    keys = [
        ("act_saturated", "saturated fraction\n(|f'(z)| < 1% of its peak)"),
        ("act_dead", "dead fraction\n(units saturated on the whole batch)"),
        ("update_ratio", "update / weight\n(||dW|| / ||W|| per step)"),
    ]
    shown = [g for g in groups if g.stacked("update_ratio") is not None][: MAX_PANELS // 2]
    if not shown:
        return None
    fig = _figure(4.4 * len(shown) + 1.8, 8.6)
    axes = fig.subplots(3, len(shown), squeeze=False, sharex="col")
    for c, g in enumerate(shown):
        for r, (key, name) in enumerate(keys):
            ax = axes[r, c]
            m = g.mean(key)
            if m is not None:
                steps, mean = m[0], m[1]
                n_layers = mean.shape[1]
                colours = colormaps["viridis"](np.linspace(0, 0.9, n_layers))
                for i in range(n_layers):
                    ok = np.isfinite(mean[:, i])
                    if key == "update_ratio":
                        ok &= mean[:, i] > 0
                    name_i = "output layer" if i == n_layers - 1 else f"layer {i + 1}"
                    marker = "o" if ok.sum() < 3 else None
                    ax.plot(steps[ok], mean[ok, i], color=colours[i], lw=1.4, marker=marker, label=name_i)
            if key == "update_ratio":
                ax.set_yscale("log")
                ax.axhline(1e-3, color="black", ls="--", lw=1, label="1e-3 guide")
            else:
                ax.set_ylim(-0.03, 1.03)
            if c == 0:
                ax.set_ylabel(name)
            if r == 0:
                ax.set_title(_wrap(g.label), fontsize="small")
            if r == 2:
                ax.set_xlabel("training step")
            ax.grid(alpha=0.3)
    handles, labels = axes[2, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize="small", title="layer (input first)")
    more = f" (first {len(shown)} of {len(groups)} configs)" if len(groups) > len(shown) else ""
    _suptitle(fig, f"Activation health per layer, {_what(groups)}{more}")
    return fig


def load_view(run: Run) -> dict | None:
    """The run's view.npz (task picture data) or None when it has none; a damaged one is an error."""
    path = os.path.join(run.path, "view.npz")
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:  # zipfile/ValueError/EOFError: any unreadable archive
        raise RunFolderError(
            [("view.npz", f"is truncated or unreadable ({type(e).__name__})")], run.path
        ) from None


def fig_task(groups: list[Group]):
    """The task picture per config (its first seed): the decision boundary with the data for 2-D
    inputs, the fitted function with the data (outliers marked) for 1-D inputs. None without views."""
    views = []
    for g in groups:
        view = next((v for r in g.runs if (v := load_view(r)) is not None), None)
        if view is not None:
            views.append((g, view))
    if not views:
        return None
    views = views[:MAX_PANELS]
    rows, cols = _grid(len(views))
    fig = _figure(4.4 * cols + 0.6, 4.0 * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (g, view) in zip(axes, views):
        if str(view["kind"]) == "curve":
            _curve(ax, view)
        else:
            _boundary(ax, view)
        ax.set_title(_wrap(g.label), fontsize="small")
    for ax in axes[len(views) :]:
        ax.set_visible(False)
    kinds = {str(v["kind"]) for _, v in views}
    what = "Decision boundary and data" if kinds == {"boundary"} else "Fitted function and data"
    _suptitle(fig, f"{what}, {_what(groups)}{_too_many(groups)}")
    return fig


def _curve(ax, view: dict) -> None:
    x, y = view["x"][:, 0], view["y"].reshape(len(view["x"]), -1)
    marks = view.get("marks")
    marks = np.zeros(len(x), bool) if marks is None else marks.astype(bool).reshape(-1)
    ax.plot(x[~marks], y[~marks, 0], "o", color=PALETTE[0], ms=3, alpha=0.6, label="data")
    if marks.any():
        ax.plot(x[marks], y[marks, 0], "x", color=PALETTE[1], ms=7, mew=2, label="outliers")
    pred = view["pred"].reshape(len(view["grid_x"]), -1)
    for j in range(pred.shape[1]):
        ax.plot(view["grid_x"], pred[:, j], color="black", lw=2, label="model" if j == 0 else None)
    ax.set_xlabel("input x")
    ax.set_ylabel("target y / model output" if str(view["task"]) == "regression" else "label / P(class 1)")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)


def _boundary(ax, view: dict) -> None:
    from matplotlib.colors import ListedColormap

    gx, gy, pred, x = view["grid_x"], view["grid_y"], view["pred"], view["x"]
    task = str(view["task"])
    y = view["y"].reshape(len(x), -1)[:, 0]
    if task == "regression":
        cs = ax.contourf(gx, gy, pred, levels=12, cmap="viridis", alpha=0.7)
        ax.figure.colorbar(cs, ax=ax, label="model output")
        ax.scatter(x[:, 0], x[:, 1], c=y, cmap="viridis", s=10, edgecolors="black", linewidths=0.3)
    else:
        classes = np.unique(y).astype(int) if task != "binary" else np.array([0, 1])
        n = max(int(classes.max()) + 1, int(np.nanmax(pred)) + 1 if task != "binary" else 2)
        colours = [PALETTE[k % len(PALETTE)] for k in range(n)]
        if task == "binary":  # pred is the logit: class 1 where it is positive
            ax.contourf(gx, gy, (pred > 0).astype(float), levels=[-0.5, 0.5, 1.5], colors=colours, alpha=0.25)
            ax.contour(gx, gy, pred, levels=[0], colors="black", linewidths=1.5)
        else:
            ax.contourf(gx, gy, pred, levels=np.arange(n + 1) - 0.5, colors=colours, alpha=0.25)
        ax.scatter(
            x[:, 0],
            x[:, 1],
            c=y.astype(int),
            cmap=ListedColormap(colours),
            vmin=-0.5,
            vmax=n - 0.5,
            s=10,
            edgecolors="black",
            linewidths=0.3,
        )
        for k in range(n):
            ax.plot([], [], "o", color=colours[k], mec="black", mew=0.3, label=f"class {k}")
        if task == "binary":
            ax.plot([], [], color="black", label="decision boundary")
        ax.legend(fontsize="x-small", loc="upper right")
    ax.set_xlabel("input x1")
    ax.set_ylabel("input x2")


FIGURES = {
    "loss_curves": fig_loss_curves,
    "convergence": fig_convergence,
    "grad_heatmap_w": lambda groups: fig_grad_heatmap(groups, "grad_w"),
    "grad_heatmap_out": lambda groups: fig_grad_heatmap(groups, "grad_out"),
    "grad_profile": fig_grad_profile,
    "activation_health": fig_activation_health,
    "task": fig_task,
}
"""Figure name -> function(groups) -> Figure or None (when the runs hold nothing to draw)."""


def figures(groups: list[Group]):
    """(name, Figure) for every figure the groups have data for."""
    for name, fn in FIGURES.items():
        fig = fn(groups)
        if fig is not None:
            yield name, fig


def render(fig, fmt: str = "png", dpi: int = 100) -> bytes:
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings():
        # a metric that is constant over a run (e.g. a loss of exactly 0) gives equal axis limits;
        # matplotlib widens them itself, the warning only alarms the reader
        warnings.filterwarnings("ignore", message="Attempting to set identical")
        fig.savefig(buf, format=fmt, dpi=dpi)
    return buf.getvalue()


def save_figures(groups: list[Group], out: str, fmt: str = "png") -> list[str]:
    """Write every figure to `out/NAME.FMT` (atomically); returns the paths."""
    check_writable(out)
    os.makedirs(out, exist_ok=True)
    paths = []
    for name, fig in figures(groups):
        path = os.path.join(out, f"{name}.{fmt}")
        atomic_write(path, render(fig, fmt))
        os.chmod(path, 0o644)  # atomic_write's temporary file is private (0600); figures are for sharing
        paths.append(path)
    return paths


# ----- commands --------------------------------------------------------------------------------------


# ----- for figures drawn outside this module (the experiments) -------------------------------------


def new_figure(width: float, height: float):
    """A Figure on the Agg canvas (no pyplot state): draw on `fig.subplots(...)`, then `save_figure`."""
    return _figure(width, height)


def save_figure(fig, path: str, dpi: int = 100) -> str:
    """Write one Figure to `path` (format from the suffix, atomically, readable by all)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    atomic_write(path, render(fig, os.path.splitext(path)[1].lstrip(".") or "png", dpi))
    os.chmod(path, 0o644)  # atomic_write's temporary file is private (0600); figures are for sharing
    return path
