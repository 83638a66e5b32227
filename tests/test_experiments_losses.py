"""The loss experiments (loss_gallery, outliers, mae_jumping, hinge_margin, likelihood).

Each runs once in fast mode (module-scoped); the tests then check that every claim passes there,
that the measured numbers agree with references computed here independently (numpy, closed forms,
PyTorch built-ins), and that each judge says FAIL when fed a result that should fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lossbench import reproduce as rp
from lossbench.runs.store import strict_json

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("experiments_losses")]

SLUGS = ["loss_gallery", "outliers", "mae_jumping", "hinge_margin", "likelihood"]


def experiment(slug):
    return rp.load_experiment(slug, rp.experiments_dir() / slug / "experiment.py")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """{slug: (module, measured, checks, out folder)} from one fast run of each experiment."""
    import torch

    torch.set_num_threads(1)
    out = {}
    for slug in SLUGS:
        folder = tmp_path_factory.mktemp(slug)
        module = experiment(slug)
        measured = module.run(str(folder), True)
        out[slug] = (module, measured, module.judge(measured), folder)
    return out


def verdicts(checks) -> dict:
    return {c["check"]: c["verdict"] for c in checks}


def all_fail(checks) -> bool:
    """Every check FAILs (and says so in the assertion message otherwise)."""
    passing = [(c["check"], c["verdict"]) for c in checks if c["verdict"] != "FAIL"]
    assert checks and not passing, passing
    return True


@pytest.mark.parametrize("slug", SLUGS)
def test_fast_mode_passes_every_check_and_draws_a_figure(results, slug):
    module, measured, checks, folder = results[slug]
    assert checks, slug
    failing = [c for c in checks if c["verdict"] != "PASS"]
    assert not failing, failing
    assert list(folder.glob("*.png")), f"{slug} drew no figure"
    strict_json(measured)  # the measured dict must survive verdicts.json


@pytest.mark.parametrize("slug", SLUGS)
def test_judge_of_nothing_fails_every_check_without_crashing(slug):
    checks = experiment(slug).judge({})
    assert checks and all(c["verdict"] == "FAIL" for c in checks)


# ----- outliers ---------------------------------------------------------------------------------


def test_outliers_expected_values_are_the_mean_and_median():
    e = experiment("outliers").EXPECTED
    targets = [1.0, 2.0, 3.0, 4.0, 100.0]
    assert e["constant_mse"]["value"] == np.mean(targets)
    assert e["constant_mae"]["value"] == np.median(targets)


def test_outliers_line_fits_match_least_squares_on_the_same_data(results):
    """The MSE fit from lossbench's runs equals numpy's least-squares line on each seed's data."""
    import torch

    from lossbench.components.data import make

    _, measured, _, _ = results["outliers"]
    for seed, intercept, slope in zip(measured["seeds"], measured["line_mse"], measured["line_mse_slope"]):
        d = make("line", {"n_samples": 200, "outlier_fraction": 0.1, "outlier_shift": 20.0}, seed)
        x, y = d.x[:, 0].numpy(), d.y[:, 0].numpy()
        ref_slope, ref_intercept = np.polyfit(x, y, 1)
        assert abs(intercept - ref_intercept) < 0.02 and abs(slope - ref_slope) < 0.05
        assert abs(np.median(y - slope * x) - measured["line_mae"][seed]) < 0.1
        assert torch.is_tensor(d.x)


def test_outliers_judge_fails_a_fit_not_dragged_by_outliers(results):
    module, measured, _, _ = results["outliers"]
    bad = {**measured, "constant_mse": [3.0] * 5, "line_mse": [1.12] * 5}
    v = verdicts(module.judge(bad))
    assert v["mse fitted constant"] == "FAIL" and v["mse fitted intercept"] == "FAIL"
    assert v["huber nearer MAE than MSE (line)"] == "FAIL"
    one_seed_off = {**measured, "line_mae": measured["line_mae"][:4] + [3.0]}
    assert verdicts(module.judge(one_seed_off))["mae fitted intercept"] == "FAIL"


