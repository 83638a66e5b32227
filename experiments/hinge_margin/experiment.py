"""Hinge and the margin: on separable data hinge stops at zero loss with every margin >= 1, while
cross-entropy's weights keep growing for as long as training runs.

Everything is read back from the run folders: the final training loss (`summary.json`), the
recorded weight norm of every logged step (`metrics.jsonl`), and the margins y f(x) of the trained
model (`model.pt`) on the training points (`view.npz`). Five seeds per loss (each draws its own
data set and initial weights); a check passes only when it holds on every seed.
"""

from __future__ import annotations

import os

import numpy as np

import lossbench
from lossbench.verdicts import every_seed, is_number
from lossbench.viz import new_figure, save_figure

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = [0, 1, 2, 3, 4]
FLOAT32_TOL = 1e-6  # the margins are recomputed outside the training loop, in float32

CLAIM = (
    "On linearly separable data hinge reaches exactly zero loss with every point at margin >= 1 "
    "and then stops, while cross-entropy never reaches zero and its weight norm keeps growing."
)
SOURCE = (
    "The article (hinge maximises the margin); SCIENCE.md section 3; Soudry et al. 2018, 'The "
    "implicit bias of gradient descent on separable data' (the logistic-loss weight norm grows like log t)."
)
EXPECTED = {
    "hinge_final_loss": {"value": 0.0, "source": "SCIENCE.md 3: the hinge training loss reaches exactly 0"},
    "hinge_min_margin": {"min": 1.0, "source": "SCIENCE.md 3: every point ends with y f(x) >= 1"},
    "hinge_moves_after_zero": {
        "value": 0.0,
        "source": "max(0, 1 - m) has zero gradient once every m >= 1: the weights stop",
    },
    "bce_final_loss": {"min_exclusive": 0.0, "source": "SCIENCE.md 3: cross-entropy never reaches 0"},
    "bce_norm_decreases": {
        "value": 0,
        "source": "SCIENCE.md 3: the weight norm keeps growing as long as training runs",
    },
}


