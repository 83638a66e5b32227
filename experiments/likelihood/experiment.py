"""The maximum-likelihood view: each loss is a negative log-likelihood, up to a constant and a scale.

The claim is about formulas, so nothing is trained: lossbench's registered losses are compared
with `torch.distributions` log-probabilities on random data (5 seeds, float64), and the minimiser
of each loss is compared with the minimiser of its likelihood on a grid of constant predictions.
The grid minimiser of a convex function is one of the grid points next to its exact minimiser, so
that is what is checked (not "within half a step", which a data point next to the median breaks),
and a label set of all 0s or all 1s, whose BCE minimiser is at minus or plus infinity, is expected
at the grid's end on that side. The consequence of the noise model: fitting one constant by MSE
(the mean) and by MAE (the median) on many draws, the fit whose loss is the noise's negative
log-likelihood spreads less (the mean under Gaussian noise, the median under Laplace noise).
"""

from __future__ import annotations

import math
import os

import torch

import lossbench
from lossbench.verdicts import against, check, is_number, lookup
from lossbench.viz import new_figure, save_figure

N_SEEDS = 5
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
    "grid_not_next_to_exact": {
        "value": 0,
        "source": "argmin of the squared error over constants is the mean, of the absolute error the "
        "median, of BCE over a constant logit logit(mean label) (minus or plus infinity when every label "
        "is 0 or 1: then the grid's end on that side); a convex function's grid minimiser is a grid "
        f"point within one step ({GRID_STEP}) of its exact minimiser",
    },
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
NOISE_N = 25  # examples per draw in the noise-model comparison (odd: one median)
NOISE_DRAWS = {False: 2000, True: 500}  # full, fast: the ratio's 95% interval is about +-0.03 / +-0.06
EXPECTED["noise_model"] = {
    "source": "maximum likelihood: the MSE fit (the mean) is the Gaussian MLE, the MAE fit (the median) "
    "the Laplace MLE; asymptotically sd(median) / sd(mean) = sqrt(pi / 2) = 1.25 under Gaussian noise "
    "and sqrt(1/2) = 0.71 under Laplace noise of the same variance (the median's asymptotic variance "
    "1 / (4 n f(0)^2)); checked: the ratio's 95% interval (bootstrap over the draws) lies above 1 under "
    "Gaussian and below 1 under Laplace noise (the direction; at n = 25 the Laplace ratio is still "
    "near 0.8, so the asymptotic values are shown, not checked)",
}


def _sum(name: str, prediction, target, **kwargs) -> torch.Tensor:
    """The summed (not averaged) loss of a registered loss: the NLL counts every example."""
    return lossbench.loss_fn(name)(prediction, target, **kwargs).sum()


def _rel(a, b) -> float:
    return float((a - b).abs() / b.abs().clamp_min(1e-300))


def _neighbours_exact(theta: torch.Tensor, values: torch.Tensor, exact: float) -> bool:
    """True when the grid argmin of `values` lies within one grid step of `exact` (or, for an infinite
    `exact`, is the grid's end on that side)."""
    found = float(theta[values.argmin()])
    if math.isinf(exact):
        return found == float(theta.max() if exact > 0 else theta.min())
    return abs(found - exact) <= GRID_STEP * (1 + 1e-9)