def test_outliers_every_check_fails_on_a_contradicting_result(results):
    module, measured, _, _ = results["outliers"]
    bad = {**measured, "constant_mse": [3.0] * 5, "constant_mae": [22.0] * 5, "constant_huber": [22.0] * 5}
    bad.update(line_mse=[1.0] * 5, line_mae=[3.0] * 5, line_huber=[1.0] * 5)
    bad.update({f"line_{k}_gap": [0.5] * 5 for k in ("mse", "mae", "huber")})
    assert all_fail(module.judge(bad))


def test_outliers_exact_references_are_the_optima():
    """linprog's LAD line and minimize's Huber line are optimal: no nearby line does better."""
    module = experiment("outliers")
    g = np.random.default_rng(0)
    x = g.uniform(-1, 1, 200)
    y = 2 * x + 1 + g.normal(0, 0.1, 200)
    y[:20] += 20
    for loss, f in (
        ("mse", lambda r: (r**2).mean()),
        ("mae", lambda r: np.abs(r).mean()),
        ("huber", lambda r: np.where(np.abs(r) <= 1, 0.5 * r**2, np.abs(r) - 0.5).mean()),
    ):
        w, b = module.exact_line(x, y, loss)
        best = f(y - w * x - b)
        for dw, db in g.normal(0, 1e-3, (50, 2)):
            assert f(y - (w + dw) * x - (b + db)) >= best - 1e-12, loss
    assert module.exact_line(x, y, "mse")[1] == pytest.approx(np.polyfit(x, y, 1)[1])


# ----- mae_jumping -------------------------------------------------------------------------------


def _closed_form_steps(loss: str, theta: float, lr: float, reach: float) -> int:
    t = np.float32(theta)
    for step in range(10_000):
        if abs(t) <= reach:
            return step
        t = t - np.float32(lr) * (np.float32(2) * t if loss == "mse" else np.sign(t))
    raise AssertionError("never reached")


def test_mae_jumping_matches_the_closed_form(results):
    module, measured, _, _ = results["mae_jumping"]
    assert measured["mse_large_steps_to_half"] == _closed_form_steps("mse", 10.05, 0.1, 0.5) == 14
    assert measured["mae_large_steps_to_half"] == _closed_form_steps("mae", 10.05, 0.1, 0.5) == 96
    # the end cycle {r, r - lr}, r = start mod lr, by float32 iteration here
    for key, (_, _, start, lr) in module.MAE_FIXED.items():
        t, tail = np.float32(start), []
        for step in range(150):
            if step >= 130:
                tail.append(abs(float(t)))
            t = t - np.float32(lr) * np.sign(t)
        assert measured[f"{key}_cycle"] == pytest.approx([min(tail), max(tail)], abs=1e-6)
        assert measured[f"{key}_cycle"] == pytest.approx(module.cycle(start, lr), abs=1e-4)
    assert module.cycle(1.05, 0.04) == pytest.approx([0.01, 0.03])  # peak 0.75 of the step


def test_mae_jumping_judge_fails_when_the_jumping_is_absent(results):
    module, measured, _, _ = results["mae_jumping"]
    bad = {**measured, "mae_fixed_cycle": [0.0, 0.0], "decay_vs_fixed": 1.0, "mse_increases": 7}
    v = verdicts(module.judge(bad))
    assert v["MAE from 1.05, lr 0.1: abs(theta) of the end cycle [low, high]"] == "FAIL"
    assert v["decaying step: end amplitude / fixed step's"] == "FAIL"
    assert v["MSE lr 0.1: steps where abs(theta) grows"] == "FAIL"
    slower = {**measured, "mse_large_steps_to_half": 200}
    assert verdicts(module.judge(slower))["MSE closes a large error in fewer steps than MAE"] == "FAIL"