def run(out: str, fast: bool) -> dict:
    n_samples, steps = (100, 400) if fast else (200, 1000)
    measured = {"seeds": SEEDS, "n_samples": n_samples, "steps": steps}
    views = {}
    for loss in ("hinge", "bce"):
        per = {k: [] for k in ("final_loss", "min_margin", "first_zero_step", "moves_after_zero")}
        per.update(norm_decreases=[], norm_mid=[], norm_end=[])
        for seed in SEEDS:
            overrides = [f"loss={loss}", f"seed={seed}", f"name={loss}", f"data.n_samples={n_samples}"]
            cfg = lossbench.load_config(
                os.path.join(HERE, "separable.yaml"), *overrides, f"train.steps={steps}"
            )
            r = lossbench.run(cfg, out=out)
            summary, folder = r.summary, r.path
            per["final_loss"].append(summary["final_train_loss"])
            per["min_margin"].append(_min_margin(folder))
            norm, row_loss, step = r.metrics["weight_norm"][:, 0], r.metrics["loss"], r.metrics["step"]
            zero = np.flatnonzero(row_loss == 0)
            per["first_zero_step"].append(int(step[zero[0]]) if len(zero) else None)
            per["moves_after_zero"].append(
                float(np.abs(norm[zero[0] :] - norm[zero[0]]).max()) if len(zero) else None
            )
            half = norm[len(norm) // 2 :]
            per["norm_decreases"].append(int((np.diff(half) <= 0).sum()))
            per["norm_mid"].append(float(half[0]))
            per["norm_end"].append(float(norm[-1]))
            views[(loss, seed)] = (folder, r)
        measured[loss] = per
    _figure(views, out)
    return measured


def _min_margin(folder: str) -> float:
    """The smallest y f(x), y in {-1, +1}, of the trained linear model over the training points."""
    import torch

    state = torch.load(os.path.join(folder, "model.pt"), weights_only=True)
    view = np.load(os.path.join(folder, "view.npz"))
    x = torch.tensor(view["x"], dtype=torch.float32)
    y = torch.tensor(view["y"], dtype=torch.float32).reshape(-1)
    z = (x @ state["layers.0.weight"].T + state["layers.0.bias"]).reshape(-1)
    return float(((2 * y - 1) * z).min())


def _figure(views: dict, out: str) -> None:
    fig = new_figure(9, 3.8)
    a, b = fig.subplots(1, 2)
    hinge = np.load(os.path.join(views[("hinge", 0)][0], "view.npz"))
    bce = np.load(os.path.join(views[("bce", 0)][0], "view.npz"))
    x, y = hinge["x"], hinge["y"].reshape(-1)
    a.scatter(x[y == 0, 0], x[y == 0, 1], s=8, color="C0")
    a.scatter(x[y == 1, 0], x[y == 1, 1], s=8, color="C1")
    gx, gy = np.meshgrid(hinge["grid_x"], hinge["grid_y"])
    a.contour(
        gx, gy, hinge["pred"], levels=[-1, 0, 1], colors="k", linestyles=["--", "-", "--"], linewidths=1
    )
    a.contour(gx, gy, bce["pred"], levels=[0], colors="C3", linewidths=1)
    a.plot([], [], "k-", label="hinge boundary")
    a.plot([], [], "k--", label="hinge margin f(x) = +-1")
    a.plot([], [], "C3-", label="cross-entropy boundary")
    a.set(title="separable data, seed 0", xlabel="x1", ylabel="x2")
    a.legend(fontsize=7, loc="lower left")
    for (loss, seed), (_, r) in views.items():
        color = "k" if loss == "hinge" else "C3"
        b.plot(
            r.metrics["step"],
            r.metrics["weight_norm"][:, 0],
            color=color,
            lw=0.8,
            label=loss if seed == 0 else None,
        )
    b.set(title="weight norm while training (5 seeds)", xlabel="step", ylabel="||w||")
    b.legend(fontsize=8)
    save_figure(fig, os.path.join(out, "hinge_margin.png"), dpi=80)


def _range(values) -> str:
    if not values or not all(is_number(v) for v in values):
        return str(values)
    return f"{min(values):.4g} .. {max(values):.4g}"


def judge(measured: dict) -> list[dict]:
    E = EXPECTED
    hinge, bce = measured.get("hinge") or {}, measured.get("bce") or {}
    rows = [
        (
            "hinge: final training loss",
            hinge.get("final_loss"),
            E["hinge_final_loss"]["value"],
            lambda v: v == E["hinge_final_loss"]["value"],
            "exactly 0 on every seed",
        ),
        (
            "hinge: smallest margin y f(x)",
            hinge.get("min_margin"),
            f">= {E['hinge_min_margin']['min']} (float32: - {FLOAT32_TOL:g})",
            lambda v: v >= E["hinge_min_margin"]["min"] - FLOAT32_TOL,
            "recomputed from model.pt on the training points",
        ),
        (
            "hinge: weight-norm change after the loss hits 0",
            hinge.get("moves_after_zero"),
            E["hinge_moves_after_zero"]["value"],
            lambda v: v == E["hinge_moves_after_zero"]["value"],
            f"loss 0 first recorded at steps {hinge.get('first_zero_step')}: the points past the margin stop contributing",
        ),
        (
            "cross-entropy: final training loss",
            bce.get("final_loss"),
            "> 0",
            lambda v: v > E["bce_final_loss"]["min_exclusive"],
        ),
        (
            "cross-entropy: recorded weight norm not growing (second half)",
            bce.get("norm_decreases"),
            E["bce_norm_decreases"]["value"],
            lambda v: v == E["bce_norm_decreases"]["value"],
            f"count of logged intervals without growth; norm {_range(bce.get('norm_mid'))} at mid-run -> "
            f"{_range(bce.get('norm_end'))} at the end",
        ),
    ]
    return [
        every_seed(name, values, expected, ok, *(note or [""]), strict=True)
        for name, values, expected, ok, *note in rows
    ]
