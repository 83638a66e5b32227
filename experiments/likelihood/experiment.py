"""The maximum-likelihood view: each loss is a negative log-likelihood, up to a constant and a scale.

The claim is about formulas, so nothing is trained: lossbench's registered losses are compared
with `torch.distributions` log-probabilities on random data (5 seeds, float64), and the minimiser
of each loss is compared with the minimiser of its likelihood on a grid of constant predictions.
"""

from __future__ import annotations

import math
import os

import torch

import lossbench
from lossbench.verdicts import against
from lossbench.viz import new_figure, save_figure

SEEDS = [0, 1, 2, 3, 4]
SIGMAS = [0.5, 1.0, 3.0]  # Gaussian standard deviations and Laplace scales tried
GRID_STEP = 0.01
N = 40  # examples per seed

CLAIM = (
    "MSE is the Gaussian NLL and MAE the Laplace NLL up to a constant and a scale, BCE is exactly "
    "the Bernoulli NLL and cross-entropy exactly the categorical NLL, so each loss and its "
    "likelihood have the same minimiser; and cross-entropy measures the gap between two "
    "distributions: CE(p, q) = H(p) + KL(p || q), smallest at q = p, with gradient q - p on the logits."
)
SOURCE = (
    "The article's likelihood view and 'cross-entropy measures the gap between two distributions'; "
    "Gaussian NLL = SSE / (2 sigma^2) + (N/2) ln(2 pi sigma^2), Laplace NLL = SAE / b + N ln(2 b); "
    "Cover & Thomas, Elements of Information Theory, ch. 2: H(p, q) = H(p) + D(p || q), D >= 0 with "
    "equality only at q = p."
)
EXPECTED = {
    "gaussian_rel_err": {
        "max": 1e-12,
        "source": "Gaussian density: NLL = SSE/(2 sigma^2) + (N/2) ln(2 pi sigma^2)",
    },
    "laplace_rel_err": {
        "max": 1e-12,
        "source": "Laplace density exp(-abs(r)/b)/(2b): NLL = SAE/b + N ln(2b)",
    },
    "bernoulli_rel_err": {
        "max": 1e-12,
        "source": "BCE is exactly the Bernoulli NLL (torch.distributions.Bernoulli)",
    },
    "categorical_rel_err": {
        "max": 1e-12,
        "source": "cross-entropy is exactly the categorical NLL (torch.distributions.Categorical)",
    },
    "argmin_mismatches": {
        "value": 0,
        "source": "same argmin: a positive scale and a constant do not move it",
    },
    "mean_err": {"max": GRID_STEP / 2, "source": "argmin of the squared error over constants is the mean"},
    "median_err": {
        "max": GRID_STEP / 2,
        "source": "argmin of the absolute error over constants is the median",
    },
    "logit_err": {"max": GRID_STEP / 2, "source": "argmin of BCE over a constant logit is logit(mean label)"},
    "ce_decomposition_rel_err": {
        "max": 1e-12,
        "source": "H(p, q) = H(p) + KL(p || q) (Cover & Thomas ch. 2), with H and KL from "
        "torch.distributions; soft targets: lossbench's bce with targets p in (0, 1), and its "
        "cross_entropy with label smoothing (target p = (1 - eps) onehot + eps / C)",
    },
    "ce_at_p_minus_entropy": {"max": 1e-12, "source": "KL(p || p) = 0: at q = p the cross-entropy is H(p)"},
    "ce_below_entropy": {
        "value": 0,
        "source": "KL(p || q) >= 0 (Gibbs' inequality): no q gives a cross-entropy below H(p)",
    },
    "ce_grad_err": {
        "max": 1e-12,
        "source": "d CE / dz = softmax(z) - p (sigmoid(z) - p for bce), by autograd",
    },
}
N_RANDOM_Q = 200  # random predictions q per seed tried against q = p


def _sum(name: str, prediction, target, **kwargs) -> torch.Tensor:
    """The summed (not averaged) loss of a registered loss: the NLL counts every example."""
    return lossbench.loss_fn(name)(prediction, target, **kwargs).sum()