def _same_argmin(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The loss's grid minimiser is also the NLL's (up to a tie within float64 rounding)."""
    i = int(a.argmin())
    return bool(b[i] - b.min() <= 1e-12 * b.abs().max())


def run(out: str, fast: bool, seed: int = 0) -> dict:
    D = torch.distributions
    seeds = [seed + i for i in range(N_SEEDS)]
    err = {k: 0.0 for k in ("gaussian", "laplace", "bernoulli", "categorical")}
    mismatches, not_next, degenerate = 0, 0, 0
    for s_ in seeds:
        g = torch.Generator().manual_seed(s_)
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
        flat = theta.reshape(-1)
        sq = lossbench.loss_fn("mse")(theta, targets).mean((1, 2))
        ab = lossbench.loss_fn("mae")(theta, targets).mean((1, 2))
        for s in SIGMAS:
            gauss = -D.Normal(theta, s).log_prob(targets).sum((1, 2))
            lap = -D.Laplace(theta, s).log_prob(targets).sum((1, 2))
            mismatches += int(not _same_argmin(sq, gauss)) + int(not _same_argmin(ab, lap))
        not_next += int(not _neighbours_exact(flat, sq, float(targets.mean())))
        not_next += int(not _neighbours_exact(flat, ab, float(targets.median())))
        labels = t[:10]
        bce = lossbench.loss_fn("bce")(
            theta.expand(-1, len(labels), 1), labels.expand(len(theta), -1, -1)
        ).mean((1, 2))
        bern = -D.Bernoulli(logits=theta).log_prob(labels).sum((1, 2))
        mismatches += int(not _same_argmin(bce, bern))
        p = float(labels.mean())
        degenerate += int(p in (0.0, 1.0))
        exact = math.inf if p == 1 else -math.inf if p == 0 else math.log(p / (1 - p))
        not_next += int(not _neighbours_exact(flat, bce, exact))
    ce = _cross_entropy_view(seeds)
    noise = noise_model(seeds[0], NOISE_DRAWS[fast])
    _figure(out, noise)
    return {
        **ce,
        "seeds": seeds,
        **{f"{k}_rel_err": v for k, v in err.items()},
        "argmin_mismatches": mismatches,
        "argmin_comparisons": len(seeds) * (2 * len(SIGMAS) + 1),
        "grid_not_next_to_exact": not_next,
        "grid_comparisons": 3 * len(seeds),
        "degenerate_label_sets": degenerate,
        "noise_model": {k: v for k, v in noise.items() if k != "fits"},
    }


def _laplace(g: torch.Generator, shape: tuple, scale: float) -> torch.Tensor:
    """Laplace(0, scale) draws by the inverse CDF of uniform draws from `g`."""
    u = torch.rand(shape, generator=g, dtype=torch.float64) - 0.5
    return -scale * torch.sign(u) * torch.log1p(-2 * u.abs())


def _fits(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's exact constant fit under lossbench's mse and mae: (MSE fits, MAE fits).

    MSE is quadratic in theta, so its minimiser is where its (linear) derivative, taken by autograd
    through lossbench's loss at theta = 0 and 1, crosses 0. MAE's minimiser over constants is one of
    the data points (the median, for an odd count): the one where lossbench's loss is smallest.
    """
    theta = torch.zeros(len(y), 2, 1, dtype=torch.float64)
    theta[:, 1] = 1.0
    theta.requires_grad_()
    loss = lossbench.loss_fn("mse")(theta.expand(-1, -1, y.shape[1]), y[:, None, :].expand(-1, 2, -1))
    (grad,) = torch.autograd.grad(loss.sum(), theta)
    d0, d1 = grad[:, 0, 0], grad[:, 1, 0]
    mse_fit = -d0 / (d1 - d0)
    n = y.shape[1]  # every data point as a candidate constant: [draw, candidate, example]
    mae = lossbench.loss_fn("mae")(y[:, :, None].expand(-1, -1, n), y[:, None, :].expand(-1, n, -1))
    mae_fit = y.gather(1, mae.mean(2).argmin(1, keepdim=True))[:, 0]
    return mse_fit.detach(), mae_fit


def noise_model(seed: int, draws: int) -> dict:
    """sd of the MAE fit over sd of the MSE fit across `draws` data sets of NOISE_N points, under
    Gaussian and under Laplace noise of variance 1, with a 95% bootstrap interval over the draws."""
    g = torch.Generator().manual_seed(10_000 + seed)
    noise = {
        "gaussian": torch.randn(draws, NOISE_N, generator=g, dtype=torch.float64),
        "laplace": _laplace(g, (draws, NOISE_N), 1 / math.sqrt(2)),
    }
    result: dict = {"draws": draws, "n": NOISE_N, "fits": {}}
    for name, y in noise.items():
        mse_fit, mae_fit = _fits(y)
        ratio = float(mae_fit.std() / mse_fit.std())
        pick = torch.randint(0, draws, (200, draws), generator=g)
        boot = (mae_fit[pick].std(1) / mse_fit[pick].std(1)).sort().values
        result[name] = {
            "sd_mse_fit": float(mse_fit.std()),
            "sd_mae_fit": float(mae_fit.std()),
            "ratio": ratio,
            "interval": [float(boot[4]), float(boot[194])],
        }
        result["fits"][name] = (mse_fit, mae_fit)
    return result


def _cross_entropy_view(seeds: list[int]) -> dict:
    """CE(p, q) = H(p) + KL(p || q) for soft targets p, through lossbench's own losses, float64."""
    D = torch.distributions
    rel, at_p, below, grad_err = 0.0, 0.0, 0, 0.0
    for seed in seeds:
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
        "ce_random_q_tried": len(seeds) * 3 * N_RANDOM_Q * N,
        "ce_grad_err": grad_err,
    }


