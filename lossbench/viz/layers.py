"""Per-layer pictures: gradient heat maps, the gradient profile across layers, activation health."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..runs.store import Run
from .canvas import _diverged_step, _figure, _grid, _legend, _page, _suptitle, _what, _wrap, one_step
from .load import LAYER_LABEL, Group, value_text

if TYPE_CHECKING:  # matplotlib loads on first use
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


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


def _layered(groups: list[Group], key: str) -> list[Group]:
    """The groups with hidden layers and a recorded `key`: a depth-0 model (one linear layer) gets
    the `linear` figure instead of one-row heat maps and one-point profiles."""
    return [g for g in groups if (a := g.stacked(key)) is not None and a.shape[-1] > 1]


def layer_ticks(ax: Axes, n_layers: int, axis: str = "y") -> None:
    """Layers 1..n with the last one named: the output layer is not a hidden layer."""
    every = 1 if n_layers <= 12 else 5  # 31 numbers side by side collide: 1, 5, 10, ... then
    ticks = [t for t in range(1, n_layers) if t == 1 or t % every == 0]
    ticks = [t for t in ticks if n_layers - t >= every / 2 or t == 1] + [n_layers]
    names = [str(t) for t in ticks[:-1]] + [f"{n_layers}\nout" if axis == "x" else f"out {n_layers}"]
    (ax.set_yticks if axis == "y" else ax.set_xticks)(ticks, names)


ZERO_COLOR = "#D55E00"  # exact zeros: a log colour scale cannot place them, so they get their own colour


def fig_grad_heatmap(
    groups: list[Group], key: str = "grad_w", page: tuple[int, int] | None = None
) -> Figure | None:
    """Per-layer gradient norm as a heat map, layer x step, log colour scale, input layer at the bottom
    and the output layer labelled. Exact zeros (a dead ReLU layer passes no gradient at all) are drawn
    in their own colour, named in the legend; white is "not recorded".

    One panel per config (mean over its seeds), all on one colour scale.
    """
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Patch

    shown = _layered(groups, key)
    if not shown or one_step(shown):  # one column of colour: grad_profile shows that step
        return None
    rows, cols = _grid(len(shown), shown)
    fig = _figure(4.6 * cols + 1.2, 3.4 * rows + 0.9)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    data = [m for g in shown if (m := g.mean(key)) is not None]  # all: each has the metric
    positive = np.concatenate([m[1][np.isfinite(m[1]) & (m[1] > 0)] for m in data] + [np.array([])])
    norm = LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size else LogNorm(1e-12, 1)
    any_zero = False
    for ax, g, (steps, mean, _, _) in zip(axes, shown, data):  # at least one: shown is not empty
        n_layers = mean.shape[1]
        x_edges, y_edges = _edges(steps), np.arange(n_layers + 1) + 0.5
        values = np.ma.masked_where(~(np.isfinite(mean) & (mean > 0)), mean)
        mesh = ax.pcolormesh(x_edges, y_edges, values.T, norm=norm, cmap="viridis")
        zero = mean == 0
        if zero.any():
            any_zero = True
            ax.pcolormesh(x_edges, y_edges, np.ma.masked_where(~zero, zero).T.astype(float),
                          cmap=_one_colour(ZERO_COLOR), vmin=0, vmax=1)  # fmt: skip
        layer_ticks(ax, n_layers)
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
    if any_zero:
        fig.legend(
            [Patch(color=ZERO_COLOR)],
            ["exactly 0: no gradient reaches this layer (e.g. every ReLU unit dead); white: not recorded"],
            loc="outside lower center", fontsize="small",
        )  # fmt: skip
    name = f"{GRAD_NAMES[key][0].upper()}{GRAD_NAMES[key][1:]}"
    _suptitle(fig, f"{name} per layer over training, {_what(shown)}{_page(page)}")
    return fig


def _one_colour(color: str):
    from matplotlib.colors import ListedColormap

    return ListedColormap([color, color])


def _edges(centres: np.ndarray) -> np.ndarray:
    c = centres.astype(float)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def fig_grad_profile(groups: list[Group]) -> Figure | None:
    """Gradient norm against layer index (log axis) at the start, middle and end of training, one line
    per config: the weight gradient on top, the back-propagated gradient below, so they can be told apart."""
    groups = _layered(groups, "grad_w")
    if not groups:
        return None
    n_rows = max(
        int(np.isfinite(a).all(-1).sum(-1).max()) for g in groups if (a := g.stacked("grad_w")) is not None
    )
    wheres = (
        ["start", "middle", "end"][: min(n_rows, 3)] if n_rows != 2 else ["start", "end"]
    )  # one step: one
    fig = _figure(14 if len(wheres) == 3 else 7, 8)
    axes = fig.subplots(2, len(wheres), sharey="row", squeeze=False)
    any_line = False
    for row, key in zip(axes, ["grad_w", "grad_out"]):
        for ax, where in zip(row, wheres):
            steps_seen = set()
            for g in groups:
                step, values = _at(g, key, where)
                if values is None:
                    continue
                layers = np.arange(1, len(values) + 1)
                ok = values > 0
                ax.plot(
                    layers[ok],
                    values[ok],
                    marker=g.marker or "o",
                    ls=g.linestyle,
                    color=g.color,
                    label=g.label,
                    ms=4,
                )
                steps_seen.add(step)
                any_line = True
            if any_line:
                ax.set_yscale("log")
            if key == "grad_out":
                ax.set_xlabel(LAYER_LABEL)
            n_layers = max((a.shape[-1] for g in groups if (a := g.stacked(key)) is not None), default=1)
            layer_ticks(ax, n_layers, "x")
            if where == "start":
                ax.set_ylabel(f"{GRAD_NAMES[key].split(' (')[0]} (L2 norm)")
            at = f"step {steps_seen.pop()}" if len(steps_seen) == 1 else "per config"
            where = where if len(wheres) > 1 else "the one step recorded"
            ax.set_title(f"{where} ({at}): {key}", fontsize="medium")
            ax.grid(alpha=0.3)
    _suptitle(
        fig,
        f"Gradient profile across layers, {_what(groups)}\n"
        "top: weight gradient ||dL/dW||; bottom: back-propagated gradient ||dL/dz||",
    )
    _legend(fig, axes[0, 0], len(groups))
    return fig


def fig_activation_health(groups: list[Group], page: tuple[int, int] | None = None) -> Figure | None:
    """Per layer against step, one column per config: the saturated fraction, the mean derivative
    relative to its peak (continuous: a neuron at sigma'(z) = 7% of the peak reads 0.07, nearly
    saturated), the dead fraction (hidden layers only) and the update-to-weight ratio (log axis, with
    the 1e-3 guide). The peak and the threshold are the engine's own, as the run recorded them.

    The output layer is drawn apart (black, dashed): a sigmoid output's saturation and derivative are
    shown, a softmax output's fraction of confident examples (max p > 0.99), an identity output's
    nothing (its derivative is 1); none is ever "dead", a confident classifier's output is meant to
    saturate. Depth-0 models have the `linear` figure instead.
    """
    from matplotlib import colormaps

    shown = _layered(groups, "update_ratio")
    if not shown or one_step(shown):  # lines of one point
        return None
    saturation = {recorded(r, "saturation") for g in shown for r in g.runs} - {None}
    limit = f"{saturation.pop():.0%}" if len(saturation) == 1 else "a set fraction"
    rows = [
        ("act_saturated", f"saturated fraction\n(|f'(z)| < {limit} of its peak)"),
        ("act_deriv", "mean |f'(z)| / peak\n(1: every unit at its steepest)"),
        ("act_dead", f"dead fraction (hidden)\n(|f'(z)| < {limit} of peak\non the whole batch)"),
        ("update_ratio", "update / weight\n(||dW|| / ||W|| per step)"),
    ]
    n_hidden = max(a.shape[-1] for g in shown if (a := g.stacked("update_ratio")) is not None) - 1
    colours = colormaps["viridis"](np.linspace(0, 0.9, n_hidden))
    fig = _figure(4.4 * len(shown) + 2.2, 10.6)
    axes = fig.subplots(len(rows), len(shown), squeeze=False, sharex="col")
    for c, g in enumerate(shown):
        output = value_text(g.runs[0].config, "model.output")
        peak = recorded(g.runs[0], "peak_derivative") or float("nan")
        for r, (key, name) in enumerate(rows):
            ax = axes[r, c]
            m = g.mean(key)
            if m is not None:
                steps, mean = m[0], m[1]
                if key == "act_deriv":
                    mean = mean / np.array([peak] * (mean.shape[1] - 1) + [OUTPUT_PEAKS.get(output, np.nan)])
                for i in range(mean.shape[1] - 1):
                    _health_line(ax, steps, mean[:, i], key, colours[i], "-", f"layer {i + 1}")
                if _output_drawn(key, output):
                    label = (
                        "output: confident (max p > 0.99)"
                        if output == "softmax"
                        else f"output layer ({output})"
                    )
                    _health_line(ax, steps, mean[:, -1], key, "black", "--", label)
            if key == "update_ratio":
                ax.set_yscale("log")
                ax.axhline(1e-3, color="grey", ls=":", lw=1.5, label="1e-3 guide")
            else:
                ax.set_ylim(-0.03, 1.08)
            if c == 0:
                ax.set_ylabel(name, fontsize="small")
            if r == 0:
                ax.set_title(_wrap(g.label), fontsize="small")
            if r == len(rows) - 1:
                ax.set_xlabel("training step")
            ax.grid(alpha=0.3)
    entries: dict[str, Artist] = {}  # one legend entry per label
    for ax in axes.ravel():
        for h, t in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(t, h)
    order = sorted(
        entries, key=lambda t: (not t.startswith("layer"), int(t.split()[1]) if t.startswith("layer") else 0)
    )
    fig.legend(
        [entries[t] for t in order],
        order,
        loc="outside right center",
        fontsize="small",
        title="layer (input first)",
    )
    _suptitle(fig, f"Activation health per layer, {_what(shown)}{_page(page)}")
    return fig


OUTPUT_PEAKS = {"sigmoid": 0.25, "identity": 1.0}  # sigma'(0) = 1/4; a softmax output has no one derivative


def _output_drawn(key: str, output: str) -> bool:
    """Which rows show the output layer: never "dead"; saturation only where the output can saturate."""
    if key == "update_ratio":
        return True
    if key == "act_dead" or output == "identity":
        return False
    return output == "sigmoid" or key == "act_saturated"


def _health_line(ax, steps, values, key: str, colour, style: str, label: str) -> None:
    ok = np.isfinite(values) & ((values > 0) if key == "update_ratio" else True)
    marker = "o" if ok.sum() < 3 else None
    ax.plot(steps[ok], values[ok], color=colour, ls=style, lw=1.4, marker=marker, label=label)


def recorded(run: Run, key: str) -> float | None:
    """A fact about the run's hidden activation that the engine recorded in its summary
    (`peak_derivative`, `saturation`); None for a run still training."""
    facts = (run.summary or {}).get("activation")
    value = facts.get(key) if isinstance(facts, dict) else None
    return float(value) if isinstance(value, (int, float)) else None
