"""The gradient experiments (nielsen_neuron, vanishing_depth, init_scale, plateaus).

Each runs in fast mode through lossbench and must PASS every check; each `judge` fed a result that
contradicts the claim must say FAIL (or PARTIAL where only part of the claim breaks), and a missing
measurement is a FAIL, not a crash.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import os

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("experiments_gradients")]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(slug: str):
    path = os.path.join(ROOT, "experiments", slug, "experiment.py")
    spec = importlib.util.spec_from_file_location(f"experiment_{slug}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SLUGS = ["nielsen_neuron", "vanishing_depth", "init_scale", "plateaus"]


def all_fail(checks) -> bool:
    """Every check FAILs (and says which did not otherwise)."""
    passing = [(c["check"], c["verdict"]) for c in checks if c["verdict"] != "FAIL"]
    assert checks and not passing, passing
    return True


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
        assert c["verdict"] == "PASS", c
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
    assert verdicts["plateau at lr 0.15: output drop over epochs 0-150, quadratic"] == "FAIL"
    assert verdicts["quadratic (2, 2): output at epoch 150"] == "FAIL"
    assert verdicts["cross-entropy / quadratic initial bias gradient, (2, 2)"] == "FAIL"


def test_nielsen_every_check_fails_on_a_contradicting_result(fast_results):
    module, measured = fast_results["nielsen_neuron"]
    bad = copy.deepcopy(measured)
    bad["quad_06"].update(start=0.5, end=0.5, sigma_prime_start=0.25, max_rel_error_grad=0.5)
    bad["quad_22"].update(start=0.5, at_150=0.2, end=0.9, sigma_prime_start=0.25)
    bad["quad_22"].update(first_cost_drop_over_largest=1.0)  # the quadratic fastest when most wrong
    bad["ce_22"].update(below_half_epoch=100, end=0.5, at_150=0.9, max_rel_error_grad=0.3)
    # Nielsen's rate curing the plateau with the correct gradient: what his animation shows
    bad["ce_22_nielsen"].update(end=0.05, at_150=0.2, first_cost_drop_over_largest=0.5)
    bad["ce_06_nielsen"].update(end=0.04)
    bad["ce_gradient_ratio"] = 1.0
    assert all_fail(module.judge(bad))


def test_nielsen_which_rate_fails_when_the_correct_gradient_cures_at_his_rate(fast_results):
    """Had the correct gradient at Nielsen's 0.005 fallen like his animation, the verdict on which
    rate carries the cure must say FAIL (and the plain number checks too)."""
    module, measured = fast_results["nielsen_neuron"]
    bad = copy.deepcopy(measured)
    animation = module.animation(2.0, 2.0)
    bad["ce_22_nielsen"].update(at_150=animation[150], end=animation[300])
    by = {c["check"]: c["verdict"] for c in module.judge(bad)}
    name = "which rate carries the cure: cross-entropy's output drop over epochs 0-150 from (2, 2)"
    assert by[name] == "FAIL"
    assert by["cross-entropy (2, 2), lr 0.005 (Nielsen's rate): output at epoch 150"] == "FAIL"
    assert sum(v == "FAIL" for v in by.values()) == 3


def test_nielsen_animation_is_his_javascript_rule():
    """js/saturation4.js steps w and b by eta / (1 - a): its first step by hand, and it equals the
    correct gradient step scaled by 1 / sigma'(z) (the chain rule's missing factor)."""
    module = load("nielsen_neuron")
    a0 = 1 / (1 + math.exp(-4.0))
    out = module.animation(2.0, 2.0, eta=0.005, frames=1)
    assert out[1] == pytest.approx(1 / (1 + math.exp(-(4.0 - 2 * 0.005 / (1 - a0)))), rel=1e-12)
    correct = module.reference(2.0, 2.0, "cross_entropy", 0.005 / (a0 * (1 - a0)), epochs=1)
    assert out[1] == pytest.approx(correct[1], rel=1e-12)
    assert module.EXPECTED["animation"]["anim_150"] == pytest.approx(0.215, abs=1e-3)
    assert module.EXPECTED["ce_nielsen_150"]["value"] == pytest.approx(0.928, abs=1e-3)


def test_nielsen_reference_is_the_update_rule():
    """The expected outputs iterate Nielsen's update in float64: a fixed point check by hand."""
    module = load("nielsen_neuron")
    a = module.reference(2.0, 2.0, "quadratic", 0.15, epochs=1)
    s0 = 1 / (1 + math.exp(-4.0))
    delta = s0 * s0 * (1 - s0)
    assert a[0] == s0 and a[1] == pytest.approx(1 / (1 + math.exp(-(4.0 - 2 * 0.15 * delta))))
    assert module.EXPECTED["quad_22_end"]["value"] == pytest.approx(0.203, abs=1e-3)


