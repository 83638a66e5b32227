"""The task picture: a decision boundary or a fitted function, with the data (from view.npz)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from ..runs.store import Run, RunFolderError
from .canvas import _figure, _grid, _legend, _notes, _page, _suptitle, _what, _wrap
from .curves import line_style
from .load import PALETTE, UNSET, Group, value_text
from .metrics import lacking_note

if TYPE_CHECKING:  # matplotlib loads on first use
    from matplotlib.figure import Figure


def load_view(run: Run) -> dict | None:
    """The run's view.npz (task picture data) or None when it has none; a damaged one is an error."""
    path = os.path.join(run.path, "view.npz")
    if not os.path.exists(path):
        return None
    if not os.path.isfile(path):  # a FIFO would block np.load forever
        raise RunFolderError([("view.npz", "is not a plain file")], run.path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:  # zipfile/ValueError/EOFError: any unreadable archive
        raise RunFolderError(
            [("view.npz", f"is truncated or unreadable ({type(e).__name__})")], run.path
        ) from None


def fig_task(groups: list[Group], page: tuple[int, int] | None = None) -> Figure | None:
    """The task picture per config (its first seed): the decision boundary with the data for 2-D
    inputs, the fitted function with the data (outliers marked) for 1-D inputs, with the fitted line's
    equation for a depth-0 model. None without views; a one-example data set (Nielsen's neuron) has
    no picture here, its `linear` figure shows it."""
    views = []
    for g in groups:
        found = next(((r, v) for r in g.runs if (v := load_view(r)) is not None), None)
        if found is not None and len(found[1]["x"]) > 1:
            views.append((g, *found))
    if not views:
        return None
    rows, cols = _grid(len(views), [g for g, _, _ in views])
    fig = _figure(4.4 * cols + 0.6, 4.0 * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (g, run, view) in zip(axes, views):
        result = ""  # what this panel's config found: its line, its margin
        if str(view["kind"]) == "curve":
            result = _curve(ax, view, fitted_line(run))
        else:
            _boundary(ax, view)
            if _depth0_config(run) and str(view["task"]) == "binary" and view["x"].shape[1] == 2:
                result = _margins(ax, run, view)
        ax.set_title(_wrap(g.label) + (f"\n{result}" if result else ""), fontsize="small")
    for ax in axes[len(views) :]:
        ax.set_visible(False)
    entries: dict = {}  # one legend for every panel, below them all: never over the data
    for ax in axes[: len(views)]:
        for handle, text in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(text, handle)
    fig.legend(
        entries.values(),
        entries.keys(),
        loc="outside lower center",
        fontsize="small",
        ncol=min(len(entries), 4),
    )
    kinds = {str(v["kind"]) for _, _, v in views}
    what = "Decision boundary and data" if kinds == {"boundary"} else "Fitted function and data"
    _suptitle(fig, f"{what}, {_what([g for g, _, _ in views])}{_page(page)}")
    return fig


def fitted_line(run: Run) -> str | None:
    """'y = 2.02 x + 3.05' for a depth-0 model with one input and one identity output, from its
    summary's `linear` weights; else None."""
    if value_text(run.config, "model.output") not in ("identity", UNSET) or not _depth0_config(run):
        return None
    lin = (run.summary or {}).get("linear")
    if not isinstance(lin, dict):
        return None
    w, b = np.asarray(lin.get("weight", []), float), np.asarray(lin.get("bias", []), float)
    if w.shape != (1, 1) or b.shape != (1,):
        return None
    slope, intercept = w[0, 0], b[0]
    return f"y = {slope:.3g} x {'-' if intercept < 0 else '+'} {abs(intercept):.3g}"


def _depth0_config(run: Run) -> bool:
    return (run.config.get("model") or {}).get("depth") == 0


def _curve(ax, view: dict, equation: str | None = None) -> str:
    """The data and the fitted function; returns what the model found ("y = 2.03 x + 1.03")."""
    x, y = view["x"][:, 0], view["y"].reshape(len(view["x"]), -1)
    marks = view.get("marks")
    marks = np.zeros(len(x), bool) if marks is None else marks.astype(bool).reshape(-1)
    ax.plot(x[~marks], y[~marks, 0], "o", color=PALETTE[0], ms=3, alpha=0.6, label="data")
    if marks.any():
        ax.plot(x[marks], y[marks, 0], "x", color=PALETTE[1], ms=7, mew=2, label="outliers")
    pred = view["pred"].reshape(len(view["grid_x"]), -1)
    constant = np.ptp(x) == 0  # one input for every example: the model fits one number, drawn across
    for j in range(pred.shape[1]):
        label = "model" if j == 0 else None
        if constant:
            equation = f"model: {pred[0, 0]:.4g}"
            ax.axhline(pred[0, j], color="black", lw=2, label=label)
        else:
            ax.plot(view["grid_x"], pred[:, j], color="black", lw=2, label=label)
    if constant:
        ax.set_xticks([x[0]], [f"{x[0]:g}"])
        ax.set_xlim(x[0] - 1, x[0] + 1)
    ax.set_xlabel("input x (the same for every example)" if constant else "input x")
    ax.set_ylabel("target y / model output" if str(view["task"]) == "regression" else "label / P(class 1)")
    ax.grid(alpha=0.3)
    return equation or ""


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
    ax.set_xlabel("input x1")
    ax.set_ylabel("input x2")


def _margins(ax, run: Run, view: dict) -> str:
    """A linear classifier's margin: for hinge, the lines f(x) = +-margin where its loss stops
    pulling (dashed), at margin/|w| from the boundary; and the widest margin any line has on these
    points, the hard-margin SVM's (grey), when a line separates them at all. Returns the distances."""
    from sklearn.svm import SVC

    gx, gy, x = view["grid_x"], view["grid_y"], view["x"]
    y = view["y"].reshape(len(x), -1)[:, 0].astype(int)
    loss = value_text(run.config, "loss.name")
    lin = (run.summary or {}).get("linear") or {}
    norm = float(np.linalg.norm(lin.get("weight", [np.nan])))
    found = []
    if loss == "hinge":
        m = (
            float(value_text(run.config, "loss.margin"))
            if value_text(run.config, "loss.margin") != UNSET
            else 1.0
        )
        ax.contour(gx, gy, view["pred"], levels=[-m, m], colors="black", linewidths=1, linestyles="--")
        ax.plot([], [], "k--", lw=1, label="f(x) = ±margin: hinge stops pulling beyond")
        found.append(f"margin {m:g}/|w| = {m / norm:.3g}")
    if len(np.unique(y)) == 2:
        svm = SVC(kernel="linear", C=1e6).fit(x, y)
        if svm.score(x, y) == 1.0:  # separable: the maximum margin is known
            w, b = svm.coef_[0], svm.intercept_[0]
            score = w[0] * gx[None, :] + w[1] * gy[:, None] + b
            ax.contour(
                gx,
                gy,
                score,
                levels=[-1, 0, 1],
                colors="grey",
                linewidths=[1, 1.5, 1],
                linestyles=[":", "-", ":"],
            )
            ax.plot(
                [],
                [],
                color="grey",
                ls=":",
                label="widest margin of any line (hard-margin SVM)",
            )
            found.append(f"widest (SVM) {1 / np.linalg.norm(w):.3g}")
    return ", ".join(found)


def _depth0(g: Group) -> bool:
    w = g.stacked("weight_norm")
    return w is not None and w.shape[-1] == 1


def fig_linear(groups: list[Group]) -> Figure | None:
    """Depth-0 models (one linear layer: a line fit, a logistic regression, Nielsen's single neuron)
    over training: the model's output (for a one-example data set, the neuron's output a itself);
    for a sigmoid output its derivative relative to the peak 1/4 (Nielsen's neuron starts at 7%:
    nearly saturated, which is why it learns slowly); the weight norm (|w| for one input) and the
    gradients of the weights and the bias (log axis: the plateau is where they are tiny). The legend
    gives each config's final weights and bias from its summary. None when no group is depth 0.
    """
    shown = [g for g in groups if _depth0(g)]
    if not shown:
        return None
    sigmoid = [g for g in shown if value_text(g.runs[0].config, "model.output") == "sigmoid"]
    single = all(len(v["x"]) == 1 for g in shown for r in g.runs[:1] if (v := load_view(r)) is not None)
    weights = any(
        np.nanmax(np.abs(a), initial=0) > 0 for g in shown if (a := g.stacked("weight_norm")) is not None
    )
    panels = ["loss", "out", "change", "deriv", "w", "grad"]
    panels = [p for p, on in zip(panels, [True, True, single, bool(sigmoid), weights, True]) if on]
    rows = 1 if len(panels) <= 4 else 2  # more than four side by side is too wide to read
    cols = -(-len(panels) // rows)
    fig = _figure(4.6 * cols, 4.2 * rows + 0.4)
    grid = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in grid[len(panels) :]:
        ax.set_visible(False)
    axes = dict(zip(panels, grid))
    missing = []
    for g in shown:
        final = _final_parameters(g.runs[0])
        if final is None:
            missing.append(g.runs[0].path)
        label = f"{g.label}: {final}" if final and g.label else final or g.label
        lines = [("out", "act_mean", g.linestyle, 1.0), ("w", "weight_norm", g.linestyle, 1.0)]
        lines += [("grad", "grad_w", "-", 1.0), ("grad", "grad_b", ":", 1.0)]
        if g in sigmoid:
            lines.append(("deriv", "act_deriv", g.linestyle, OUTPUT_PEAK))
        for panel, key, style, scale in lines:
            m = g.mean(key)
            if panel not in axes:
                continue
            if m is None:
                continue
            steps, mean = m[0], m[1][:, 0] / scale
            ok = np.isfinite(mean) & ((mean > 0) if panel == "grad" else True)
            axes[panel].plot(
                steps[ok], mean[ok], label=label if panel == "out" else None,
                **{**line_style(g, int(ok.sum())), "ls": style},
            )  # fmt: skip
        _loss_line(axes["loss"], g)
        if single:
            _change_line(axes["change"], g)
    axes["loss"].set_yscale("log")
    axes["loss"].set_ylabel("training loss (each config's own units)")
    axes["loss"].set_title("Loss over training (▼: exactly 0 from here)")
    axes["out"].set_ylabel("the neuron's output a" if single else "model output (mean over the logged batch)")
    axes["out"].set_title("Output over training")
    if sigmoid:
        axes["deriv"].set_ylabel("sigma'(z) / 1/4 (1: steepest, 0: saturated)")
        axes["deriv"].set_title("Output derivative relative to its peak")
        axes["deriv"].set_ylim(-0.03, 1.05)
    if single:
        axes["change"].set_yscale("log")
        axes["change"].set_ylabel("|change of the output| per step")
        axes["change"].set_title("How far each step moves the output")
    if weights:
        axes["w"].set_ylabel("weight norm ||W|| (|w| for one input)")
        axes["w"].set_title("Weights over training")
    axes["grad"].set_yscale("log")
    axes["grad"].set_ylabel("gradient norm")
    axes["grad"].set_title("Gradients: solid ||dL/dW||, dotted ||dL/db||")
    for ax in axes.values():
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    _suptitle(fig, f"Depth-0 (linear) model over training, {_what(shown)}")
    _legend(fig, axes["out"], len(shown) + 3)
    _notes(fig, [lacking_note(missing, "final weights in their summary", prefix="")])
    return fig


OUTPUT_PEAK = 0.25  # the sigmoid's largest derivative, sigma'(0)


def _change_line(ax, g: Group) -> None:
    """For one example, how far the output moves per step (between logged steps, per step): a fixed
    step that jumps across the minimum keeps the same size, a decaying one shrinks with the rate."""
    m = g.mean("act_mean")
    if m is None or len(m[0]) < 2:
        return
    steps, out = m[0], m[1][:, 0]
    change = np.abs(np.diff(out)) / np.diff(steps)
    ok = np.isfinite(change) & (change > 0)
    ax.plot(steps[1:][ok], change[ok], label=g.label, **line_style(g, int(ok.sum())))


def _loss_line(ax, g: Group) -> None:
    """The trained loss on a log axis; a loss of exactly 0 (hinge beyond its margin) cannot be drawn
    there, so a triangle at the axis foot marks the step from which it stays 0, with that step."""
    m = g.mean("loss")
    if m is None:
        return
    steps, mean = m[0], m[1]
    ok = np.isfinite(mean) & (mean > 0)
    ax.plot(steps[ok], mean[ok], label=g.label, **line_style(g, int(ok.sum())))
    zero = np.isfinite(mean) & (mean == 0)
    if zero.any() and zero[np.argmax(zero) :].all():
        step = int(steps[np.argmax(zero)])
        ax.plot([step], [0.02], "v", color=g.color, ms=10, mec="black", transform=ax.get_xaxis_transform())
        ax.annotate(f"0 from step {step}", (step, 0.06), xycoords=ax.get_xaxis_transform(), color=g.color,
                    ha="center", fontsize="small")  # fmt: skip


def _final_parameters(run: Run) -> str | None:
    """'w = 2.02, b = 3.05' (or the matrices) from the summary's `linear`; None when not recorded."""
    lin = (run.summary or {}).get("linear")
    if not isinstance(lin, dict):
        return None
    w, b = np.asarray(lin.get("weight", []), float), np.asarray(lin.get("bias", []), float)
    if w.size <= 4 and b.size <= 2:
        ws = ", ".join(f"{v:.3g}" for v in w.ravel())
        bs = ", ".join(f"{v:.3g}" for v in b.ravel())
        return f"final w = {ws}, b = {bs}"
    return f"final weights {w.shape[0]}x{w.shape[1]}, |W| = {np.linalg.norm(w):.3g}"