def test_mae_jumping_every_check_fails_on_a_contradicting_result(results):
    module, measured, _, _ = results["mae_jumping"]
    bad = {**measured, **{f"{k}_cycle": [0.04, 0.06] for k in module.MAE_FIXED}}
    bad.update(mae_fixed_still_jumping=0.5, mae_fixed_tail_grad_min=0.0, decay_vs_fixed=1.0)
    bad.update(mae_decay_amplitude_over_step=3.0, mse_increases=7, mse_final_abs=0.1)
    bad.update(
        huber_increases=3, huber_final_abs=0.01, mse_large_steps_to_half=200, mae_large_steps_to_half=20
    )
    bad.update(huber_large_steps_to_half=14)  # Huber as fast as MSE from far: not what its clipping gives
    assert all_fail(module.judge(bad))


def test_mae_jumping_huber_far_half_fails_when_huber_is_fast(results):
    module, measured, _, _ = results["mae_jumping"]
    name = "Huber closes a large error as slowly as MAE, not like MSE (same step)"
    assert verdicts(module.judge(measured))[name] == "PASS"
    v = verdicts(module.judge({**measured, "huber_large_steps_to_half": 14}))
    assert v[name] == "FAIL" and v["Huber (delta 1): steps from 10.05 to 0.5 at lr 0.1"] == "FAIL"


# ----- hinge_margin -------------------------------------------------------------------------------


def test_hinge_margin_reads_real_runs(results):
    _, measured, _, folder = results["hinge_margin"]
    from lossbench.runs.store import load_run

    runs = [load_run(str(p)) for p in sorted((folder / "bce_n200_steps2000").iterdir())]
    assert len(runs) == 5 and sorted(r.config["seed"] for r in runs) == [0, 1, 2, 3, 4]
    ends = sorted(float(r.metrics["weight_norm"][-1, 0]) for r in runs)
    assert ends == pytest.approx(sorted(measured["bce"]["norm_end"]))
    assert all(m >= 1 - 1e-6 for m in measured["hinge"]["min_margin"])


def test_hinge_margin_judge_fails_a_hinge_that_did_not_separate(results):
    module, measured, _, _ = results["hinge_margin"]
    hinge = {**measured["hinge"], "final_loss": [0.0, 0.0, 0.01, 0.0, 0.0], "min_margin": [1.0, 0.4, 1, 1, 1]}
    bce = {**measured["bce"], "norm_decreases": [0, 0, 3, 0, 0]}
    v = verdicts(module.judge({**measured, "hinge": hinge, "bce": bce}))
    assert v["hinge: final training loss"] == "FAIL"
    assert v["hinge: smallest margin y f(x)"] == "FAIL"
    assert v["cross-entropy: recorded weight norm not growing (second half)"] == "FAIL"


def _reversed_trends(measured):
    """The margin ratios of every setting in reverse: fewer points, larger steps and shorter training
    nearer the maximum."""
    settings = dict(measured["margin_over_max"])
    for group in (
        ["n 50", "n 100", "n 200", "n 400"],
        ["lr 0.5, 2000 steps", "lr 2, 2000 steps", "lr 20, 2000 steps"],
    ):
        values = [settings[k] for k in group]
        settings.update(zip(group, reversed(values)))
    settings["lr 0.5, 1000 steps"], settings["lr 0.5, 2000 steps"] = settings["lr 0.5, 2000 steps"], [0.5] * 5
    return settings


def test_hinge_margin_every_check_fails_on_a_contradicting_result(results):
    module, measured, _, _ = results["hinge_margin"]
    hinge = {
        **measured["hinge"],
        "final_loss": [0.1] * 5,
        "min_margin": [0.5] * 5,
        "moves_after_zero": [0.3] * 5,
    }
    settings = _reversed_trends(measured)
    settings["lr 2, 1000 steps"] = [0.9] * 5
    growing = [{t: 0.01 * (1 + t / 100) for t in g} for g in measured["bce"]["margin_gap"]]  # moving away
    bce = {**measured["bce"], "margin_over_max": [0.95] * 5, "norm_decreases": [3] * 5, "margin_gap": growing}
    bad = {**measured, "hinge": hinge, "bce": bce, "svc_over_exact": [1.01] * 5, "margin_over_max": settings}
    assert all_fail(module.judge(bad))


