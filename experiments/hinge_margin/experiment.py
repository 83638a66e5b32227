"""Hinge and the margin: on separable data hinge stops at zero loss with every margin >= 1, at a
geometric margin that approaches the largest possible one as the points get more, the steps smaller
and the training longer; cross-entropy's weights keep growing and their direction approaches the
maximum-margin one, but only like 1 / log t.

Everything is read back from the run folders: the final training loss (`summary.json`), the
recorded weight norm of every logged step (`metrics.jsonl`), the trained weights (`model.pt`), the
weights kept along the way (`snapshots.npz`, `train.snapshots`), and the training points
(`view.npz`). The reference for "maximises the margin" is computed exactly, independently of
lossbench, on the same training points: in two dimensions the largest margin is half the distance
between the two classes' convex hulls, attained either along the line joining a vertex of each hull
or across an edge of one of them, so trying every such direction gives it exactly (`max_margin`);
scikit-learn's `SVC` at a tight tolerance is compared with it. Five seeds per setting (each draws
its own data set and initial weights).
"""

from __future__ import annotations

import math
import os

import numpy as np
from scipy.spatial import ConvexHull

import lossbench
from lossbench.verdicts import check, every_seed, expect, is_number, lookup, numbers
from lossbench.viz import new_figure, save_figure

HERE = os.path.dirname(os.path.abspath(__file__))
N_SEEDS = 5
FLOAT32_TOL = 1e-6  # the margins are recomputed outside the training loop from float32 weights
MAIN = {"n": 200, "lr": 2.0, "steps": 1000}  # the setting the 1% tolerance was first measured on
LRS = [0.5, 2.0, 20.0]  # hinge at n = 200, each trained to zero loss (lr 0.5 needs up to ~1800 steps)
LR_STEPS = 2000
POINTS = [50, 100, 200, 400]  # hinge at lr 2, 1000 steps
BCE_STEPS = {False: 5000, True: 2000}  # cross-entropy's run (full, fast), read every 1% of it

CLAIM = (
    "On linearly separable data hinge reaches exactly zero loss with every point at margin >= 1 and "
    "stops; its geometric margin is below the largest possible one and approaches it with more points, "
    "smaller steps and longer training (within 1% of it only in some settings); cross-entropy's weight "
    "norm keeps growing and its direction approaches the maximum-margin direction only like 1 / log t."
)
SOURCE = (
    "The article (hinge maximises the margin); the hinge loss max(0, 1 - y f(x)); the hard-margin SVM "
    "(Cortes & Vapnik 1995), computed exactly here; Soudry et al. 2018, 'The implicit bias of gradient "
    "descent on separable data' (Theorem 3: the logistic-loss direction w(t) / ||w(t)|| converges to the "
    "max-margin direction, its distance falling like 1 / log t; the norm grows like log t)."
)
EXPECTED = {
    "hinge_final_loss": {
        "value": 0.0,
        "source": "max(0, 1 - m) is exactly 0 once every margin m >= 1, reachable on separable data",
    },
    "hinge_min_margin": {"min": 1.0, "source": "zero hinge loss means every point has y f(x) >= 1"},
    "hinge_moves_after_zero": {
        "value": 0.0,
        "source": "max(0, 1 - m) has zero gradient once every m >= 1: the weights stop",
    },
    "hinge_margin_vs_max": {
        "range": [0.99, 1.0 + FLOAT32_TOL],
        "source": "the exact maximum margin on the same points is an upper bound (never above it: "
        f"{FLOAT32_TOL:g} for float32 weights); within 1% below it is a tolerance chosen after seeing "
        "this setting (n = 200, lr 2, 1000 steps: an independent re-computation measured 0.2-0.6% "
        "below); plain gradient descent on the hinge loss stops at the first weights with every "
        "y f(x) >= 1, so it has no reason to reach the maximum exactly",
    },
    "trend": {
        "source": "ours: gradient descent on the hinge loss stops where the constraints y f(x) >= 1 "
        "first hold, and stays there; more points and smaller steps each bring that point nearer the "
        "minimum-norm one (the maximum margin), and so does training longer while the loss is not yet 0. "
        "Checked on the seed mean of 1 - margin / maximum: it falls from each setting to the next",
    },
    "bce_margin_vs_hinge": {
        "source": "Soudry et al. 2018: gradient descent on the logistic loss approaches the max-margin "
        "direction only like 1 / log t, so even after more steps than hinge's its margin is below hinge's",
    },
    "svc_vs_exact": {
        "range": [1 - 1e-5, 1 + 1e-9],
        "source": "scikit-learn's SVC(kernel='linear', C=1e6, tol=1e-10), an independent solver: it can "
        "never exceed the exact maximum (1e-9: float64) and, with C = 1e6 allowing a little slack, "
        "comes within 1e-5 of it (measured 1e-7 to 5e-7)",
    },
    "bce_norm_decreases": {
        "value": 0,
        "source": "Soudry et al. 2018: on separable data the logistic loss has no minimiser; the weight "
        "norm grows like log t for as long as training runs",
    },
    "bce_direction": {
        "factor": [0.1, 1.0],
        "source": "Soudry et al. 2018, Theorem 3: the direction w(t) / ||w(t)|| tends to the "
        "max-margin direction with a distance O(1 / log t) (up to log log t). Checked on the direction's "
        "geometric margin (a function of the direction alone): over the last decade of steps the seed "
        "mean of 1 - margin / maximum falls (it approaches) by a factor above 0.1 (slowly: a 1 / log t "
        "rate falls by log(t/10) / log t, 0.73 from 500 to 5000 steps; a 1 / t rate by 0.1; the 0.1 is "
        "that boundary, a choice). Per seed the fall is not monotone within 5000 steps (the log t "
        "regime is asymptotic), so the seed mean is judged",
    },
}


