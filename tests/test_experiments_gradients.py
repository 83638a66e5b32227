"""The gradient experiments (nielsen_neuron, vanishing_depth, init_scale, plateaus).

Each runs in fast mode through lossbench and must PASS every check; each `judge` fed a result that
contradicts the claim must say FAIL (or PARTIAL where only part of the claim breaks), and a missing
measurement is a FAIL, not a crash.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(slug: str):
    path = os.path.join(ROOT, "experiments", slug, "experiment.py")
    spec = importlib.util.spec_from_file_location(f"experiment_{slug}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SLUGS = ["nielsen_neuron", "vanishing_depth", "init_scale", "plateaus"]

# Measured to hold only in part (see experiments/vanishing_depth/README.md): lossbench's absolute
# speeds of the 4-hidden-layer net's first layers are ~0.55 to 0.75 of Nielsen's single run, more
# than 2 seed sd away but within a factor 2. These checks may say PARTIAL; never FAIL.
MAY_BE_PARTIAL = {
    "sigmoid, 4 hidden, synthetic MNIST-like: absolute speeds |grad b| against Nielsen's",
    "sigmoid, 4 hidden, real digits (8x8): absolute speeds |grad b| against Nielsen's",
}


@pytest.fixture(scope="module")
def fast_results(tmp_path_factory):
    """Each experiment run once in fast mode: slug -> (module, measured)."""
    out = tmp_path_factory.mktemp("gradients")
    results = {}
    for slug in SLUGS:
        module = load(slug)
        results[slug] = (module, module.run(str(out / slug), fast=True))
        results[slug + ":out"] = out / slug
    return results


@pytest.mark.parametrize("slug", SLUGS)
def test_fast_mode_passes_and_draws(fast_results, slug):
    module, measured = fast_results[slug]
    json.dumps(measured)  # JSON-able
    checks = module.judge(measured)
    assert checks
    for c in checks:
        assert set(c) == {"check", "measured", "expected", "verdict", "note"}
        allowed = {"PASS", "PARTIAL"} if c["check"] in MAY_BE_PARTIAL else {"PASS"}
        assert c["verdict"] in allowed, c
    pngs = [f for f in os.listdir(fast_results[slug + ":out"]) if f.endswith(".png")]
    assert pngs, "no figure drawn"


@pytest.mark.parametrize("slug", SLUGS)
def test_missing_measurements_fail(slug):
    module = load(slug)
    assert module.CLAIM and module.SOURCE and module.EXPECTED
    checks = module.judge({})
    assert checks and all(c["verdict"] == "FAIL" for c in checks)


def test_nielsen_judge_fails_without_a_plateau(fast_results):
    module, measured = fast_results["nielsen_neuron"]
    bad = copy.deepcopy(measured)
    bad["quad_22"]["at_150"] = 0.5  # the saturated neuron moving fast: no plateau
    bad["ce_gradient_ratio"] = 1.0  # cross-entropy no faster than the quadratic cost
    verdicts = {c["check"]: c["verdict"] for c in module.judge(bad)}
    assert verdicts["plateau: output drop over epochs 0-150"] == "FAIL"
    assert verdicts["quadratic (2, 2): output at epoch 150"] == "FAIL"
    assert verdicts["cross-entropy / quadratic initial bias gradient, (2, 2)"] == "FAIL"


def test_nielsen_reads_the_closed_form_gradient(fast_results):
    """The logged bias gradient of the (2, 2) neuron at step 0 is (a - y) sigma'(4), by hand."""
    import math

    _, measured = fast_results["nielsen_neuron"]
    a = 1 / (1 + math.exp(-4.0))
    assert measured["quad_22"]["grad_b_start"] == pytest.approx(a * a * (1 - a), rel=1e-5)
    assert measured["ce_22"]["grad_b_start"] == pytest.approx(a, rel=1e-5)


def test_vanishing_judge_fails_flat_sigmoid_and_partial(fast_results):
    module, measured = fast_results["vanishing_depth"]
    bad = copy.deepcopy(measured)
    bad["sigmoid_ce"]["4"]["ratio_mean"] = [1.0, 1.0, 1.0]  # no vanishing
    bad["relu_he_ce"]["4"]["ratio_mean"] = [5.0, 5.0, 5.0]  # ReLU vanishing like sigmoid
    bad["digits_sigmoid_ce"]["4"]["ratio_mean"] = [5.0, 5.0, 9.0]  # one pair out of range
    bad["training"]["4"]["first_last_by_row"] = [[0.5] * 4] * 5  # first layer as fast as last
    verdicts = [c["verdict"] for c in module.judge(bad)]
    checks = [c["check"] for c in module.judge(bad)]
    by = dict(zip(checks, verdicts))
    assert by["sigmoid, 4 hidden, synthetic MNIST-like: speed ratio layer to layer"] == "FAIL"
    assert by["sigmoid, 4 hidden, real digits (8x8): speed ratio layer to layer"] == "PARTIAL"
    assert by["ReLU with He init: speed ratio layer to layer near 1"] == "FAIL"
    assert by["tanh vanishes less than sigmoid (seed-mean ratio per layer pair)"] == "FAIL"
    assert by["during training: first / last hidden layer speed, every logged step and seed"] == "FAIL"