def test_hinge_margin_trends_fail_when_reversed(results):
    module, measured, checks, _ = results["hinge_margin"]
    names = [c["check"] for c in checks if c["check"].startswith("hinge: margin approaches")]
    assert len(names) == 3 and all(verdicts(checks)[n] == "PASS" for n in names)
    v = verdicts(module.judge({**measured, "margin_over_max": _reversed_trends(measured)}))
    assert all(v[n] == "FAIL" for n in names)


def test_hinge_margin_soudry_check_fails_a_fast_or_no_approach(results):
    """The direction's margin gap falling 100-fold over a decade (a 1/t^2 rate) or not at all fails."""
    module, measured, _, _ = results["hinge_margin"]
    name = "cross-entropy: the direction's margin approaches the maximum, slowly (last decade of steps)"
    for rate in (lambda t: 1 / t**2, lambda t: 0.05):
        gaps = [{t: rate(max(t, 1)) for t in g} for g in measured["bce"]["margin_gap"]]
        bad = {**measured, "bce": {**measured["bce"], "margin_gap": gaps}}
        assert verdicts(module.judge(bad))[name] == "FAIL"
    log_rate = [{t: 1 / math.log(max(t, 2)) for t in g} for g in measured["bce"]["margin_gap"]]
    good = {**measured, "bce": {**measured["bce"], "margin_gap": log_rate}}
    assert verdicts(module.judge(good))[name] == "PASS"


def test_hinge_margin_exact_reference_is_the_largest_margin():
    """The hull construction's margin: every point at least that far from its boundary, no random
    direction nearby beats it, and an independent QP solver (scikit-learn's SVC) agrees."""
    from sklearn.svm import SVC

    module = experiment("hinge_margin")
    g = np.random.default_rng(1)
    x = g.uniform(-2, 2, (80, 2))
    y = (x @ np.array([1.0, -0.5]) + 0.2 > 0).astype(float)
    keep = np.abs(x @ np.array([1.0, -0.5]) + 0.2) > 0.3
    x, y = x[keep], y[keep]
    w, b, best = module.max_margin(x, y)
    assert ((2 * y - 1) * (x @ w + b)).min() == pytest.approx(1.0, abs=1e-12)
    assert module.geometric_margin(x, y, w, b) == pytest.approx(best, rel=1e-12)
    for dw in g.normal(0, 0.05, (200, 2)):
        for db in (-0.02, 0.0, 0.02):
            assert module.geometric_margin(x, y, w + dw, b + db) <= best + 1e-12
    svm = SVC(kernel="linear", C=1e8, tol=1e-12).fit(x, y)
    assert module.geometric_margin(x, y, svm.coef_[0], svm.intercept_[0]) == pytest.approx(best, rel=1e-6)


# ----- loss_gallery and likelihood -----------------------------------------------------------------


def test_gallery_sigmoid_rounding_point_matches_float32(results):
    import torch

    _, measured, _, _ = results["loss_gallery"]
    z = measured["sigmoid_one_at"]
    assert torch.sigmoid(torch.tensor(z, dtype=torch.float32)) == 1.0
    assert torch.sigmoid(torch.tensor(z - 0.01, dtype=torch.float32)) < 1.0
    # 1 + exp(-z) rounds to 1 in float32 once exp(-z) is below half an ulp of 1 (2^-24)
    assert abs(z - 24 * math.log(2)) < 0.02