def _rel(a, b) -> float:
    return float((a - b).abs() / b.abs().clamp_min(1e-300))


def run(out: str, fast: bool) -> dict:
    D = torch.distributions
    err = {k: 0.0 for k in ("gaussian", "laplace", "bernoulli", "categorical")}
    mismatches, mean_err, median_err, logit_err = 0, 0.0, 0.0, 0.0
    for seed in SEEDS:
        g = torch.Generator().manual_seed(seed)
        y = 3 * torch.randn(N, 1, generator=g, dtype=torch.float64)
        pred = 3 * torch.randn(N, 1, generator=g, dtype=torch.float64)
        for s in SIGMAS:
            nll = -D.Normal(pred, s).log_prob(y).sum()
            formula = _sum("mse", pred, y) / (2 * s**2) + N / 2 * math.log(2 * math.pi * s**2)
            err["gaussian"] = max(err["gaussian"], _rel(formula, nll))
            nll = -D.Laplace(pred, s).log_prob(y).sum()
            formula = _sum("mae", pred, y) / s + N * math.log(2 * s)
            err["laplace"] = max(err["laplace"], _rel(formula, nll))
        z = 4 * torch.randn(N, 1, generator=g, dtype=torch.float64)
        t = (torch.rand(N, 1, generator=g, dtype=torch.float64) < 0.4).double()
        err["bernoulli"] = max(
            err["bernoulli"], _rel(_sum("bce", z, t), -D.Bernoulli(logits=z).log_prob(t).sum())
        )
        logits = 3 * torch.randn(N, 5, generator=g, dtype=torch.float64)
        classes = torch.randint(0, 5, (N,), generator=g)
        ce = _sum("cross_entropy", logits, classes)
        err["categorical"] = max(
            err["categorical"], _rel(ce, -D.Categorical(logits=logits).log_prob(classes).sum())
        )

        # minimisers over a grid of constant predictions theta
        targets = y.reshape(-1)[:9].reshape(-1, 1)  # an odd count: one median
        theta = torch.arange(-1200, 1201, dtype=torch.float64).reshape(-1, 1, 1) * GRID_STEP
        sq = lossbench.loss_fn("mse")(theta, targets).mean((1, 2))
        ab = lossbench.loss_fn("mae")(theta, targets).mean((1, 2))
        for s in SIGMAS:
            gauss = -D.Normal(theta, s).log_prob(targets).sum((1, 2))
            lap = -D.Laplace(theta, s).log_prob(targets).sum((1, 2))
            mismatches += int(sq.argmin() != gauss.argmin()) + int(ab.argmin() != lap.argmin())
        mean_err = max(mean_err, float((theta.reshape(-1)[sq.argmin()] - targets.mean()).abs()))
        median_err = max(median_err, float((theta.reshape(-1)[ab.argmin()] - targets.median()).abs()))
        labels = t[:10]
        bce = lossbench.loss_fn("bce")(
            theta.expand(-1, len(labels), 1), labels.expand(len(theta), -1, -1)
        ).mean((1, 2))
        bern = -D.Bernoulli(logits=theta).log_prob(labels).sum((1, 2))
        mismatches += int(bce.argmin() != bern.argmin())
        p = labels.mean().clamp(0.05, 0.95)
        logit_err = max(logit_err, float((theta.reshape(-1)[bce.argmin()] - torch.log(p / (1 - p))).abs()))
    ce = _cross_entropy_view()
    _figure(out)
    return {
        **ce,
        "seeds": SEEDS,
        **{f"{k}_rel_err": v for k, v in err.items()},
        "argmin_mismatches": mismatches,
        "argmin_comparisons": len(SEEDS) * (2 * len(SIGMAS) + 1),
        "mean_err": mean_err,
        "median_err": median_err,
        "logit_err": logit_err,
    }


