"""Outliers: MSE is dragged by them (it fits the mean), MAE is not (the median), Huber lies near MAE.

Every fitted parameter is read back from the run folders (`model.pt`, the trained depth-0 model:
its bias is the fitted constant or intercept, its weight the slope). Five seeds per loss; a check
passes only when every seed is within the tolerance.
"""

from __future__ import annotations

import math
import os

import numpy as np

import lossbench
from lossbench.verdicts import every_seed, not_measured, numbers
from lossbench.viz import new_figure, save_figure

HERE = os.path.dirname(os.path.abspath(__file__))
LOSSES = {"mse": "loss=mse", "mae": "loss=mae", "huber": "loss={name: huber, delta: 1.0}"}
SEEDS = [0, 1, 2, 3, 4]

CLAIM = (
    "MSE is pulled by outliers (it fits the mean), MAE is not (it fits the median), and Huber lies near MAE."
)
SOURCE = "The article (MSE is sensitive to outliers; Huber has the strengths of both); SCIENCE.md section 2."
EXPECTED = {
    "constant_mse": {"value": 22.0, "tol": 0.01, "source": "the mean of [1, 2, 3, 4, 100]"},
    "constant_mae": {"value": 3.0, "tol": 0.05, "source": "the median of [1, 2, 3, 4, 100]"},
    "constant_huber": {
        "value": 3.0,
        "tol": 0.05,
        "source": "SCIENCE.md 2 (sim); at b = 3 the clipped residuals sum to 1 + 1 + 0 - 1 - 1 = 0",
    },
    "line_mse": {"value": 3.1, "tol": 0.3, "source": "SCIENCE.md 2 (sim): intercept dragged to about 3.1"},
    "line_mae": {"value": 1.0, "tol": 0.15, "source": "SCIENCE.md 2 (sim): intercept stays near 1.0"},
    "line_huber": {"value": 1.1, "tol": 0.15, "source": "SCIENCE.md 2 (sim): intercept near 1.1"},
}


def _params(folder: str) -> tuple[float, float]:
    """(weight, bias) of the trained depth-0 model in a run folder."""
    import torch

    state = torch.load(os.path.join(folder, "model.pt"), weights_only=True)
    return float(state["layers.0.weight"].reshape(-1)[0]), float(state["layers.0.bias"].reshape(-1)[0])


def run(out: str, fast: bool) -> dict:
    steps = {"constant": 100 if fast else 300, "line": 200 if fast else 500}
    measured: dict = {"seeds": SEEDS}
    folders = {}
    for part in ("constant", "line"):
        for loss, override in LOSSES.items():
            fits = []
            for seed in SEEDS:
                overrides = [override, f"seed={seed}", f"name={part}_{loss}", f"train.steps={steps[part]}"]
                r = lossbench.run(
                    lossbench.load_config(os.path.join(HERE, f"{part}.yaml"), *overrides), out=out
                )
                folder = r.path
                if r.summary["status"] != "finished":
                    raise RuntimeError(f"{folder} {r.summary['status']}")
                fits.append(_params(folder))
                folders[(part, loss, seed)] = folder
            if part == "constant":
                measured[f"constant_{loss}"] = [b for _, b in fits]
            else:
                measured[f"line_{loss}"] = [b for _, b in fits]
                measured[f"line_{loss}_slope"] = [w for w, _ in fits]
    _figure(folders, measured, out)
    return measured


def _figure(folders: dict, measured: dict, out: str) -> None:
    colors = {"mse": "C3", "mae": "C0", "huber": "C2"}
    fig = new_figure(9, 3.4)
    a, b = fig.subplots(1, 2)
    targets = [1, 2, 3, 4, 100]
    a.scatter(range(len(targets)), targets, color="k", zorder=3, label="targets")
    for loss, c in colors.items():
        value = measured[f"constant_{loss}"][0]
        a.axhline(value, color=c, label=f"{loss}: {value:.2f}")
    a.set(
        yscale="log",
        ylim=(0.5, 200),
        xlabel="example",
        ylabel="target / fitted constant",
        title="one constant",
    )
    a.legend(fontsize=8)
    view = np.load(os.path.join(folders[("line", "mse", 0)], "view.npz"))
    x, y, marks = view["x"][:, 0], view["y"][:, 0], view["marks"].astype(bool)
    b.scatter(x[~marks], y[~marks], s=6, color="grey", label="data")
    b.scatter(x[marks], y[marks], s=10, color="k", marker="x", label="outliers (+20)")
    for loss, c in colors.items():
        v = np.load(os.path.join(folders[("line", loss, 0)], "view.npz"))
        b.plot(v["grid_x"], v["pred"][:, 0], color=c, label=f"{loss}: b = {measured[f'line_{loss}'][0]:.2f}")
    b.set(xlabel="x", ylabel="y", title="line fit, 10% outliers (seed 0)", ylim=(-3, 25))
    b.legend(fontsize=8, loc="center left")
    save_figure(fig, os.path.join(out, "outliers.png"), dpi=80)


def judge(measured: dict) -> list[dict]:
    checks = []
    for key, e in EXPECTED.items():
        part, loss = key.split("_")
        what = "fitted constant" if part == "constant" else "fitted intercept"
        checks.append(
            every_seed(
                f"{loss} {what}",
                measured.get(key),
                f"{e['value']} +- {e['tol']}",
                lambda v, e=e: abs(v - e["value"]) <= e["tol"],
                f"every one of the seeds within the tolerance; {e['source']}",
                strict=True,
            )
        )
    # the point of Huber: on every seed it lies nearer the robust fit than the dragged one
    mse, mae, huber = (numbers(measured.get(f"line_{k}")) for k in ("mse", "mae", "huber"))
    name, expected = "huber nearer MAE than MSE (line)", "abs(huber - mae) < abs(huber - mse)"
    if not (mse and mae and huber and len(mse) == len(mae) == len(huber)):
        checks.append(not_measured(name, expected))
    else:
        gaps = [(abs(h - a), abs(h - s)) for s, a, h in zip(mse, mae, huber)]
        worst = max(near / far if far else math.inf for near, far in gaps)
        checks.append(
            {
                "check": name,
                "measured": f"largest ratio {worst:.3g}",
                "expected": expected,
                "verdict": "PASS" if all(near < far for near, far in gaps) else "FAIL",
                "note": "on every seed; the ratio abs(huber - mae) / abs(huber - mse)",
            }
        )
    return checks
