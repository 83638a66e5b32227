"""The loss gallery: each loss and its derivative, against the error or the margin.

The claim is about formulas, so this experiment trains nothing: it evaluates lossbench's own
registered loss functions (`lossbench.loss_fn`) on a grid and takes their derivatives with
autograd, then checks the shapes the article describes. Nothing here is random.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

import lossbench
from lossbench.verdicts import check
from lossbench.viz import new_figure, save_figure

CLAIM = (
    "MAE's slope is the same size everywhere, Huber switches from quadratic to linear at delta, "
    "hinge is flat beyond margin 1, and cross-entropy computed from logits never has a zero "
    "gradient on a wrong prediction, while the float32 sigmoid rounds to 1 and kills it."
)
SOURCE = (
    "The article's loss gallery; the losses' formulas and their derivatives; PyTorch's documentation "
    "(HuberLoss, SmoothL1Loss, BCEWithLogitsLoss); IEEE float32 rounding (sigmoid(z) == 1.0 above z ~ 17)."
)
GRID_STEP = 0.005  # spacing of the error and margin grids: the resolution of the measured switch point
HUBER_DELTAS = [0.5, 1.0, 2.0]
EXPECTED = {
    "mae_slope_dev": {"max": 1e-12, "source": "d abs(e)/de = sign(e): abs slope 1 at every e != 0"},
    "mse_slope_dev": {"max": 1e-9, "source": "d e^2/de = 2e (PyTorch's MSELoss has no 1/2)"},
    "huber_switch": {
        "tol": GRID_STEP,
        "source": "Huber: 0.5 e^2 for abs(e) <= delta, linear beyond: the switch is at delta (within one grid step)",
    },
    "huber_outer_slope_dev": {"max": 1e-12, "source": "beyond delta the slope is delta * sign(e)"},
    "smooth_l1_dev": {
        "max": 1e-12,
        "source": "PyTorch docs: SmoothL1Loss(beta) = HuberLoss(delta=beta) / beta",
    },
    "hinge_beyond": {"value": 0.0, "source": "max(0, 1 - m) has slope exactly 0 for m > 1"},
    "hinge_inside": {"value": 1.0, "source": "max(0, 1 - m) has slope -1 for m < 1"},
    "bce_min_grad": {
        "min_exclusive": 0.0,
        "source": "d/dz softplus(-m) = -sigmoid(-m): never 0; checked over the gallery's margins [-10, 10]",
    },
    "bce_wrong_grad": {
        "value": 1.0,
        "tol": 1e-6,
        "source": "d/dz softplus(-z) = -sigmoid(-z): from logits a wrong prediction at any distance keeps a gradient near 1",
    },
    "ce_wrong_grad": {
        "value": 1.0,
        "tol": 1e-6,
        "source": "softmax(z) - onehot(y): the true class's logit gets gradient -1 when a wrong one leads by 30",
    },
    "prob_wrong_grad": {
        "value": 0.0,
        "source": "float32: sigmoid(30) = 1 - 9e-14 rounds to exactly 1.0, whose derivative s (1 - s) is 0: a loss built on that probability has zero gradient there",
    },
    "sigmoid_one_at": {
        "value": 17.0,
        "tol": 1.0,
        "source": "closed form: 1 - sigmoid(z) ~ e^-z drops below half of float32's spacing below 1 (2^-25) at z = 25 ln 2 = 17.3, and rounding to nearest-even reaches 1.0 a little earlier",
    },
}


def _grad(loss_name: str, prediction, target, **kwargs):
    """(loss, d loss / d prediction) of a registered loss, elementwise, by autograd."""
    p = prediction.clone().requires_grad_(True)
    value = lossbench.loss_fn(loss_name)(p, target, **kwargs)
    (g,) = torch.autograd.grad(value.sum(), p)
    return value.detach(), g


def run(out: str, fast: bool, seed: int = 0) -> dict:
    dt = torch.float64
    n = round(3 / GRID_STEP)
    e = torch.arange(-n, n + 1, dtype=dt) * GRID_STEP  # error prediction - target, target 0
    zero = torch.zeros_like(e)
    away = e.abs() >= 0.01  # sign(0) is 0: the slope claim is about every e != 0
    curves, measured = {}, {}

    value, g = _grad("mae", e, zero)
    curves["mae"] = (value, g)
    measured["mae_slope_dev"] = float((g[away].abs() - 1).abs().max())
    value, g = _grad("mse", e, zero)
    curves["mse"] = (value, g)
    measured["mse_slope_dev"] = float((g - 2 * e).abs().max())
    measured["huber_switch"], measured["huber_outer_slope_dev"], measured["smooth_l1_dev"] = {}, {}, {}
    for delta in HUBER_DELTAS:
        big = (
            torch.arange(-round(2 * delta / GRID_STEP), round(2 * delta / GRID_STEP) + 1, dtype=dt)
            * GRID_STEP
        )
        value, g = _grad("huber", big, torch.zeros_like(big), delta=delta)
        quadratic = (g - big).abs() < 1e-9  # the slope of 0.5 e^2 is e
        measured["huber_switch"][str(delta)] = float(big[quadratic].abs().max())
        outside = big.abs() > delta + 1e-9
        measured["huber_outer_slope_dev"][str(delta)] = float((g[outside].abs() - delta).abs().max())
        smooth = F.smooth_l1_loss(big, torch.zeros_like(big), beta=delta, reduction="none")
        measured["smooth_l1_dev"][str(delta)] = float((value - delta * smooth).abs().max())
        if delta == 1.0:
            curves["huber"] = _grad("huber", e, zero, delta=delta)

    # classification: margin m = y z with y in {-1, +1}; target 1 with logit m, target 0 with -m
    m = torch.arange(-round(10 / GRID_STEP), round(10 / GRID_STEP) + 1, dtype=dt) * GRID_STEP
    m = m.unsqueeze(-1)
    hinge_1 = _grad("hinge", m, torch.ones_like(m))
    hinge_0 = _grad("hinge", -m, torch.zeros_like(m))
    grads = torch.cat([hinge_1[1], -hinge_0[1]], 1)  # both as d loss / d margin
    measured["hinge_beyond"] = float(grads[m[:, 0] > 1].abs().max())
    measured["hinge_inside"] = float(grads[m[:, 0] < 1].abs().min())
    curves["hinge"] = hinge_1
    curves["bce"] = _grad("bce", m, torch.ones_like(m))
    m32 = m.float()
    bce32 = _grad("bce", m32, torch.ones_like(m32))[1]
    measured["bce_min_grad"] = float(bce32.abs().min())
    far = torch.arange(0, 60, 0.01, dtype=torch.float32).unsqueeze(-1)
    nonzero = _grad("bce", far, torch.ones_like(far))[1] != 0
    measured["bce_float32_nonzero_up_to"] = float(far[nonzero].max())

    # a wrong prediction far away: logit -30 for a positive example, in float32
    z = torch.tensor([[-30.0]])
    measured["bce_wrong_grad"] = float(_grad("bce", z, torch.ones_like(z))[1].abs())
    logits = torch.tensor([[0.0, 30.0, 0.0]])
    measured["ce_wrong_grad"] = float(_grad("cross_entropy", logits, torch.tensor([0]))[1][0, 0].abs())
    zp = z.clone().requires_grad_(True)
    prob_loss = F.binary_cross_entropy(torch.sigmoid(-zp), torch.zeros_like(zp))  # p(wrong) rounds to 1
    (g,) = torch.autograd.grad(prob_loss, zp)
    measured["prob_wrong_grad"] = float(g.abs())
    measured["prob_wrong_loss"] = float(prob_loss.detach())
    zs = torch.arange(0, 40, 0.01, dtype=torch.float32)
    measured["sigmoid_one_at"] = float(zs[torch.sigmoid(zs) == 1.0].min())

    _figure(e, m[:, 0], curves, out)
    return measured


def _figure(e, m, curves: dict, out: str) -> None:
    fig = new_figure(9, 6)
    axes = fig.subplots(2, 2)
    labels = {"mse": "MSE  e^2", "mae": "MAE  |e|", "huber": "Huber, delta 1"}
    for name, label in labels.items():
        value, g = curves[name]
        axes[0, 0].plot(e, value, label=label)
        axes[1, 0].plot(e, g, label=label)
    axes[0, 0].set(title="regression losses", ylabel="loss", ylim=(-0.2, 4))
    axes[1, 0].set(xlabel="error e = prediction - target", ylabel="d loss / d prediction", ylim=(-3.5, 3.5))
    keep = (m >= -4) & (m <= 4)
    for name, label in (("bce", "cross-entropy (from logits)"), ("hinge", "hinge max(0, 1 - m)")):
        value, g = curves[name]
        axes[0, 1].plot(m[keep], value[keep, 0], label=label)
        axes[1, 1].plot(m[keep], g[keep, 0], label=label)
    axes[0, 1].set(title="classification losses", ylabel="loss")
    axes[1, 1].set(xlabel="margin m = y z", ylabel="d loss / d logit")
    for ax in axes.flat:
        ax.axhline(0, color="grey", lw=0.5)
        ax.legend(fontsize=8)
    save_figure(fig, os.path.join(out, "loss_gallery.png"), dpi=80)


def judge(measured: dict) -> list[dict]:
    E, checks = EXPECTED, []

    def add(name, key, expected, ok, note=""):
        """`ok(value, delta)`, for a dict of values per Huber delta on every one of them."""
        value = measured.get(key)
        if isinstance(value, dict):
            checks.append(check(name, value, expected, lambda v: all(ok(x, k) for k, x in v.items()), note))
        else:
            checks.append(check(name, value, expected, lambda v: ok(v, None), note))

    add(
        "MAE: abs slope - 1, largest",
        "mae_slope_dev",
        f"<= {E['mae_slope_dev']['max']:g}",
        lambda v, _: v <= E["mae_slope_dev"]["max"],
        "over errors 0.01 <= abs(e) <= 3: the gradient is as large near the minimum as far away",
    )
    add(
        "MSE: slope - 2e, largest",
        "mse_slope_dev",
        f"<= {E['mse_slope_dev']['max']:g}",
        lambda v, _: v <= E["mse_slope_dev"]["max"],
        "the gradient grows with the error",
    )
    add(
        "Huber: where the slope stops being e (per delta)",
        "huber_switch",
        f"delta +- {E['huber_switch']['tol']}",
        lambda v, k: abs(v - float(k)) <= E["huber_switch"]["tol"] + 1e-12,
        f"deltas {HUBER_DELTAS}",
    )
    add(
        "Huber: abs slope - delta beyond delta, largest",
        "huber_outer_slope_dev",
        f"<= {E['huber_outer_slope_dev']['max']:g}",
        lambda v, _: v <= E["huber_outer_slope_dev"]["max"],
        "linear (MAE-like) beyond delta",
    )
    add(
        "Huber - beta * SmoothL1(beta), largest",
        "smooth_l1_dev",
        f"<= {E['smooth_l1_dev']['max']:g}",
        lambda v, _: v <= E["smooth_l1_dev"]["max"],
        "against torch.nn.functional.smooth_l1_loss",
    )
    add(
        "hinge: abs slope beyond margin 1, largest",
        "hinge_beyond",
        E["hinge_beyond"]["value"],
        lambda v, _: v == E["hinge_beyond"]["value"],
        "exactly zero: points past the margin stop contributing ({0,1} targets mapped to {-1,+1})",
    )
    add(
        "hinge: abs slope inside margin 1, smallest",
        "hinge_inside",
        E["hinge_inside"]["value"],
        lambda v, _: v == E["hinge_inside"]["value"],
    )
    up_to = measured.get("bce_float32_nonzero_up_to")
    add(
        "cross-entropy from logits: abs gradient, smallest (float32, margins -10..10)",
        "bce_min_grad",
        "> 0",
        lambda v, _: v > E["bce_min_grad"]["min_exclusive"],
        "never exactly zero over the gallery; beyond margin "
        f"{up_to if up_to is not None else '?'} a float32 sigmoid(z) - y itself rounds to 0 on a "
        "correct prediction (mathematically it is never 0)",
    )
    add(
        "cross-entropy from logits: abs gradient at a wrong logit of -30 (float32)",
        "bce_wrong_grad",
        f"{E['bce_wrong_grad']['value']} +- {E['bce_wrong_grad']['tol']:g}",
        lambda v, _: abs(v - E["bce_wrong_grad"]["value"]) <= E["bce_wrong_grad"]["tol"],
    )
    add(
        "multi-class cross-entropy: abs gradient of the true logit, wrong one ahead by 30",
        "ce_wrong_grad",
        f"{E['ce_wrong_grad']['value']} +- {E['ce_wrong_grad']['tol']:g}",
        lambda v, _: abs(v - E["ce_wrong_grad"]["value"]) <= E["ce_wrong_grad"]["tol"],
    )
    add(
        "BCE on the float32 probability: abs gradient at the same wrong logit",
        "prob_wrong_grad",
        E["prob_wrong_grad"]["value"],
        lambda v, _: v == E["prob_wrong_grad"]["value"],
        "the rounding problem: sigmoid(30) is exactly 1.0, sigmoid' is 0, nothing is learned "
        f"(the loss reads {measured.get('prob_wrong_loss')}, PyTorch's clamp of log at -100)",
    )
    add(
        "float32 sigmoid(z) == 1.0 from z =",
        "sigmoid_one_at",
        f"{E['sigmoid_one_at']['value']} +- {E['sigmoid_one_at']['tol']}",
        lambda v, _: abs(v - E["sigmoid_one_at"]["value"]) <= E["sigmoid_one_at"]["tol"],
    )
    return checks
