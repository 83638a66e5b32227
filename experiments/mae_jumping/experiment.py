"""MAE's "jumping": at a fixed step the parameter oscillates around the minimum; MSE does not.

One parameter theta (the bias of a depth-0 model fed x = 0) is trained to the target 0. Every
number comes from the runs' recorded metrics (log_every 1: the loss of every step, which is
abs(theta) under MAE and theta^2 under MSE, and the learning rate of every step). The runs are
deterministic (constant init, one example, full batch), so one run per setting suffices.
"""

from __future__ import annotations

import os

import numpy as np

import lossbench
from lossbench.verdicts import check
from lossbench.viz import new_figure, save_figure

HERE = os.path.dirname(os.path.abspath(__file__))

CLAIM = (
    "With a fixed step MAE makes the parameter jump around the minimum with an amplitude of about "
    "step/2 forever; a decaying step removes the jumping; MSE converges smoothly and, at an equal "
    "step, closes a large initial error faster."
)
SOURCE = (
    "The article (MAE 'jumps' unless the step is reduced); SCIENCE.md section 2; the gradient of "
    "abs(r) is sign(r), of r^2 is 2r."
)
TAIL = 20  # rows averaged for the end-of-run amplitude (an even number: whole two-step cycles)
EXPECTED = {
    "amplitude_over_step": {
        "value": 0.5,
        "tol": 0.05,
        "source": "SCIENCE.md 2: amplitude about step/2 (a two-point cycle {a, a - step} has mean "
        "abs(theta) = step/2 exactly); checked at lr 0.1 and 0.04",
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
    "mse_final_abs": {"max": 1e-6, "source": "closed form: 1.05 * 0.8^149 ~ 4e-15"},
    "mse_steps_to_half": {"value": 14, "tol": 1, "source": "closed form: 10.05 * 0.8^n <= 0.5 at n = 14"},
    "mae_steps_to_half": {"value": 96, "tol": 1, "source": "closed form: 10.05 - 0.1 n <= 0.5 at n = 96"},
}

# name -> (config, overrides); the runs go into <out>/<config name>/<run_id>/
RUNS = {
    "mae_fixed": ("jumping.yaml", ["name=mae_fixed"]),
    "mae_small": ("jumping.yaml", ["name=mae_small", "optim.lr=0.04"]),
    "mae_decay": ("jumping.yaml", ["name=mae_decay", "optim.schedule={name: exponential, gamma: 0.97}"]),
    "mse_fixed": ("jumping.yaml", ["name=mse_fixed", "loss=mse"]),
    "mse_large": ("large_error.yaml", ["name=mse_large"]),
    "mae_large": ("large_error.yaml", ["name=mae_large", "loss=mae", "train.target_loss=0.5"]),
}


def _abs_theta(run) -> np.ndarray:
    """abs(theta) at every step, from the recorded loss (abs under MAE, square under MSE)."""
    loss = run.metrics["loss"]
    return np.sqrt(loss) if run.config["loss"]["name"] == "mse" else loss


def run(out: str, fast: bool) -> dict:
    runs = {}
    for key, (config, overrides) in RUNS.items():
        runs[key] = lossbench.run(lossbench.load_config(os.path.join(HERE, config), *overrides), out=out)

    measured = {}
    for key in ("mae_fixed", "mae_small"):
        r = runs[key]
        theta, lr = _abs_theta(r)[-TAIL:], r.metrics["lr"][-TAIL:]
        measured[f"{key}_lr"] = float(lr[-1])
        measured[f"{key}_tail_abs"] = float(theta.mean())
        measured[f"{key}_amplitude_over_step"] = float(theta.mean() / lr.mean())
        measured[f"{key}_earlier_tail_abs"] = float(_abs_theta(r)[-2 * TAIL : -TAIL].mean())
        measured[f"{key}_tail_grad_min"] = float(r.metrics["grad_b"][-TAIL:, 0].min())
    r = runs["mae_decay"]
    theta, lr = _abs_theta(r)[-TAIL:], r.metrics["lr"][-TAIL - 1 : -1]  # lr[t - 1] took theta to theta[t]
    measured["mae_decay_tail_abs"] = float(theta.mean())
    measured["mae_decay_lr_end_over_start"] = float(r.metrics["lr"][-1] / r.metrics["lr"][0])
    measured["mae_decay_amplitude_over_step"] = float((theta / lr).max())
    measured["decay_vs_fixed"] = measured["mae_decay_tail_abs"] / measured["mae_fixed_tail_abs"]
    theta = _abs_theta(runs["mse_fixed"])
    measured["mse_increases"] = int((np.diff(theta) > 0).sum())
    measured["mse_final_abs"] = float(theta[-1])
    for key in ("mse_large", "mae_large"):
        measured[f"{key}_steps_to_half"] = runs[key].summary["steps_to_target"]
    _figure(runs, out)
    return measured


def _figure(runs: dict, out: str) -> None:
    fig = new_figure(9, 3.4)
    a, b = fig.subplots(1, 2)
    styles = {
        "mae_fixed": "MAE, lr 0.1",
        "mae_small": "MAE, lr 0.04",
        "mae_decay": "MAE, lr 0.1 x 0.97^t",
        "mse_fixed": "MSE, lr 0.1",
    }
    for key, label in styles.items():
        r = runs[key]
        a.semilogy(r.metrics["step"], np.maximum(_abs_theta(r), 1e-12), label=label)
    a.set(xlabel="step", ylabel="|theta - target|", title="one parameter from 1.05 to 0", ylim=(1e-6, 3))
    a.legend(fontsize=8)
    for key, label in (("mse_large", "MSE"), ("mae_large", "MAE")):
        r = runs[key]
        b.plot(
            r.metrics["step"],
            _abs_theta(r),
            label=f"{label} (reaches 0.5 at step {r.summary['steps_to_target']})",
        )
    b.axhline(0.5, color="grey", lw=0.8, ls="--")
    b.set(xlabel="step", ylabel="|theta - target|", title="a large error at equal step (lr 0.1)")
    b.legend(fontsize=8)
    save_figure(fig, os.path.join(out, "mae_jumping.png"), dpi=80)


def judge(measured: dict) -> list[dict]:
    E, m = EXPECTED, measured.get
    amp = E["amplitude_over_step"]
    checks = []
    for key, lr in (("mae_fixed", "0.1"), ("mae_small", "0.04")):
        checks.append(
            check(
                f"MAE lr {lr}: end amplitude / step",
                m(f"{key}_amplitude_over_step"),
                f"{amp['value']} +- {amp['tol']}",
                lambda v: abs(v - amp["value"]) <= amp["tol"],
                "mean abs(theta) over the last 20 steps divided by the step",
            )
        )
    earlier, later = m("mae_fixed_earlier_tail_abs"), m("mae_fixed_tail_abs")
    checks.append(
        check(
            "MAE lr 0.1: jumping does not die out",
            None if earlier is None or later is None else later / earlier,
            "1.0 (last 20 steps vs the 20 before)",
            lambda v: abs(v - 1.0) <= amp["tol"],
        )
    )
    checks.append(
        check(
            "MAE lr 0.1: gradient norm at the end",
            m("mae_fixed_tail_grad_min"),
            E["tail_grad"]["value"],
            lambda v: abs(v - E["tail_grad"]["value"]) <= E["tail_grad"]["tol"],
            "the smallest bias-gradient norm over the last 20 steps: MAE's gradient does not shrink",
        )
    )
    checks.append(
        check(
            "decaying step: end amplitude / fixed step's",
            m("decay_vs_fixed"),
            f"<= {E['decay_vs_fixed']['max']}",
            lambda v: v <= E["decay_vs_fixed"]["max"],
            f"lr decayed to {m('mae_decay_lr_end_over_start') or float('nan'):.3g} of its start",
        )
    )
    checks.append(
        check(
            "decaying step: abs(theta_t) / lr_(t-1)",
            m("mae_decay_amplitude_over_step"),
            f"<= {E['decay_amplitude_over_step']['max']}",
            lambda v: v <= E["decay_amplitude_over_step"]["max"],
            "the largest ratio over the last 20 steps: the jumping shrinks with the step",
        )
    )
    checks.append(
        check(
            "MSE lr 0.1: steps where abs(theta) grows",
            m("mse_increases"),
            E["mse_increases"]["value"],
            lambda v: v == E["mse_increases"]["value"],
            "MSE converges smoothly, without jumping",
        )
    )
    checks.append(
        check(
            "MSE lr 0.1: final abs(theta)",
            m("mse_final_abs"),
            f"<= {E['mse_final_abs']['max']:g}",
            lambda v: v <= E["mse_final_abs"]["max"],
        )
    )
    for key, name in (("mse_large", "MSE"), ("mae_large", "MAE")):
        e = E[f"{key[:3]}_steps_to_half"]
        checks.append(
            check(
                f"{name}: steps from 10.05 to 0.5 at lr 0.1",
                m(f"{key}_steps_to_half"),
                f"{e['value']} +- {e['tol']}",
                lambda v, e=e: abs(v - e["value"]) <= e["tol"],
                "summary steps_to_target",
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
    return checks