def test_gallery_judge_fails_wrong_shapes(results):
    module, measured, _, _ = results["loss_gallery"]
    bad = {
        **measured,
        "mae_slope_dev": 0.5,
        "huber_switch": {"0.5": 0.5, "1.0": 1.5, "2.0": 2.0},
        "hinge_beyond": 0.1,
        "bce_wrong_grad": 0.0,
    }
    v = verdicts(module.judge(bad))
    assert v["MAE: abs slope - 1, largest"] == "FAIL"
    assert v["Huber: where the slope stops being e (per delta)"] == "FAIL"
    assert v["hinge: abs slope beyond margin 1, largest"] == "FAIL"
    assert v["cross-entropy from logits: abs gradient at a wrong logit of -30 (float32)"] == "FAIL"
    assert sum(x == "FAIL" for x in v.values()) == 4


def test_likelihood_judge_fails_a_wrong_scale(results):
    module, measured, _, _ = results["likelihood"]
    bad = {**measured, "gaussian_rel_err": 0.3, "argmin_mismatches": 2, "grid_not_next_to_exact": 1}
    v = verdicts(module.judge(bad))
    assert v["MSE vs Gaussian NLL: relative error of the formula"] == "FAIL"
    assert v["argmin of the loss != argmin of the NLL (count)"] == "FAIL"
    assert v["grid minimiser not next to the exact one: mean, median, logit(mean label) (count)"] == "FAIL"
    assert v["BCE vs Bernoulli NLL: relative difference"] == "PASS"


def test_gallery_every_check_fails_on_a_contradicting_result(results):
    module, measured, _, _ = results["loss_gallery"]
    bad = {**measured, "mae_slope_dev": 0.5, "mse_slope_dev": 1.0, "hinge_beyond": 0.1, "hinge_inside": 0.5}
    bad.update(huber_switch={"0.5": 1.5, "1.0": 2.0, "2.0": 3.0}, huber_outer_slope_dev={"1.0": 1.0})
    bad.update(smooth_l1_dev={"1.0": 1.0}, bce_min_grad=0.0, bce_wrong_grad=0.0, ce_wrong_grad=0.0)
    bad.update(prob_wrong_grad=0.5, sigmoid_one_at=30.0)
    assert all_fail(module.judge(bad))


def test_likelihood_every_check_fails_on_a_contradicting_result(results):
    module, measured, _, _ = results["likelihood"]
    bad = {**measured, **{k: 0.3 for k in measured if k.endswith("_err")}}
    bad.update(argmin_mismatches=2, ce_below_entropy=3, ce_at_p_minus_entropy=0.3, grid_not_next_to_exact=1)
    # the wrong noise model winning: the median spreading less under Gaussian noise, more under Laplace
    noise = {**measured["noise_model"]}
    noise["gaussian"] = {**noise["gaussian"], "interval": [0.7, 0.9]}
    noise["laplace"] = {**noise["laplace"], "interval": [1.1, 1.3]}
    bad["noise_model"] = noise
    assert all_fail(module.judge(bad))


def test_likelihood_grid_checks_hold_for_degenerate_and_near_median_draws():
    """Every label 0 (BCE's minimiser at minus infinity) and a data point within a grid step of the
    median: the grid minimiser is still next to the exact one (the draws that used to FAIL)."""
    import torch

    module = experiment("likelihood")
    theta = torch.arange(-1200, 1201, dtype=torch.float64) * module.GRID_STEP
    assert module._neighbours_exact(theta, (theta + 12.0) ** 2, -math.inf)  # falling to the left end
    assert not module._neighbours_exact(theta, (theta - 3.0) ** 2, -math.inf)
    values = torch.tensor([0.0, 1.004, 2.0])  # median 1.004, between grid points 1.00 and 1.01
    mae = (theta[:, None] - values).abs().mean(1)
    assert module._neighbours_exact(theta, mae, 1.004)
    assert not module._neighbours_exact(theta, mae, 1.2)


def test_likelihood_noise_model_fits_are_the_mean_and_the_median():
    import torch

    module = experiment("likelihood")
    y = torch.randn(7, 25, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    mse_fit, mae_fit = module._fits(y)
    assert torch.allclose(mse_fit, y.mean(1), atol=1e-12)
    assert torch.equal(mae_fit, y.median(1).values)