def test_nielsen_reads_the_closed_form_gradient(fast_results):
    """The logged bias gradient of the (2, 2) neuron at step 0 is (a - y) sigma'(4), by hand."""
    import math

    _, measured = fast_results["nielsen_neuron"]
    a = 1 / (1 + math.exp(-4.0))
    assert measured["quad_22"]["grad_b_start"] == pytest.approx(a * a * (1 - a), rel=1e-5)
    assert measured["ce_22"]["grad_b_start"] == pytest.approx(a, rel=1e-5)


def _seeds(values: list[float], n: int = 20, spread: float = 0.1) -> list[list[float]]:
    """n seeds' rows around `values` (deterministic, +-spread relative)."""
    return [[v * (1 + spread * math.sin(3.7 * i + j)) for j, v in enumerate(values)] for i in range(n)]


def test_vanishing_judge_fails_flat_sigmoid_and_partial(fast_results):
    module, measured = fast_results["vanishing_depth"]
    bad = copy.deepcopy(measured)
    bad["sigmoid_ce"]["4"]["ratios"] = _seeds([1.0, 1.0, 1.0])  # no vanishing
    bad["relu_he_ce"]["4"]["ratios"] = _seeds([5.0, 5.0, 5.0], 10)  # ReLU vanishing like sigmoid
    bad["digits_sigmoid_ce"]["4"]["ratios"] = _seeds([5.0, 5.0, 9.0], spread=0.02)  # one pair out of range
    bad["training"]["4"]["first_last_by_row"] = [[0.5] * 4] * 5  # first layer as fast as last
    bad["training_no_l2"]["4"]["first_last_by_row"] = [[0.01] * 4] * 5  # stays slow without L2
    by = {c["check"]: c["verdict"] for c in module.judge(bad)}
    assert by["sigmoid, 4 hidden, synthetic MNIST-like: speed ratio layer to layer"] == "FAIL"
    assert by["sigmoid, 4 hidden, real digits (8x8): speed ratio layer to layer"] == "PARTIAL"
    assert by["ReLU with He init: speed ratio layer to layer near 1"] == "FAIL"
    assert by["tanh vanishes less than sigmoid (seed-mean ratio per layer pair)"] == "FAIL"
    name = "training with Nielsen's L2 term: first / last hidden layer speed, largest over the epochs"
    assert by[name] == "FAIL"
    name = "training without L2 (lmbda = 0): first / last hidden layer speed, largest over the epochs"
    assert by[name] == "FAIL"


def test_vanishing_judge_absolute_speeds(fast_results):
    """Nielsen's speeds against one draw of ours: PASS near, PARTIAL when most layers are, FAIL beyond."""
    module, measured = fast_results["vanishing_depth"]
    check = "sigmoid, 3 hidden, synthetic MNIST-like: absolute speeds |grad b| against Nielsen's"
    published = module.EXPECTED["published"][3]

    def verdict(scales):
        bad = copy.deepcopy(measured)
        rows = _seeds([p * s for p, s in zip(published, scales)], spread=0.2)  # log sd ~0.14
        bad["sigmoid_ce"]["3"]["grad_b"] = [r + [1.0] for r in rows]
        return {c["check"]: c["verdict"] for c in module.judge(bad)}[check]

    assert verdict([1.0, 1.0, 1.0]) == "PASS"
    assert verdict([1.0, 1.0, 2.0]) == "PARTIAL"  # one layer 5 sd away
    assert verdict([10.0, 10.0, 10.0]) == "FAIL"  # e.g. a cost averaged over the 10 outputs
    assert verdict([0.1, 0.1, 1.0]) == "FAIL"