def _cross_entropy_view() -> dict:
    """CE(p, q) = H(p) + KL(p || q) for soft targets p, through lossbench's own losses, float64."""
    D = torch.distributions
    rel, at_p, below, grad_err = 0.0, 0.0, 0, 0.0
    for seed in SEEDS:
        g = torch.Generator().manual_seed(100 + seed)
        # two classes: bce with a soft target p in (0, 1), against Bernoulli entropy and KL
        p = torch.rand(N, 1, generator=g, dtype=torch.float64) * 0.98 + 0.01
        z = (4 * torch.randn(N, 1, generator=g, dtype=torch.float64)).requires_grad_()
        ce = lossbench.loss_fn("bce")(z, p)
        dist = D.Bernoulli(probs=p)
        h_kl = dist.entropy() + D.kl_divergence(dist, D.Bernoulli(logits=z.detach()))
        rel = max(rel, float(((ce.detach() - h_kl).abs() / h_kl.abs()).max()))
        (grad,) = torch.autograd.grad(ce.sum(), z)
        grad_err = max(grad_err, float((grad - (torch.sigmoid(z.detach()) - p)).abs().max()))
        logit_p = torch.log(p / (1 - p))
        at_p = max(at_p, float((lossbench.loss_fn("bce")(logit_p, p) - dist.entropy()).abs().max()))
        zs = 6 * torch.randn(N_RANDOM_Q, N, 1, generator=g, dtype=torch.float64)
        below += int((lossbench.loss_fn("bce")(zs, p.expand_as(zs)) < dist.entropy() - 1e-12).sum())
        # C classes: cross_entropy with label smoothing eps: target p = (1 - eps) onehot + eps / C
        for eps, c in ((0.1, 5), (0.3, 3)):
            y = torch.randint(0, c, (N,), generator=g)
            p = (1 - eps) * torch.nn.functional.one_hot(y, c).double() + eps / c
            z = (3 * torch.randn(N, c, generator=g, dtype=torch.float64)).requires_grad_()
            ce = lossbench.loss_fn("cross_entropy")(z, y, label_smoothing=eps)
            dist = D.Categorical(probs=p)
            h_kl = dist.entropy() + D.kl_divergence(dist, D.Categorical(logits=z.detach()))
            rel = max(rel, float(((ce.detach() - h_kl).abs() / h_kl.abs()).max()))
            (grad,) = torch.autograd.grad(ce.sum(), z)
            grad_err = max(grad_err, float((grad - (torch.softmax(z.detach(), -1) - p)).abs().max()))
            ce_p = lossbench.loss_fn("cross_entropy")(p.log(), y, label_smoothing=eps)
            at_p = max(at_p, float((ce_p - dist.entropy()).abs().max()))
            zs = 4 * torch.randn(N_RANDOM_Q, N, c, generator=g, dtype=torch.float64)
            ce_q = lossbench.loss_fn("cross_entropy")(zs, y.expand(N_RANDOM_Q, N), label_smoothing=eps)
            below += int((ce_q < dist.entropy() - 1e-12).sum())
    return {
        "ce_decomposition_rel_err": rel,
        "ce_at_p_minus_entropy": at_p,
        "ce_below_entropy": below,
        "ce_random_q_tried": len(SEEDS) * 3 * N_RANDOM_Q * N,
        "ce_grad_err": grad_err,
    }


