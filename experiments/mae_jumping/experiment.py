"""MAE's "jumping": at a fixed step the parameter cycles around the minimum; MSE and Huber do not.

One parameter theta (the bias of a depth-0 model fed x = 0) is trained to the target 0. Every
number comes from the runs' recorded metrics (log_every 1: the loss of every step, which is
abs(theta) under MAE, theta^2 under MSE and theta^2 / 2 under Huber once abs(theta) <= delta, and
the learning rate of every step) or their summary (the loss after the last step). The runs are
deterministic (constant init, one example, full batch), so one run per setting suffices (the seed,
which `reproduce --seed` moves like every other, changes nothing here); each expectation is a
closed form of the start, the step and the loss's gradient.

Huber's two halves, as the article states them ("MSE near zero, MAE beyond delta: the strengths of
both"): near the minimum it converges like MSE, without MAE's jumping; far from it its gradient is
clipped at delta like MAE's, so from a large error it is exactly as slow as MAE at the same step
(98 steps from 10.05 to 0.5 at lr 0.1, against MAE's 96 and MSE's 14): what it keeps from MAE
beyond delta is robustness to outliers (see `outliers`), not MSE's fast start.
"""

from __future__ import annotations

import math
import os

import numpy as np

import lossbench
from lossbench.verdicts import against, check
from lossbench.viz import new_figure, save_figure

HERE = os.path.dirname(os.path.abspath(__file__))

CLAIM = (
    "With a fixed step MAE makes the parameter jump around the minimum forever, in a two-step cycle "
    "whose values the start and the step decide (its peak between step/2 and the step); a decaying "
    "step removes the jumping; MSE and Huber converge smoothly, and MSE closes a large initial error "
    "faster at an equal step; Huber converges like MSE near the minimum but closes a large error as "
    "slowly as MAE (its gradient is clipped at delta)."
)
SOURCE = (
    "The article (MAE 'jumps' unless the step is reduced; Huber has the strengths of both); the "
    "gradient of abs(r) is sign(r), of r^2 is 2r, of Huber(delta) is r inside delta."
)
TAIL = 20  # rows of the end-of-run cycle (an even number: whole two-step cycles)
CYCLE_TOL = 1e-4  # float32: 150 steps of at most 6e-8 rounding each stay below 1e-5


def cycle(start: float, step: float) -> list[float]:
    """abs(theta) of the two-step cycle MAE ends in from `start` > 0 at a fixed `step`, [low, high].

    theta falls by `step` while positive; the last positive value is r = start mod step, the next is
    r - step, and from there theta alternates between them: abs values r and step - r.
    """
    r = start - step * math.floor(start / step + 1e-9)
    return sorted([r, step - r])


# name -> (config, overrides, start, step) for the fixed-step MAE runs; the start decides the cycle
MAE_FIXED = {
    "mae_fixed": ("jumping.yaml", ["name=mae_fixed"], 1.05, 0.1),
    "mae_small": ("jumping.yaml", ["name=mae_small", "optim.lr=0.04"], 1.05, 0.04),
    "mae_offset": ("jumping.yaml", ["name=mae_offset", "model.bias_init.value=1.08"], 1.08, 0.1),
}
RUNS = {
    **{key: (config, overrides) for key, (config, overrides, _, _) in MAE_FIXED.items()},
    "mae_decay": ("jumping.yaml", ["name=mae_decay", "optim.schedule={name: exponential, gamma: 0.97}"]),
    "mse_fixed": ("jumping.yaml", ["name=mse_fixed", "loss=mse"]),
    "huber_fixed": ("jumping.yaml", ["name=huber_fixed", "loss={name: huber, delta: 1.0}"]),
    "mse_large": ("large_error.yaml", ["name=mse_large"]),
    "mae_large": ("large_error.yaml", ["name=mae_large", "loss=mae", "train.target_loss=0.5"]),
    "huber_large": (
        "large_error.yaml",
        ["name=huber_large", "loss={name: huber, delta: 1.0}", "train.target_loss=0.125"],
    ),
}

