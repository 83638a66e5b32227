"""The loss landscape figure, drawn from the numbers `lossbench.engine.landscape` computes (landscape.npz).

One row per run; columns: the line from the initial to the final weights (the loss, training solid
and validation dashed, with the shared metric on the right axis), the 2-D slice of the loss around
the final weights, the same slice of the shared metric on one colour scale for every row, and the
training path on the plane of its two principal directions over the loss there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .canvas import _figure, _suptitle, _wants_log
from .metrics import METRICS

if TYPE_CHECKING:  # matplotlib loads on first use
    from matplotlib.figure import Figure

METRIC_COLOR = "#D55E00"
SNAPSHOTS_HINT = "no weight snapshots: run with train.snapshots=20 to draw the training path"


def own_metric(data: dict) -> str:
    """A run's shared metric: MSE for regression, else the labels' NLL where defined, else accuracy."""
    return next((m for m in ("mse", "nll", "acc") if f"slice_{m}" in data), "loss")


def _norm(arrays: list[np.ndarray]):
    """One colour scale for `arrays`: logarithmic when their values span decades."""
    from matplotlib.colors import LogNorm, Normalize

    values = np.concatenate([a[np.isfinite(a)].ravel() for a in arrays])
    if values.size == 0:
        return Normalize()
    if _wants_log(values):
        return LogNorm(values.min(), values.max())
    return Normalize(values.min(), values.max())


def _surface(fig, ax, x, y, z, norm, label: str) -> None:
    """Colour map and contour lines of z [len(y), len(x)], the final weights marked at the origin."""
    from matplotlib.colors import LogNorm

    mesh = ax.pcolormesh(x, y, np.ma.masked_invalid(z), norm=norm, cmap="viridis", shading="nearest")
    if np.isfinite(z).sum() > 3 and np.nanmax(z) > np.nanmin(z):
        lo, hi = norm.vmin, norm.vmax
        levels = np.geomspace(lo, hi, 12) if isinstance(norm, LogNorm) else np.linspace(lo, hi, 12)
        ax.contour(x, y, z, levels=levels[1:-1], colors="white", linewidths=0.6, alpha=0.8)
    ax.plot([0], [0], marker="*", color="#E69F00", markersize=11, markeredgecolor="black", linestyle="")
    fig.colorbar(mesh, ax=ax, label=label, shrink=0.9)


def fig_landscape(items: list[dict], metric: str | None = None) -> Figure:
    """The landscape of each item ({"label", "loss", "data": landscape.npz's arrays}), one row each.

    `metric`: the shared metric, drawn on one scale for every row (default: the first run's own);
    "loss" when every run trains the same loss (the loss slices then share their scale).
    """
    metric = metric or own_metric(items[0]["data"])
    show_metric = metric != "loss" and all(f"slice_{metric}" in it["data"] for it in items)
    n_cols = 4 if show_metric else 3
    fig = _figure(3.7 * n_cols, 3.1 * len(items) + 0.6)
    axes = np.atleast_2d(fig.subplots(len(items), n_cols, squeeze=False))
    shared = (
        _norm([it["data"][f"slice_{metric}"] for it in items]) if metric == "loss" or show_metric else None
    )
    metric_lim = _limits([it["data"].get(f"line_{k}{metric}") for it in items for k in ("", "val_")])
    for row, it in zip(axes, items):
        d, loss_name = it["data"], it["loss"]
        _line(row[0], d, loss_name, metric if show_metric else None, metric_lim, it["label"], len(items) > 1)
        loss_norm = shared if metric == "loss" else _norm([d["slice_loss"]])
        _slice(fig, row[1], d, "loss", loss_norm, f"{loss_name} (train)")
        if show_metric:
            _slice(
                fig,
                row[2],
                d,
                metric,
                shared,
                f"{metric} (train)" + (", one scale for all rows" if len(items) > 1 else ""),
            )
        _path(fig, row[-1], d, loss_name)
    bias = "with its unit's row" if str(items[0]["data"]["bias"]) == "row" else "zeroed"
    _suptitle(
        fig,
        "Loss landscape: the line from the initial (a=0) to the final weights (a=1); a slice along two "
        f"random directions normalised per filter (Li et al. 2018; bias {bias}; seed "
        f"{int(items[0]['data']['seed'])}); the training path on its two principal directions",
    )
    return fig


def _limits(columns: list) -> tuple[float, float] | None:
    values = np.concatenate([np.asarray(c, float) for c in columns if c is not None] or [np.zeros(0)])
    values = values[np.isfinite(values)]
    return (float(values.min()), float(values.max())) if values.size else None


def _line(ax, d: dict, loss_name: str, metric: str | None, metric_lim, label: str, shared: bool) -> None:
    """The line's loss (left axis) and shared metric (right axis, one scale for all rows). A loss that
    is the metric (bce and the NLL, mse and the MSE) is drawn once, on the metric's axis: the same
    curve on two scales would look like two."""
    a, pairs = d["line_a"], [(p, f"line_{p}loss", f"line_{p}{metric}") for p in ("", "val_")]
    same = bool(metric) and all(
        np.allclose(d[lk], d[mk], rtol=1e-5, equal_nan=True) for _, lk, mk in pairs if lk in d and mk in d
    )
    name = METRICS.get(metric, metric).split(" (")[0] if metric else ""
    for p, key, _ in pairs if not same else []:
        if key in d:
            ax.plot(a, d[key], "--" if p else "-", color="#0072B2", label=f"{loss_name} ({WHICH[p]})")
    if not same and _wants_log(np.concatenate([d[k] for _, k, _ in pairs if k in d])):
        ax.set_yscale("log")
    for x in (0, 1):
        ax.axvline(x, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("a: weights (1 - a) initial + a final")
    ax.set_ylabel("" if same else loss_name, color="#0072B2")
    if same:
        ax.set_yticks([])
    ax.set_title(label, fontsize="medium")
    handles, labels = ax.get_legend_handles_labels()
    if metric:
        twin = ax.twinx()
        what = f"{loss_name} = {name}" if same else name
        for p, _, key in pairs:
            if key in d:
                style = "--" if p else "-"
                twin.plot(a, d[key], style, color=METRIC_COLOR, linewidth=1, label=f"{what} ({WHICH[p]})")
        if metric_lim and _wants_log(metric_lim):
            twin.set_yscale("log")
        if metric_lim:
            twin.set_ylim(*metric_lim)
        twin.set_ylabel(what + (" (one scale for all rows)" if shared else ""), color=METRIC_COLOR)
        more = twin.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels, fontsize="x-small", loc="upper center")


WHICH = {"": "train", "val_": "validation"}


def _slice(fig, ax, d: dict, key: str, norm, label: str) -> None:
    _surface(fig, ax, d["slice_x"], d["slice_y"], d[f"slice_{key}"], norm, label)
    ax.set_xlabel("direction 1 (filter-normalised)")
    ax.set_ylabel("direction 2")
    ax.set_title(f"2-D slice: {key}", fontsize="medium")


def _path(fig, ax, d: dict, loss_name: str) -> None:
    if "path_xy" not in d:
        ax.text(
            0.5, 0.5, SNAPSHOTS_HINT.replace(": ", ":\n"), ha="center", va="center", transform=ax.transAxes
        )
        ax.set_axis_off()
        return
    _surface(
        fig, ax, d["path_x"], d["path_y"], d["path_loss"], _norm([d["path_loss"]]), f"{loss_name} (train)"
    )
    xy = d["path_xy"]
    ax.plot(xy[:, 0], xy[:, 1], "o-", color="white", markersize=3, markeredgecolor="black", linewidth=1.2)
    ax.plot(xy[0, 0], xy[0, 1], "s", color="white", markeredgecolor="black", label="initial")
    ex = d["explained"]
    ax.set_xlabel(f"principal direction 1 ({ex[0]:.0%} of the variance)")
    ax.set_ylabel(f"principal direction 2 ({ex[1]:.0%})")
    ax.set_title(f"training path ({len(xy)} snapshots)", fontsize="medium")