def _figure(out: str) -> None:
    D = torch.distributions
    y = torch.tensor([1.0, 2.0, 3.0, 4.0, 100.0], dtype=torch.float64).reshape(-1, 1)
    theta = torch.linspace(-5, 40, 901, dtype=torch.float64).reshape(-1, 1, 1)
    fig = new_figure(14, 3.2)
    axes = fig.subplots(1, 4)
    pairs = [
        (
            "mse",
            "sum of squared errors / (2 sigma^2)",
            lambda s: -D.Normal(theta, s).log_prob(y).sum((1, 2)),
            10.0,
        ),
        ("mae", "sum of absolute errors / b", lambda s: -D.Laplace(theta, s).log_prob(y).sum((1, 2)), 3.0),
    ]
    for ax, (name, label, nll, s) in zip(axes, pairs):
        loss = lossbench.loss_fn(name)(theta, y).sum((1, 2)) / (2 * s**2 if name == "mse" else s)
        ax.plot(theta.reshape(-1), loss, label=f"{name}: {label}")
        ax.plot(
            theta.reshape(-1),
            nll(s),
            "--",
            label=f"{'Gaussian' if name == 'mse' else 'Laplace'} NLL, scale {s:g}",
        )
        ax.axvline(float(theta.reshape(-1)[loss.argmin()]), color="grey", lw=0.8)
        ax.set(xlabel="constant prediction theta", title="targets [1, 2, 3, 4, 100]")
        ax.legend(fontsize=7)
    z = torch.linspace(-4, 4, 401, dtype=torch.float64).reshape(-1, 1, 1)
    labels = torch.tensor([1.0, 0, 0, 1, 0, 0, 1, 0, 0, 0], dtype=torch.float64).reshape(-1, 1)
    zz, ll = z.expand(-1, len(labels), 1), labels.expand(len(z), -1, -1)
    axes[2].plot(z.reshape(-1), lossbench.loss_fn("bce")(zz, ll).sum((1, 2)), label="bce (summed)")
    axes[2].plot(
        z.reshape(-1), -D.Bernoulli(logits=z).log_prob(labels).sum((1, 2)), "--", label="Bernoulli NLL"
    )
    axes[2].set(xlabel="constant logit z", title="labels: 3 of 10 are 1")
    axes[2].legend(fontsize=7)
    q = torch.linspace(0.005, 0.995, 397, dtype=torch.float64)
    for p, color in ((0.3, "C0"), (0.7, "C1")):
        target = torch.full_like(q, p)
        ce = lossbench.loss_fn("bce")(torch.log(q / (1 - q)), target)
        h = float(D.Bernoulli(probs=torch.tensor(p)).entropy())
        axes[3].plot(q, ce, color=color, label=f"CE(p={p}, q)")
        axes[3].axhline(h, color=color, lw=0.8, ls=":")
        axes[3].axvline(p, color=color, lw=0.8, ls="--")
    axes[3].set(xlabel="predicted q", ylim=(0, 2.5), title="CE = H(p) + KL(p||q); dotted: H(p)")
    axes[3].legend(fontsize=7)
    save_figure(fig, os.path.join(out, "likelihood.png"), dpi=80)


def judge(measured: dict) -> list[dict]:
    rows = [
        ("MSE vs Gaussian NLL: relative error of the formula", "gaussian_rel_err"),
        ("MAE vs Laplace NLL: relative error of the formula", "laplace_rel_err"),
        ("BCE vs Bernoulli NLL: relative difference", "bernoulli_rel_err"),
        ("cross-entropy vs categorical NLL: relative difference", "categorical_rel_err"),
        ("argmin of the loss != argmin of the NLL (count)", "argmin_mismatches"),
        ("MSE's minimiser - the mean", "mean_err"),
        ("MAE's minimiser - the median", "median_err"),
        ("BCE's minimiser - logit(mean label)", "logit_err"),
        ("soft targets: CE(p, q) vs H(p) + KL(p || q), relative error", "ce_decomposition_rel_err"),
        ("soft targets: CE(p, p) - H(p), largest", "ce_at_p_minus_entropy"),
        ("soft targets: random q with CE(p, q) < H(p) (count)", "ce_below_entropy"),
        ("soft targets: d CE / d logits - (q - p), largest", "ce_grad_err"),
    ]
    checks = []
    for name, key in rows:
        note = ""
        if key == "argmin_mismatches":
            note = f"of {measured.get('argmin_comparisons')} grid comparisons over 5 seeds"
        if key == "ce_below_entropy":
            note = f"of {measured.get('ce_random_q_tried')} random predictions (per example)"
        checks.append(against(name, measured.get(key), EXPECTED[key], note))
    return checks
