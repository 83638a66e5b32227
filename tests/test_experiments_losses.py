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


@pytest.mark.parametrize("slug", SLUGS)
def test_fast_mode_passes_every_check_and_draws_a_figure(results, slug):
    module, measured, checks, folder = results[slug]
    assert checks, slug
    failing = [c for c in checks if c["verdict"] != "PASS"]
    assert not failing, failing
    assert list(folder.glob("*.png")), f"{slug} drew no figure"
    rp.jsonable(measured)  # the measured dict must survive verdicts.json


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
    # at a fixed step theta ends on a two-point cycle {a, a - lr}: mean abs(theta) = lr / 2
    assert measured["mae_fixed_tail_abs"] == pytest.approx(0.05, abs=1e-5)
    assert measured["mae_small_tail_abs"] == pytest.approx(0.02, abs=1e-5)


def test_mae_jumping_judge_fails_when_the_jumping_is_absent(results):
    module, measured, _, _ = results["mae_jumping"]
    bad = {**measured, "mae_fixed_amplitude_over_step": 0.01, "decay_vs_fixed": 1.0, "mse_increases": 7}
    v = verdicts(module.judge(bad))
    assert v["MAE lr 0.1: end amplitude / step"] == "FAIL"
    assert v["decaying step: end amplitude / fixed step's"] == "FAIL"
    assert v["MSE lr 0.1: steps where abs(theta) grows"] == "FAIL"
    slower = {**measured, "mse_large_steps_to_half": 200}
    assert verdicts(module.judge(slower))["MSE closes a large error in fewer steps than MAE"] == "FAIL"


# ----- hinge_margin -------------------------------------------------------------------------------


def test_hinge_margin_reads_real_runs(results):
    _, measured, _, folder = results["hinge_margin"]
    from lossbench.runs.store import load_run

    runs = [load_run(str(p)) for p in sorted((folder / "bce").iterdir())]
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
    bad = {**measured, "gaussian_rel_err": 0.3, "argmin_mismatches": 2, "median_err": 0.5}
    v = verdicts(module.judge(bad))
    assert v["MSE vs Gaussian NLL: relative error of the formula"] == "FAIL"
    assert v["argmin of the loss != argmin of the NLL (count)"] == "FAIL"
    assert v["MAE's minimiser - the median"] == "FAIL"
    assert v["BCE vs Bernoulli NLL: relative difference"] == "PASS"