def test_vanishing_every_check_fails_on_a_contradicting_result(fast_results):
    module, measured = fast_results["vanishing_depth"]
    bad = copy.deepcopy(measured)
    for variant in ("sigmoid_ce", "digits_sigmoid_ce"):
        for depth, entry in bad[variant].items():
            entry["grad_b"] = [[10 * v for v in row[:-1]] + row[-1:] for row in entry["grad_b"]]
            entry["ratios"] = _seeds([1.0] * (int(depth) - 1))
    bad["sigmoid_mse"]["4"]["ratios"] = _seeds([3.0] * 3)
    bad["sigmoid_mse"]["4"]["output_sigma_prime"] = [0.02] * len(bad["sigmoid_mse"]["4"]["grad_b"])
    bad["tanh_ce"]["4"]["ratios"] = _seeds([9.0] * 3)
    bad["relu_he_ce"]["4"]["ratios"] = _seeds([5.0] * 3)
    bad["training"]["4"]["first_last_by_row"] = [[0.5] * 4] * 5
    bad["training"]["4"]["last_end_over_start"] = [0.5] * 5
    bad["training_no_l2"]["4"]["first_last_by_row"] = [[0.01] * 4] * 5
    assert all_fail(module.judge(bad))


def test_vanishing_logs_nielsens_cross_entropy_gradient(tmp_path):
    """The logged grad_b of nielsen.yaml is the bias gradient of Nielsen's C = -(1/n) sum_x sum_j
    [y_j ln a_j + (1 - y_j) ln(1 - a_j)] on sigmoid outputs, computed here by hand in float64."""
    import torch

    import lossbench

    cfg = lossbench.load_config(
        os.path.join(ROOT, "experiments/vanishing_depth/nielsen.yaml"), "model.depth=2", "data.n_samples=60"
    )
    logged = lossbench.run(cfg, out=str(tmp_path)).metrics["grad_b"][0]
    model, d = lossbench.init_model(cfg)  # the public init must be the trainer's own
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


def test_init_scale_every_check_fails_on_a_contradicting_result(fast_results):
    module, measured = fast_results["init_scale"]
    bad = copy.deepcopy(measured)
    bad["glorot"]["default"].update(
        jacobian_mean_sv=[0.8] * 5, backprop_first_last=[0.9] * 5, weight_grad_first_last=[0.1] * 5
    )
    bad["glorot"]["xavier"].update(jacobian_mean_sv=[0.5] * 5, backprop_first_last=[0.1] * 5)
    for init in ("default", "xavier_uniform"):
        bad["he"][init]["std_last_over_first"] = [1.0] * 5
    bad["he"]["kaiming_normal"]["std_last_over_first"] = [1e-5] * 5
    assert all_fail(module.judge(bad))


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


def test_plateaus_every_check_fails_on_a_contradicting_result(fast_results):
    module, measured = fast_results["plateaus"]
    bad = copy.deepcopy(measured)
    bad["mse"], bad["bce"] = [0.0] * 5, [0.2] * 5
    bad["curve"] = {"mse": [[0.0] * 5] * 5, "bce": [[0.1] * 5] * 5}
    assert all_fail(module.judge(bad))


def test_plateaus_surface_matches_closed_form():
    """At W1 = W2 = 0 the output is sigmoid(b2) for every example: the loss is known by hand."""
    import math

    import torch

    import lossbench

    module = load("plateaus")
    cfg = lossbench.load_config(os.path.join(ROOT, "experiments/plateaus/tiny_net.yaml"), "loss=mse")
    zero = torch.zeros(1, 1, dtype=torch.float64)
    loss, _ = module.surface(cfg, "mse", zero, zero)
    model, d = lossbench.init_model(cfg)
    y = d["y"].double()
    b2 = float(model.layers[1].bias.detach())
    p = 1 / (1 + math.exp(-b2))
    assert loss[0, 0] == pytest.approx(float(((p - y) ** 2).mean()), rel=1e-9)