EXPECTED = {
    **{
        f"{key}_cycle": {
            "value": cycle(start, step),
            "tol": CYCLE_TOL,
            "source": f"closed form from the start {start} and step {step}: theta falls by the step to "
            f"r = {start} mod {step}, then alternates r, r - {step}; abs values "
            f"{[round(v, 6) for v in cycle(start, step)]}, "
            f"peak {max(cycle(start, step)) / step:.2f} step (float32 rounding within {CYCLE_TOL:g})",
        }
        for key, (_, _, start, step) in MAE_FIXED.items()
    },
    "still_jumping": {
        "value": 1.0,
        "tol": 1e-3,
        "source": "a fixed cycle: mean abs(theta) of the last 20 steps equals that of the 20 before",
    },
    "tail_grad": {"value": 1.0, "tol": 1e-6, "source": "d abs(r)/dr = sign(r): 1 however close to 0"},
    "decay_vs_fixed": {
        "max": 0.1,
        "source": "the article: the step must be reduced; with the step decayed to about 1% of its "
        "start the leftover jumping must be under a tenth of the fixed step's",
    },
    "decay_amplitude_over_step": {
        "max": 1.0,
        "source": "once abs(theta) < step, a step of size lr lands within lr of 0: abs(theta_t) <= "
        "lr_(t-1), so the jumping shrinks with the step",
    },
    "mse_increases": {"value": 0, "source": "closed form: theta_t = 1.05 * 0.8^t, monotone"},
    "mse_final_abs": {"max": 1e-6, "source": "closed form: 1.05 * 0.8^150 ~ 3e-15"},
    "huber_increases": {
        "value": 0,
        "source": "closed form: one step of size delta * lr = 0.1 to 0.95 (inside delta = 1), then "
        "theta_t = 0.95 * 0.9^(t - 1), monotone: no jumping",
    },
    "huber_final_abs": {
        "value": 0.95 * 0.9**149,
        "rel_tol": 1e-3,
        "source": f"closed form: 0.95 * 0.9^149 = {0.95 * 0.9**149:.4g} after 150 steps (float32 rounding "
        "allowed)",
    },
    "mse_steps_to_half": {"value": 14, "tol": 1, "source": "closed form: 10.05 * 0.8^n <= 0.5 at n = 14"},
    "mae_steps_to_half": {"value": 96, "tol": 1, "source": "closed form: 10.05 - 0.1 n <= 0.5 at n = 96"},
    "hub_steps_to_half": {
        "value": 98,
        "tol": 1,
        "source": "closed form: beyond delta = 1 the gradient is clipped to 1, so 91 steps of 0.1 take "
        "10.05 to 0.95, then theta shrinks by 0.9 per step: 0.95 * 0.9^7 <= 0.5, 98 in all",
    },
    "huber_like_mae_far": {
        "max_gap": 2,
        "source": "the article: Huber is 'MAE beyond delta'; so from an error far beyond delta it is as "
        "slow as MAE at the same step (within 2 steps: 96 and 98 by closed form), not as fast as MSE. "
        "The article's 'strengths of both' does not include MSE's fast start (the steps are +-1 for "
        "float32 rounding at the threshold)",
    },
}


def _abs_theta(run) -> np.ndarray:
    """abs(theta) at every step, from the recorded loss (abs under MAE, square under MSE, half the
    square under Huber inside delta)."""
    loss, name = run.metrics["loss"], run.config["loss"]["name"]
    return np.sqrt(loss) if name == "mse" else np.sqrt(2 * loss) if name == "huber" else loss


def run(out: str, fast: bool, seed: int = 0) -> dict:
    runs = {}
    for key, (config, overrides) in RUNS.items():
        cfg = lossbench.load_config(os.path.join(HERE, config), *overrides, f"seed={seed}")
        runs[key] = lossbench.run(cfg, out=out)

    measured = {}
    for key in MAE_FIXED:
        r = runs[key]
        theta = _abs_theta(r)
        tail = theta[-TAIL:]
        measured[f"{key}_cycle"] = [float(tail.min()), float(tail.max())]
        measured[f"{key}_still_jumping"] = float(tail.mean() / theta[-2 * TAIL : -TAIL].mean())
        measured[f"{key}_tail_grad_min"] = float(r.metrics["grad_b"][-TAIL:, 0].min())
    r = runs["mae_decay"]
    theta, lr = _abs_theta(r)[-TAIL:], r.metrics["lr"][-TAIL - 1 : -1]  # lr[t - 1] took theta to theta[t]
    measured["mae_decay_lr_end_over_start"] = float(r.metrics["lr"][-1] / r.metrics["lr"][0])
    measured["mae_decay_amplitude_over_step"] = float((theta / lr).max())
    measured["decay_vs_fixed"] = float(theta.mean() / _abs_theta(runs["mae_fixed"])[-TAIL:].mean())
    for key in ("mse", "huber"):
        theta = _abs_theta(runs[f"{key}_fixed"])
        measured[f"{key}_increases"] = int((np.diff(theta) > 0).sum())
        final = runs[f"{key}_fixed"].summary["final_train_loss"]  # the loss after the last step
        measured[f"{key}_final_abs"] = float(math.sqrt(final if key == "mse" else 2 * final))
    for key in ("mse_large", "mae_large", "huber_large"):
        measured[f"{key}_steps_to_half"] = runs[key].summary["targets"][0]["steps_to"]
    _figure(runs, out)
    return measured