def test_vanishing_judge_absolute_speeds(fast_results):
    """Nielsen's speeds judged against the seeds' spread: PASS near, PARTIAL within 2x, FAIL beyond."""
    module, measured = fast_results["vanishing_depth"]
    check = "sigmoid, 3 hidden, synthetic MNIST-like: absolute speeds |grad b| against Nielsen's"
    published = module.EXPECTED["published"][3]
    spread = [0.8, 0.9, 1.0, 1.1, 1.25]  # seed-to-seed factors, log sd ~0.17

    def verdict(scale):
        bad = copy.deepcopy(measured)
        bad["sigmoid_ce"]["3"]["grad_b"] = [[p * scale * f for p in published] + [1.0] for f in spread]
        return {c["check"]: c["verdict"] for c in module.judge(bad)}[check]

    assert verdict(1.0) == "PASS"
    assert verdict(1.7) == "PARTIAL"  # 3 sd away, but within a factor 2
    assert verdict(0.6) == "PARTIAL"
    assert verdict(10.0) == "FAIL"  # e.g. a cost averaged over the 10 outputs instead of summed
    assert verdict(0.1) == "FAIL"


def test_vanishing_logs_nielsens_cross_entropy_gradient(tmp_path):
    """The logged grad_b of nielsen.yaml is the bias gradient of Nielsen's C = -(1/n) sum_x sum_j
    [y_j ln a_j + (1 - y_j) ln(1 - a_j)] on sigmoid outputs, computed here by hand in float64."""
    import torch

    from lossbench import config
    from lossbench.engine.model import build_model
    from lossbench.engine.train import prepare
    from lossbench.runs import runner
    from lossbench.runs import store as runs

    cfg, _, _ = config.load(
        os.path.join(ROOT, "experiments/vanishing_depth/nielsen.yaml"), ["model.depth=2", "data.n_samples=60"]
    )
    _, folder, _ = runner.execute(cfg, str(tmp_path))
    logged = runs.load_run(folder).metrics["grad_b"][0]
    torch.manual_seed(cfg.seed)
    d = prepare(cfg)
    model = build_model(cfg, torch.Generator().manual_seed(cfg.seed + 1))
    weights = [
        (layer.weight.detach().double(), layer.bias.detach().double().requires_grad_())
        for layer in model.layers
    ]
    a = d["x"].double()
    for w, b in weights:
        a = torch.sigmoid(a @ w.T + b)
    y = torch.nn.functional.one_hot(d["labels"], 10).double()
    cost = -(y * torch.log(a) + (1 - y) * torch.log(1 - a)).sum(1).mean()
    grads = torch.autograd.grad(cost, [b for _, b in weights])
    expected = [float(g.norm()) for g in grads]
    assert list(logged) == pytest.approx(expected, rel=1e-4)


def test_init_scale_judge_fails_wrong_scales(fast_results):
    module, measured = fast_results["init_scale"]
    bad = copy.deepcopy(measured)
    bad["glorot"]["default"]["jacobian_mean_sv"] = [0.8] * 5  # standard init as good as Xavier
    bad["he"]["kaiming_normal"]["std_last_over_first"] = [1e-5] * 5  # He init decaying
    bad["he"]["default"]["std_last_over_first"] = [1e-12, 1e-12, 1e-12, 0.5, 0.5]  # 3 of 5 seeds
    by = {c["check"]: c["verdict"] for c in module.judge(bad)}
    assert by["tanh, default init: mean singular value of the layer Jacobians"] == "FAIL"
    assert by["ReLU, 30 hidden, kaiming_normal init: activation std last / first hidden layer"] == "FAIL"
    assert by["ReLU, 30 hidden, default init: activation std last / first hidden layer"] == "PARTIAL"


def test_init_scale_jacobian_matches_random_matrix_theory():
    """Mean singular value of a square U(-1/sqrt(n), 1/sqrt(n)) matrix is (8 / 3 pi) sqrt(1/3) ~ 0.49
    (quarter-circle law); with tanh' <= 1 the measured Jacobian can only be at or below it."""
    import math

    theory = 8 / (3 * math.pi) * math.sqrt(1 / 3)
    module = load("init_scale")
    from lossbench import config

    cfg, _, _ = config.load(
        os.path.join(ROOT, "experiments/init_scale/glorot_tanh.yaml"),
        ["model.width=128", "data.n_samples=50"],
    )
    value = module.jacobian_singular_values(cfg, 4)
    assert 0.85 * theory < value <= theory * 1.03


def test_plateaus_judge_fails_when_cross_entropy_is_flatter(fast_results):
    module, measured = fast_results["plateaus"]
    bad = copy.deepcopy(measured)
    bad["mse"], bad["bce"] = measured["bce"], measured["mse"]
    assert module.judge(bad)[0]["verdict"] == "FAIL"


def test_plateaus_surface_matches_closed_form():
    """At W1 = W2 = 0 the output is sigmoid(b2) for every example: the loss is known by hand."""
    import math

    import torch

    module = load("plateaus")
    from lossbench import config
    from lossbench.engine.model import build_model
    from lossbench.engine.train import prepare

    cfg, _, _ = config.load(os.path.join(ROOT, "experiments/plateaus/tiny_net.yaml"), ["loss=mse"])
    zero = torch.zeros(1, 1, dtype=torch.float64)
    loss, _ = module.surface(cfg, "mse", zero, zero)
    torch.manual_seed(cfg.seed)
    y = prepare(cfg)["y"].double()
    b2 = float(build_model(cfg, torch.Generator().manual_seed(cfg.seed + 1)).layers[1].bias.detach())
    p = 1 / (1 + math.exp(-b2))
    assert loss[0, 0] == pytest.approx(float(((p - y) ** 2).mean()), rel=1e-9)