def max_margin(x: np.ndarray, y01: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The exact hard-margin separator of 2-D points: (w, b, geometric margin), scaled so that the
    closest points have y f(x) = 1.

    The largest margin is half the distance between the classes' convex hulls; that distance is
    attained along the line joining a vertex of each hull, or across an edge of one hull, so the
    best of those directions u (with the boundary halfway between the classes' projections) is the
    maximum, exactly.
    """
    pos, neg = x[y01 == 1], x[y01 == 0]
    hulls = [p[ConvexHull(p).vertices] if len(p) > 2 else p for p in (pos, neg)]
    dirs = [(p - q)[None] for p in hulls[0] for q in hulls[1]]
    for h in hulls:
        edge = np.roll(h, -1, 0) - h
        dirs += [np.c_[-edge[:, 1], edge[:, 0]], np.c_[edge[:, 1], -edge[:, 0]]]
    u = np.concatenate(dirs)
    u = u / np.linalg.norm(u, axis=1, keepdims=True)
    lo, hi = (pos @ u.T).min(0), (neg @ u.T).max(0)
    k = int(np.argmax(lo - hi))
    margin = float(lo[k] - hi[k]) / 2
    return u[k] / margin, -float(lo[k] + hi[k]) / 2 / margin, margin


def geometric_margin(x: np.ndarray, y01: np.ndarray, w: np.ndarray, b: float) -> float:
    """min over the points of y f(x) / ||w||, y in {-1, +1}: the distance of the closest point to the
    boundary (negative when a point is on the wrong side)."""
    return float(((2 * y01 - 1) * (x @ w + b)).min() / np.linalg.norm(w))


def _svc_margin(x: np.ndarray, y01: np.ndarray) -> float:
    from sklearn.svm import SVC

    svm = SVC(kernel="linear", C=1e6, tol=1e-10).fit(x, y01)
    return geometric_margin(x, y01, svm.coef_[0], float(svm.intercept_[0]))


def _configs(loss: str, n: int, steps: int, lrs: list[float], seeds: list[int], snapshots: int = 0) -> list:
    """One config per (lr, seed); one name per (loss, n, steps), so `run_many` stacks them."""
    return [
        lossbench.load_config(
            os.path.join(HERE, "separable.yaml"),
            f"loss={loss}",
            f"seed={s}",
            f"name={loss}_n{n}_steps{steps}",
            f"data.n_samples={n}",
            f"train.steps={steps}",
            f"optim.lr={lr}",
            f"train.snapshots={snapshots}",
        )
        for lr in lrs
        for s in seeds
    ]


def _view(folder: str) -> tuple[np.ndarray, np.ndarray]:
    view = np.load(os.path.join(folder, "view.npz"))
    return view["x"].astype(np.float64), view["y"].reshape(-1).astype(np.float64)


def _snapshots(folder: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, w [K, 2], b [K]) of the weights kept during training, in float64."""
    snap = np.load(os.path.join(folder, "snapshots.npz"))
    return (
        snap["steps"],
        snap["layers.0.weight"][:, 0].astype(np.float64),
        snap["layers.0.bias"][:, 0].astype(np.float64),
    )


def run(out: str, fast: bool, seed: int = 0) -> dict:
    seeds = [seed + i for i in range(N_SEEDS)]
    bce_steps = BCE_STEPS[fast]
    plan = [("lr", cfg) for cfg in _configs("hinge", MAIN["n"], LR_STEPS, LRS, seeds, LR_STEPS // 100)]
    plan += [
        (f"n{n}", cfg)
        for n in POINTS
        if n != MAIN["n"]
        for cfg in _configs("hinge", n, MAIN["steps"], [MAIN["lr"]], seeds)
    ]
    plan += [
        ("bce", cfg) for cfg in _configs("bce", MAIN["n"], bce_steps, [MAIN["lr"]], seeds, bce_steps // 100)
    ]
    results = lossbench.run_many([cfg for _, cfg in plan], out)

    exact: dict = {}  # data seed and n -> (x, y, (w, b, margin)); the data depend on them only
    measured: dict = {"seeds": seeds, "main": MAIN, "margin_over_max": {}, "svc_over_exact": []}
    hinge = {k: [] for k in ("final_loss", "min_margin", "first_zero_step", "moves_after_zero")}
    bce = {
        k: []
        for k in ("margin_over_max", "norm_decreases", "norm_mid", "norm_end", "direction_gap", "margin_gap")
    }
    views = {}
    for (part, cfg), r in zip(plan, results):
        key = (cfg.seed, cfg.data.kwargs["n_samples"])
        if key not in exact:
            x, y = _view(r.path)
            exact[key] = (x, y, max_margin(x, y))
            if key[1] == MAIN["n"]:
                measured["svc_over_exact"].append(_svc_margin(x, y) / exact[key][2][2])
        x, y, (w_max, b_max, m_max) = exact[key]
        lr = cfg.optim.kwargs["lr"]
        if part == "bce":
            steps, w, b = _snapshots(r.path)
            margins = [geometric_margin(x, y, wi, bi) / m_max for wi, bi in zip(w, b)]
            bce["margin_over_max"].append(margins[-1])
            u_max = w_max / np.linalg.norm(w_max)
            gap = {int(t): float(np.linalg.norm(wi / np.linalg.norm(wi) - u_max)) for t, wi in zip(steps, w)}
            bce["direction_gap"].append(gap)
            bce["margin_gap"].append({int(t): 1 - m for t, m in zip(steps, margins)})
            norm = r.metrics["weight_norm"][:, 0]
            half = norm[len(norm) // 2 :]
            bce["norm_decreases"].append(int((np.diff(half) <= 0).sum()))
            bce["norm_mid"].append(float(half[0]))
            bce["norm_end"].append(float(norm[-1]))
            views[("bce", cfg.seed)] = (r, (steps, margins))
            continue
        if part == "lr":  # the weights after 1000 steps and at the end, from the snapshots
            steps, w, b = _snapshots(r.path)
            at = {int(t): geometric_margin(x, y, wi, bi) / m_max for t, wi, bi in zip(steps, w, b)}
            end = max(at)
            measured["margin_over_max"].setdefault(f"lr {lr:g}, {MAIN['steps']} steps", []).append(
                at[MAIN["steps"]]
            )
            measured["margin_over_max"].setdefault(f"lr {lr:g}, {LR_STEPS} steps", []).append(at[end])
            zero = np.flatnonzero(r.metrics["loss"] == 0)
            measured.setdefault("first_zero_step", {}).setdefault(f"lr {lr:g}", []).append(
                int(r.metrics["step"][zero[0]]) if len(zero) else None
            )
            if lr != MAIN["lr"]:
                continue
            _hinge_run(hinge, r, x, y)
            views[("hinge", cfg.seed)] = (r, (w_max, b_max))
        else:
            w, b = _params(r.path)
            measured["margin_over_max"].setdefault(f"n {cfg.data.kwargs['n_samples']}", []).append(
                geometric_margin(x, y, w, b) / m_max
            )
    for name in (f"lr {MAIN['lr']:g}, {MAIN['steps']} steps",):
        measured["margin_over_max"][f"n {MAIN['n']}"] = measured["margin_over_max"][name]
    measured["hinge"], measured["bce"], measured["bce_steps"] = hinge, bce, bce_steps
    _figure(views, seeds[0], out)
    return measured


def _hinge_run(per: dict, r, x: np.ndarray, y: np.ndarray) -> None:
    """The main setting's hinge checks, from the run's summary, metrics and final weights."""
    per["final_loss"].append(r.summary["final_train_loss"])
    w, b = _params(r.path)
    per["min_margin"].append(
        float(((2 * y - 1) * (x.astype(np.float32) @ w.astype(np.float32) + np.float32(b))).min())
    )
    norm, row_loss, step = r.metrics["weight_norm"][:, 0], r.metrics["loss"], r.metrics["step"]
    zero = np.flatnonzero(row_loss == 0)
    per["first_zero_step"].append(int(step[zero[0]]) if len(zero) else None)
    per["moves_after_zero"].append(
        float(np.abs(norm[zero[0] :] - norm[zero[0]]).max()) if len(zero) else None
    )


def _params(folder: str) -> tuple[np.ndarray, float]:
    """(w, b) of the trained linear model, in float64."""
    import torch

    state = torch.load(os.path.join(folder, "model.pt"), weights_only=True)
    return state["layers.0.weight"].double().numpy()[0], float(state["layers.0.bias"][0])


def _figure(views: dict, seed: int, out: str) -> None:
    fig = new_figure(13, 3.8)
    a, b, c = fig.subplots(1, 3)
    r_hinge, (w_max, b_max) = views[("hinge", seed)]
    hinge = np.load(os.path.join(r_hinge.path, "view.npz"))
    bce = np.load(os.path.join(views[("bce", seed)][0].path, "view.npz"))
    x, y = hinge["x"], hinge["y"].reshape(-1)
    a.scatter(x[y == 0, 0], x[y == 0, 1], s=8, color="C0")
    a.scatter(x[y == 1, 0], x[y == 1, 1], s=8, color="C1")
    gx, gy = np.meshgrid(hinge["grid_x"], hinge["grid_y"])
    a.contour(
        gx, gy, hinge["pred"], levels=[-1, 0, 1], colors="k", linestyles=["--", "-", "--"], linewidths=1
    )
    a.contour(gx, gy, bce["pred"], levels=[0], colors="C3", linewidths=1)
    a.contour(
        gx, gy, gx * w_max[0] + gy * w_max[1] + b_max, levels=[0], colors="C2", linewidths=1, linestyles=":"
    )
    a.plot([], [], "k-", label="hinge boundary")
    a.plot([], [], "k--", label="hinge margin f(x) = +-1")
    a.plot([], [], "C3-", label="cross-entropy boundary")
    a.plot([], [], "C2:", label="exact max-margin")
    a.set(title=f"separable data, seed {seed}", xlabel="x1", ylabel="x2")
    a.legend(fontsize=7, loc="lower left")
    for (loss, s), (r, _) in views.items():
        color = "k" if loss == "hinge" else "C3"
        b.plot(
            r.metrics["step"],
            r.metrics["weight_norm"][:, 0],
            color=color,
            lw=0.8,
            label=loss if s == seed else None,
        )
    b.set(title=f"weight norm while training ({N_SEEDS} seeds)", xlabel="step", ylabel="||w||", xscale="log")
    b.legend(fontsize=8)
    for (loss, s), (_, curve) in views.items():
        if loss == "bce":
            steps, margins = curve
            keep = steps >= 100
            gap = 1 - np.asarray(margins)[keep]
            c.loglog(steps[keep], gap, color="C3", lw=0.8, label="cross-entropy" if s == seed else None)
    c.set(title="cross-entropy: 1 - margin / the maximum", xlabel="step", ylabel="gap to the maximum margin")
    c.legend(fontsize=7)
    save_figure(fig, os.path.join(out, "hinge_margin.png"), dpi=80)


# ----- judging: pure, from `measured` and EXPECTED only ------------------------------------------


def _range(values) -> str:
    if not values or not all(is_number(v) for v in values):
        return str(values)
    return f"{min(values):.4g} .. {max(values):.4g}"


def _within(settings: dict) -> str:
    """Each setting with how many seeds end within 1% of the maximum."""
    lo = EXPECTED["hinge_margin_vs_max"]["range"][0]
    parts = []
    for name, values in settings.items():
        vals = numbers(values)
        if vals:
            parts.append(
                f"{name}: {sum(v >= lo for v in vals)} of {len(vals)} within 1% ({min(vals):.3f}-{max(vals):.3f})"
            )
    return "; ".join(parts)


def _trend(name: str, settings: dict, order: list[str], extra: str = "") -> dict:
    """The seed-mean 1 - margin / maximum falls from each setting in `order` to the next."""
    gaps = []
    for key in order:
        vals = numbers(lookup(settings, key))
        gaps.append(None if vals is None else 1 - sum(vals) / len(vals))
    return check(
        name,
        gaps,
        " > ".join(order) + " (seed mean of 1 - margin / maximum, falling)",
        lambda v: all(a > b for a, b in zip(v, v[1:])),
        "; ".join(
            t
            for t in (_within({k: lookup(settings, k) for k in order}), extra, EXPECTED["trend"]["source"])
            if t
        ),
        shown=None if None in gaps else "[" + ", ".join(f"{g:.4f}" for g in gaps) + "]",
    )


def judge(measured: dict) -> list[dict]:
    E = EXPECTED
    hinge, bce = measured.get("hinge") or {}, measured.get("bce") or {}
    settings = measured.get("margin_over_max") or {}
    main = f"lr {MAIN['lr']:g}, {MAIN['steps']} steps"
    h, c = numbers(settings.get(main)), numbers(bce.get("margin_over_max"))
    gap = [b - a for a, b in zip(h, c)] if h and c and len(h) == len(c) else None
    failing = {
        k: v
        for k, v in settings.items()
        if numbers(v) and min(numbers(v)) < E["hinge_margin_vs_max"]["range"][0]
    }
    rows = [
        (
            "hinge: final training loss",
            hinge.get("final_loss"),
            E["hinge_final_loss"]["value"],
            lambda v: v == E["hinge_final_loss"]["value"],
            "exactly 0 on every seed (n 200, lr 2)",
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
            "hinge: geometric margin / the exact maximum (n 200, lr 2, 1000 steps)",
            settings.get(main),
            expect(E["hinge_margin_vs_max"])[0],
            expect(E["hinge_margin_vs_max"])[1],
            "settings where not every seed is within 1%: "
            + (_within(failing) if failing else "none")
            + "; "
            + E["hinge_margin_vs_max"]["source"],
        ),
        (
            "cross-entropy at the end of its run: geometric margin / the maximum, minus hinge's (same seed, lr 2)",
            gap,
            "< 0 on every seed",
            lambda v: v < 0,
            f"cross-entropy's ratios {_range(c)} after {measured.get('bce_steps')} steps, hinge's after "
            f"{MAIN['steps']} (it stops moving once its loss is 0); {E['bce_margin_vs_hinge']['source']}",
        ),
        (
            "reference: scikit-learn SVC's margin / the exact maximum",
            measured.get("svc_over_exact"),
            expect(E["svc_vs_exact"])[0],
            expect(E["svc_vs_exact"])[1],
            E["svc_vs_exact"]["source"],
        ),
        (
            "cross-entropy: recorded weight norm not growing (second half)",
            bce.get("norm_decreases"),
            E["bce_norm_decreases"]["value"],
            lambda v: v == E["bce_norm_decreases"]["value"],
            f"count of logged intervals without growth; norm {_range(bce.get('norm_mid'))} at mid-run -> "
            f"{_range(bce.get('norm_end'))} at the end; {E['bce_norm_decreases']['source']}",
        ),
    ]
    checks = [
        every_seed(name, values, expected, ok, note, strict=True) for name, values, expected, ok, note in rows
    ]
    # bce_margin_vs_hinge compares cross-entropy after its whole run with hinge after 1000 steps
    checks.append(
        _trend(
            "hinge: margin approaches the maximum with more points (lr 2, 1000 steps)",
            settings,
            [f"n {n}" for n in POINTS],
        )
    )
    zero = measured.get("first_zero_step") or {}
    checks.append(
        _trend(
            f"hinge: margin approaches the maximum with smaller steps (n 200, {LR_STEPS} steps, loss 0)",
            settings,
            [f"lr {lr:g}, {LR_STEPS} steps" for lr in reversed(LRS)],
            f"first step with loss 0: {zero}",
        )
    )
    checks.append(
        _trend(
            f"hinge: margin approaches the maximum with longer training (lr {LRS[0]:g}, n 200)",
            settings,
            [f"lr {LRS[0]:g}, {n} steps" for n in (MAIN["steps"], LR_STEPS)],
        )
    )
    checks.append(_direction(bce.get("margin_gap"), bce.get("direction_gap")))
    return checks


def _direction(margin_gaps, distances) -> dict:
    """Cross-entropy's direction: its margin nearer the maximum over the last decade, slowly."""
    exp = EXPECTED["bce_direction"]
    lo, hi = exp["factor"]
    name = "cross-entropy: the direction's margin approaches the maximum, slowly (last decade of steps)"
    expected = f"seed mean of 1 - margin / maximum falls by a factor in ({lo:g}, {hi:g})"
    try:
        series = [{int(t): float(v) for t, v in g.items()} for g in margin_gaps]
        end = max(series[0])
        start = min(series[0], key=lambda t: abs(t - end / 10))
        before = [g[start] for g in series]
        after = [g[end] for g in series]
        dist = [{int(t): float(v) for t, v in g.items()}[end] for g in distances]
    except (TypeError, ValueError, KeyError, AttributeError, IndexError):
        return check(name, None, expected, False)
    factor = (sum(after) / len(after)) / (sum(before) / len(before)) if sum(before) > 0 else math.nan
    return check(
        name,
        factor,
        expected,
        lambda v: lo < v < hi,
        f"1 - margin / maximum at step {start}: {_range(before)}, at step {end}: {_range(after)} (per seed "
        f"factors {_range([a / b for a, b in zip(after, before) if b > 0])}); the distance of w / ||w|| "
        f"from the max-margin direction at step {end}: {_range(dist)}; {exp['source']}",
    )
