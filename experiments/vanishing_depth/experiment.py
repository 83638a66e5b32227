"""Vanishing gradients with depth: Nielsen's chapter 5 speeds of learning, measured by lossbench.

Every number comes from the logged bias-gradient norms (`grad_b`, input layer first) of lossbench
runs of `nielsen.yaml` and its variants: the gradient of one full batch at initialisation (step 0),
and, for the training variant, at every logged step of mini-batch training. The cost is Nielsen's
own, cross-entropy on ten sigmoid outputs summed over the outputs (`bce` with `sum_outputs: true`),
so both the layer-to-layer ratios and the absolute speeds are compared with his published values.
Five seeds per variant; a seed changes both the data (synthetic images, or which 1000 digits) and
the weights. Verdicts use the mean over seeds of each layer-to-layer ratio, and the notes give the
spread.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

import lossbench
from lossbench.verdicts import majority
from lossbench.verdicts import not_measured as _fail
from lossbench.viz import new_figure, save_figure

HERE = os.path.dirname(os.path.abspath(__file__))

CLAIM = (
    "In a deep sigmoid net each hidden layer learns 4 to 6 times slower than the next; cross-entropy "
    "removes the sigma' factor only at the output layer, and ReLU with He init keeps the ratios near 1."
)
SOURCE = (
    "Nielsen, Neural Networks and Deep Learning (2015), chapter 5; He et al., 'Delving deep into "
    "rectifiers' (2015); the article's 'vanishing gradient' section"
)

EXPECTED = {
    "sigmoid_ratio": {
        "range": [4.0, 6.0],
        "source": "Nielsen ch. 5: published speeds [784,30,30,10]: 0.07, 0.31; [784,30,30,30,10]: 0.012, "
        "0.060, 0.283; [784,30,30,30,30,10]: 0.003, 0.017, 0.070, 0.285 ('4 to 6 times')",
    },
    "published": {
        2: [0.07, 0.31],
        3: [0.012, 0.060, 0.283],
        4: [0.003, 0.017, 0.070, 0.285],
        "source": "Nielsen ch. 5 (real MNIST, 1000 training images as one batch, cross-entropy on sigmoid "
        "outputs, one random initialisation per net)",
    },
    "absolute_speed": {
        "sd": 2.0,
        "factor": 2.0,
        "source": "Nielsen's published speeds are one initialisation each, so his value is compared with "
        "the spread of ours: PASS when, for every hidden layer, log(published) is within 2 standard "
        "deviations of the seeds' log speeds (a typical single draw); PARTIAL when not, but every layer's "
        "seed geometric mean is within a factor 2 of his (the same size, on synthetic data rather than "
        "MNIST); FAIL beyond. The tolerances are choices made for this comparison, not published numbers",
    },
    "loss_agreement": {
        "range": [0.75, 1.33],
        "source": "backprop eq. BP2: below the output a hidden layer's delta is (W^T delta) * sigma'(z) "
        "whatever the cost, so the per-layer ratios under cross-entropy and the quadratic cost agree",
    },
    "output_factor": {
        "max": 0.25,
        "source": "Nielsen ch. 3: under the quadratic cost the output delta is (a - y) sigma'(z_L), "
        "sigma' <= 1/4; cross-entropy's is a - y",
    },
    "tanh_below_sigmoid": {"source": "the article: tanh' <= 1 against sigmoid' <= 1/4"},
    "relu_he_ratio": {
        "range": [0.5, 2.0],
        "source": "He et al. 2015, eq. 14: with N(0, 2/n_in) weights the back-propagated signal keeps "
        "its scale when n_in = n_out (ratio 1)",
    },
    "training_first_last": {
        "max": 0.1,
        "source": "Nielsen ch. 5, speed during training ([784,30,30,30,30,10], mini-batch 10, lr 0.1): "
        "the first hidden layer keeps learning about 100 times slower than the last",
    },
}

# variant name: (overrides of nielsen.yaml, depths)
BASE = "nielsen.yaml"
# Nielsen's quadratic cost sums (y_j - a_j)^2 / 2 over the outputs; `mse` averages over them, so its
# speeds are 10 times smaller than his. Only its ratios and its output sigma' are judged.
QUADRATIC = ["loss={name: mse, half: true}", "model.output=sigmoid"]
TRAINING = ["train.steps=null", "train.batch_size=10", "optim.lr=0.1"]


def _variants(fast: bool) -> dict:
    """Fast mode: 300 synthetic images instead of 1000 (balanced classes: the speeds at init agree
    with 1000's to 3 digits, see README), digits on the deepest net only, one training epoch."""
    depths = [4] if fast else [2, 3, 4]
    n = ["data.n_samples=300"] if fast else []
    epochs = 1 if fast else 2
    return {
        "sigmoid_ce": (n, [2, 3, 4]),  # Nielsen's setup: every depth in both modes (one step each)
        "sigmoid_mse": (n + QUADRATIC, [4]),
        "tanh_ce": (n + ["model.activation=tanh"], [4]),
        "relu_he_ce": (
            n + ["model.activation=relu", "model.init=kaiming_normal", "model.bias_init=zeros"],
            [4],
        ),
        "digits_sigmoid_ce": (["data.name=digits"], depths),  # 1000 of the 1797 digits, as Nielsen
        "training": (n + TRAINING + [f"train.epochs={epochs}", "train.log_every=20"], [4]),
    }


N_SEEDS = 5


def run(out: str, fast: bool) -> dict:
    """Build every variant's configs (one validation each, seeds by copy), train, read back grad_b."""
    plan = []  # (variant, depth, cfg)
    for variant, (overrides, depths) in _variants(fast).items():
        for depth in depths:
            name = f"name=vanishing_{variant}_d{depth}"
            cfg = lossbench.load_config(os.path.join(HERE, BASE), name, f"model.depth={depth}", *overrides)
            # only the seed differs between members, so one validated config serves all five
            plan += [(variant, depth, dataclasses.replace(cfg, seed=s)) for s in range(N_SEEDS)]
    results = lossbench.run_many([c for _, _, c in plan], out)
    measured: dict = {}
    profiles: dict = {}
    for (variant, depth, _cfg), r in zip(plan, results):
        m = r.metrics
        g = m["grad_b"]
        entry = measured.setdefault(variant, {}).setdefault(str(depth), {"grad_b": [], "ratios": []})
        entry["grad_b"].append([float(v) for v in g[0]])
        hidden = g[0, :-1]  # hidden layers only, input side first
        entry["ratios"].append([float(v) for v in hidden[1:] / hidden[:-1]])
        if variant == "sigmoid_mse":
            entry.setdefault("output_sigma_prime", []).append(float(m["act_deriv"][0, -1]))
        if variant == "training":
            entry.setdefault("first_last_by_row", []).append([float(v) for v in g[:, 0] / g[:, -2]])
            profiles.setdefault("training", []).append((m["step"], g))
    for variant in measured.values():
        for entry in variant.values():
            r = np.array(entry["ratios"])
            entry["ratio_mean"] = [float(v) for v in r.mean(0)]
            entry["ratio_std"] = [float(v) for v in r.std(0)]
            entry["ratio_min"] = [float(v) for v in r.min(0)]
            entry["ratio_max"] = [float(v) for v in r.max(0)]
            entry["grad_b_mean"] = [float(v) for v in np.mean(entry["grad_b"], 0)]
    _figure(measured, profiles, out)
    return measured


def _figure(measured: dict, profiles: dict, out: str) -> None:
    fig = new_figure(11, 3.2)
    axes = fig.subplots(1, 3)
    ax = axes[0]
    for depth, entry in measured.get("sigmoid_ce", {}).items():
        hidden = entry["grad_b_mean"][:-1]
        line = ax.plot(range(1, len(hidden) + 1), hidden, "o-", label=f"{depth} hidden (lossbench)")[0]
        ax.plot(range(1, len(hidden) + 1), EXPECTED["published"][int(depth)], "x--", color=line.get_color())
    ax.set(xlabel="hidden layer", ylabel="|grad b| at init", yscale="log", title="sigmoid; x--: Nielsen")
    ax.legend(fontsize=7)
    ax = axes[1]
    for variant, entry in measured.items():
        if "4" in entry and variant != "training":
            hidden = np.array(entry["4"]["grad_b_mean"][:-1])
            ax.plot(range(1, 5), hidden / hidden[-1], "o-", label=variant)
    ax.set(xlabel="hidden layer", ylabel="relative to the last hidden", yscale="log", title="4 hidden layers")
    ax.legend(fontsize=7)
    ax = axes[2]
    for step, g in profiles.get("training", [])[:1]:
        for layer in range(g.shape[1] - 1):
            ax.plot(step, g[:, layer], label=f"hidden {layer + 1}")
    ax.set(xlabel="step (mini-batch 10)", ylabel="|grad b|", yscale="log", title="during training (seed 0)")
    ax.legend(fontsize=7)
    save_figure(fig, os.path.join(out, "vanishing_depth.png"))


# ----- judging: pure, from `measured` and EXPECTED only ------------------------------------------


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


def _ratio_check(check: str, entry: dict | None, lo: float, hi: float, source: str) -> dict:
    """PASS when every layer pair's seed-mean ratio is in [lo, hi]; PARTIAL when at least half are."""
    expected = f"every layer-to-layer seed-mean ratio in [{lo}, {hi}]"
    try:
        means = [float(v) for v in entry["ratio_mean"]]
        spread = f"min {_fmt(entry['ratio_min'])}, max {_fmt(entry['ratio_max'])} over seeds"
    except (KeyError, TypeError):
        return _fail(check, expected)
    inside = [lo <= v <= hi for v in means]
    verdict = majority(sum(inside), len(inside))
    note = f"{spread}; {source}"
    if verdict == "PARTIAL":
        note = f"only {sum(inside)} of {len(inside)} layer pairs in range; " + note
    return {"check": check, "measured": _fmt(means), "expected": expected, "verdict": verdict, "note": note}


def _absolute_check(check: str, entry: dict | None, published: list[float]) -> dict:
    """Nielsen's single-run speeds against the seeds' spread of ours (see EXPECTED['absolute_speed'])."""
    exp = EXPECTED["absolute_speed"]
    expected = (
        f"Nielsen {published}: within {exp['sd']:g} sd of the seeds' log speeds (PASS), "
        f"or within a factor {exp['factor']:g} of their geometric mean (PARTIAL)"
    )
    try:
        g = np.array(entry["grad_b"], dtype=float)[:, :-1]  # [seed, hidden layer], input side first
        pub = np.array(published, dtype=float)
        if g.ndim != 2 or g.shape[0] < 3 or g.shape[1] != len(pub) or not np.all(g > 0):
            raise ValueError
    except (KeyError, TypeError, ValueError, IndexError):
        return _fail(check, expected)
    logs = np.log(g)
    sd = np.maximum(logs.std(0, ddof=1), 1e-12)  # identical seeds: any difference is far
    geo = np.exp(logs.mean(0))
    factor = pub / geo  # > 1: Nielsen's speed above ours
    distance = np.abs(np.log(pub) - logs.mean(0)) / sd
    if np.all(distance <= exp["sd"]):
        verdict = "PASS"
    elif np.all(np.abs(np.log(factor)) <= np.log(exp["factor"])):
        verdict = "PARTIAL"
    else:
        verdict = "FAIL"
    note = (
        f"Nielsen / lossbench geometric mean {_fmt(factor)}; distance in seed sd {_fmt(distance)}; "
        f"lossbench seed range {_fmt3(g.min(0))} to {_fmt3(g.max(0))}; Nielsen's are one "
        "initialisation each, on MNIST; tolerances chosen for this comparison (EXPECTED['absolute_speed'])"
    )
    if verdict == "PARTIAL":
        far = [i + 1 for i, d in enumerate(distance) if d > exp["sd"]]
        note = f"hidden layer(s) {far} further than {exp['sd']:g} sd from Nielsen's single run; " + note
    return {
        "check": check,
        "measured": _fmt3(g.mean(0)),
        "expected": expected,
        "verdict": verdict,
        "note": note,
    }


def _fmt3(values) -> str:
    return "[" + ", ".join(f"{v:.2g}" for v in values) + "]"


def judge(measured: dict) -> list[dict]:
    E = EXPECTED
    lo, hi = E["sigmoid_ratio"]["range"]
    checks = []
    for data, label in (("sigmoid_ce", "synthetic MNIST-like"), ("digits_sigmoid_ce", "real digits (8x8)")):
        for depth in ("2", "3", "4"):
            entry = measured.get(data, {}).get(depth)
            if entry is None and (data != "sigmoid_ce" and depth != "4"):
                continue  # fast mode measures digits on the deepest net only
            checks.append(
                _absolute_check(
                    f"sigmoid, {depth} hidden, {label}: absolute speeds |grad b| against Nielsen's",
                    entry,
                    E["published"][int(depth)],
                )
            )
    for depth in ("2", "3", "4"):
        entry = measured.get("sigmoid_ce", {}).get(depth)
        checks.append(
            _ratio_check(
                f"sigmoid, {depth} hidden, synthetic MNIST-like: speed ratio layer to layer",
                entry,
                lo,
                hi,
                E["sigmoid_ratio"]["source"],
            )
        )
    for depth in ("2", "3", "4"):
        entry = measured.get("digits_sigmoid_ce", {}).get(depth)
        if entry is None and depth != "4":
            continue
        checks.append(
            _ratio_check(
                f"sigmoid, {depth} hidden, real digits (8x8): speed ratio layer to layer",
                entry,
                lo,
                hi,
                "Nielsen's range on MNIST; digits has 64 inputs, not 784",
            )
        )

    # cross-entropy against the quadratic cost
    name = "cross-entropy leaves the hidden layers vanishing (ratio CE / quadratic, per layer pair)"
    a, b = E["loss_agreement"]["range"]
    try:
        ce = np.array(measured["sigmoid_ce"]["4"]["ratio_mean"])
        quad = np.array(measured["sigmoid_mse"]["4"]["ratio_mean"])
        rel = ce / quad
        ok = bool(np.all((rel >= a) & (rel <= b)))
        checks.append(
            {
                "check": name,
                "measured": _fmt(rel),
                "expected": f"each in [{a}, {b}]",
                "verdict": "PASS" if ok else "FAIL",
                "note": f"CE ratios {_fmt(ce)}, quadratic {_fmt(quad)}; {E['loss_agreement']['source']}",
            }
        )
    except (KeyError, TypeError, ValueError):
        checks.append(_fail(name, f"each in [{a}, {b}]"))
    name = "quadratic cost: the output layer's logged sigma'(z_L), the factor cross-entropy removes"
    try:
        values = measured["sigmoid_mse"]["4"]["output_sigma_prime"]
        ok = len(values) > 0 and max(values) < E["output_factor"]["max"]
        checks.append(
            {
                "check": name,
                "measured": _fmt(values),
                "expected": f"< {E['output_factor']['max']} on every seed",
                "verdict": "PASS" if ok else "FAIL",
                "note": E["output_factor"]["source"],
            }
        )
    except (KeyError, TypeError):
        checks.append(_fail(name, "< 0.25"))

    # activations
    name = "tanh vanishes less than sigmoid (seed-mean ratio per layer pair)"
    try:
        tanh = np.array(measured["tanh_ce"]["4"]["ratio_mean"])
        sig = np.array(measured["sigmoid_ce"]["4"]["ratio_mean"])
        ok = bool(np.all(tanh < sig))
        checks.append(
            {
                "check": name,
                "measured": _fmt(tanh),
                "expected": f"below sigmoid's {_fmt(sig)}",
                "verdict": "PASS" if ok else "FAIL",
                "note": E["tanh_below_sigmoid"]["source"],
            }
        )
    except (KeyError, TypeError, ValueError):
        checks.append(_fail(name, "below sigmoid's ratios"))
    lo, hi = E["relu_he_ratio"]["range"]
    checks.append(
        _ratio_check(
            "ReLU with He init: speed ratio layer to layer near 1",
            measured.get("relu_he_ce", {}).get("4"),
            lo,
            hi,
            E["relu_he_ratio"]["source"],
        )
    )

    # through training
    name = "during training: first / last hidden layer speed, every logged step and seed"
    limit = E["training_first_last"]["max"]
    try:
        rows = np.array(measured["training"]["4"]["first_last_by_row"], dtype=float)
        worst = float(rows.max())
        share = float((rows < limit).mean())
        verdict = "PASS" if share == 1.0 else "PARTIAL" if share >= 0.5 else "FAIL"
        checks.append(
            {
                "check": name,
                "measured": f"max {worst:.4f}, median {float(np.median(rows)):.4f}",
                "expected": f"< {limit}",
                "verdict": verdict,
                "note": f"{share:.0%} of {rows.size} rows below; gradients of one mini-batch of 10 per row; "
                + E["training_first_last"]["source"],
            }
        )
    except (KeyError, TypeError, ValueError):
        checks.append(_fail(name, f"< {limit}"))
    return checks