def _figure(out: str, noise: dict) -> None:
    D = torch.distributions
    y = torch.tensor([1.0, 2.0, 3.0, 4.0, 100.0], dtype=torch.float64).reshape(-1, 1)
    theta = torch.linspace(-5, 40, 901, dtype=torch.float64).reshape(-1, 1, 1)
    fig = new_figure(17, 3.2)
    axes = fig.subplots(1, 5)
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
    for i, name in enumerate(("gaussian", "laplace")):
        for j, (key, label, color) in enumerate(
            (("sd_mse_fit", "MSE fit (mean)", "C0"), ("sd_mae_fit", "MAE fit (median)", "C1"))
        ):
            axes[4].bar(
                i + 0.4 * j - 0.2, noise[name][key], width=0.4, color=color, label=label if i == 0 else None
            )
        axes[4].text(i, 0.02, f"ratio {noise[name]['ratio']:.2f}", ha="center", fontsize=7, color="w")
    axes[4].set_xticks([0, 1], ["Gaussian noise", "Laplace noise"])
    axes[4].set(
        ylabel="sd of the fit over draws", title=f"{noise['draws']} draws of {noise['n']} points, variance 1"
    )
    axes[4].legend(fontsize=7, loc="upper center")
    save_figure(fig, os.path.join(out, "likelihood.png"), dpi=80)


def judge(measured: dict) -> list[dict]:
    rows = [
        ("MSE vs Gaussian NLL: relative error of the formula", "gaussian_rel_err"),
        ("MAE vs Laplace NLL: relative error of the formula", "laplace_rel_err"),
        ("BCE vs Bernoulli NLL: relative difference", "bernoulli_rel_err"),
        ("cross-entropy vs categorical NLL: relative difference", "categorical_rel_err"),
        ("argmin of the loss != argmin of the NLL (count)", "argmin_mismatches"),
        (
            "grid minimiser not next to the exact one: mean, median, logit(mean label) (count)",
            "grid_not_next_to_exact",
        ),
        ("soft targets: CE(p, q) vs H(p) + KL(p || q), relative error", "ce_decomposition_rel_err"),
        ("soft targets: CE(p, p) - H(p), largest", "ce_at_p_minus_entropy"),
        ("soft targets: random q with CE(p, q) < H(p) (count)", "ce_below_entropy"),
        ("soft targets: d CE / d logits - (q - p), largest", "ce_grad_err"),
    ]
    checks = []
    for name, key in rows:
        note = ""
        if key == "argmin_mismatches":
            note = f"of {measured.get('argmin_comparisons')} grid comparisons over {N_SEEDS} seeds"
        if key == "grid_not_next_to_exact":
            note = (
                f"of {measured.get('grid_comparisons')}; label sets all 0 or all 1 among them: "
                f"{measured.get('degenerate_label_sets')}"
            )
        if key == "ce_below_entropy":
            note = f"of {measured.get('ce_random_q_tried')} random predictions (per example)"
        checks.append(against(name, measured.get(key), EXPECTED[key], note))
    source = EXPECTED["noise_model"]["source"]
    for name, below in (("gaussian", False), ("laplace", True)):
        interval = lookup(measured, "noise_model", name, "interval")
        ratio = lookup(measured, "noise_model", name, "ratio")
        draws = lookup(measured, "noise_model", "draws")
        checks.append(
            check(
                f"noise model, {name} noise: sd(MAE fit) / sd(MSE fit), 95% interval",
                interval,
                "below 1 (the median spreads less)" if below else "above 1 (the mean spreads less)",
                lambda v, below=below: (v[1] < 1) if below else (v[0] > 1),
                f"ratio {ratio if not is_number(ratio) else round(ratio, 3)} over {draws} draws of "
                f"{NOISE_N} points; {source}",
            )
        )
    return checks