def _figure(runs: dict, out: str) -> None:
    fig = new_figure(11, 3.4)
    a, c, b = fig.subplots(1, 3)
    styles = {
        "mae_fixed": "MAE, lr 0.1",
        "mae_decay": "MAE, lr 0.1 x 0.97^t",
        "mse_fixed": "MSE, lr 0.1",
        "huber_fixed": "Huber (delta 1), lr 0.1",
    }
    for key, label in styles.items():
        r = runs[key]
        a.semilogy(r.metrics["step"], np.maximum(_abs_theta(r), 1e-12), label=label)
    a.set(xlabel="step", ylabel="|theta - target|", title="one parameter from 1.05 to 0", ylim=(1e-8, 3))
    a.legend(fontsize=7)
    for key, (_, _, start, step) in MAE_FIXED.items():
        r = runs[key]
        line = c.plot(
            r.metrics["step"][-12:],
            _abs_theta(r)[-12:] / step,
            "o-",
            ms=3,
            label=f"MAE from {start}, lr {step}",
        )[0]
        c.axhline(max(cycle(start, step)) / step, color=line.get_color(), lw=0.8, ls=":")
    c.set(
        xlabel="step", ylabel="|theta| / step", title="the end cycle; dotted: predicted peak", ylim=(0, 1.05)
    )
    c.legend(fontsize=7)
    for key, label in (("mse_large", "MSE"), ("mae_large", "MAE"), ("huber_large", "Huber (delta 1)")):
        r = runs[key]
        b.plot(
            r.metrics["step"],
            _abs_theta(r),
            label=f"{label} (reaches 0.5 at step {r.summary['targets'][0]['steps_to']})",
        )
    b.axhline(0.5, color="grey", lw=0.8, ls="--")
    b.set(xlabel="step", ylabel="|theta - target|", title="a large error at equal step (lr 0.1)")
    b.legend(fontsize=7)
    save_figure(fig, os.path.join(out, "mae_jumping.png"), dpi=80)


def _check(name: str, measured: dict, key: str, exp: dict, note: str = "") -> dict:
    return against(name, measured.get(key), exp, note)


def judge(measured: dict) -> list[dict]:
    E, m = EXPECTED, measured.get
    checks = []
    for key, (_, _, start, step) in MAE_FIXED.items():
        peak = f"peak {max(m(f'{key}_cycle') or [math.nan]) / step:.3f} step"
        checks.append(
            _check(
                f"MAE from {start}, lr {step}: abs(theta) of the end cycle [low, high]",
                measured,
                f"{key}_cycle",
                E[f"{key}_cycle"],
                f"measured over the last {TAIL} steps: {peak}",
            )
        )
    checks.append(
        _check(
            "MAE lr 0.1: jumping does not die out",
            measured,
            "mae_fixed_still_jumping",
            E["still_jumping"],
            "mean abs(theta), last 20 steps / the 20 before",
        )
    )
    checks.append(
        _check(
            "MAE lr 0.1: gradient norm at the end",
            measured,
            "mae_fixed_tail_grad_min",
            E["tail_grad"],
            "the smallest bias-gradient norm over the last 20 steps: MAE's gradient does not shrink",
        )
    )
    lr_left = m("mae_decay_lr_end_over_start")
    checks.append(
        _check(
            "decaying step: end amplitude / fixed step's",
            measured,
            "decay_vs_fixed",
            E["decay_vs_fixed"],
            f"lr decayed to {lr_left if lr_left is not None else float('nan'):.3g} of its start",
        )
    )
    checks.append(
        _check(
            "decaying step: abs(theta_t) / lr_(t-1)",
            measured,
            "mae_decay_amplitude_over_step",
            E["decay_amplitude_over_step"],
            "the largest ratio over the last 20 steps",
        )
    )
    for key, name in (("mse", "MSE"), ("huber", "Huber")):
        checks.append(
            _check(
                f"{name} lr 0.1: steps where abs(theta) grows",
                measured,
                f"{key}_increases",
                E[f"{key}_increases"],
                "converges without jumping",
            )
        )
        checks.append(
            _check(
                f"{name} lr 0.1: final abs(theta)",
                measured,
                f"{key}_final_abs",
                E[f"{key}_final_abs"],
                "from the loss after the last step",
            )
        )
    for key, name in (("mse_large", "MSE"), ("mae_large", "MAE"), ("huber_large", "Huber (delta 1)")):
        checks.append(
            _check(
                f"{name}: steps from 10.05 to 0.5 at lr 0.1",
                measured,
                f"{key}_steps_to_half",
                E[f"{key[:3]}_steps_to_half"],
                "summary targets: steps_to",
            )
        )
    mse, mae = m("mse_large_steps_to_half"), m("mae_large_steps_to_half")
    checks.append(
        check(
            "MSE closes a large error in fewer steps than MAE",
            [mse, mae],
            "MSE steps < MAE steps",
            lambda v: v[0] < v[1],
            shown=f"{mse} < {mae}",
        )
    )
    huber, gap = m("huber_large_steps_to_half"), E["huber_like_mae_far"]["max_gap"]
    checks.append(
        check(
            "Huber closes a large error as slowly as MAE, not like MSE (same step)",
            [mse, mae, huber],
            f"abs(Huber - MAE) <= {gap} and Huber > MSE",
            lambda v: abs(v[2] - v[1]) <= gap and v[2] > v[0],
            E["huber_like_mae_far"]["source"],
            shown=f"MSE {mse}, MAE {mae}, Huber {huber}",
        )
    )
    return checks
