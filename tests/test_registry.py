"""Tests generated from the registries: every entry is checked without anyone remembering to."""

import math

import pytest
import torch

from lossbench.cli import main
from lossbench.components.activations import activations, derivative, peak_derivative
from lossbench.components.data import datasets
from lossbench.components.inits import inits
from lossbench.components.optim import optimizers, schedules
from lossbench.config.validate import build
from lossbench.runs.runner import execute
from lossbench.runs.store import load_run

CONFIGURABLE_DATA = [n for n in datasets if n != "mnist"]  # mnist needs local files: test_data.py


@pytest.mark.parametrize("name", activations.names())
def test_activation_derivative_matches_finite_differences(name):
    fn = activations[name].fn(**activations[name].defaults())
    z = torch.linspace(-4, 4, 81, dtype=torch.float64) + 0.013  # avoid ReLU's kink at exactly 0
    numeric = (fn(z + 1e-6) - fn(z - 1e-6)) / 2e-6
    assert torch.allclose(derivative(fn, z), numeric, atol=1e-5)


def test_sigmoid_peak_derivative_is_a_quarter():
    assert peak_derivative("sigmoid", {}) == pytest.approx(0.25, abs=1e-6)
    assert peak_derivative("tanh", {}) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("name", inits.names())
def test_init_fills_a_weight_reproducibly(name):
    entry = inits[name]
    w1, w2 = torch.empty(64, 128), torch.empty(64, 128)
    entry.fn(w1, 128, torch.Generator().manual_seed(3), **entry.defaults())
    entry.fn(w2, 128, torch.Generator().manual_seed(3), **entry.defaults())
    assert torch.equal(w1, w2) and torch.isfinite(w1).all()


EXPECTED_STD = {  # closed forms for a [out=64, in=128] weight
    "default": 1 / math.sqrt(3 * 128),
    "lecun_normal": 1 / math.sqrt(128),
    "xavier_uniform": math.sqrt(2 / (128 + 64)),
    "xavier_normal": math.sqrt(2 / (128 + 64)),
    "kaiming_uniform": math.sqrt(2 / 128),
    "kaiming_normal": math.sqrt(2 / 128),
    "normal": 1.0,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_STD))
def test_init_std_matches_closed_form(name):
    w = torch.empty(64, 128, dtype=torch.float64)
    stds = []
    for seed in range(20):
        inits[name].fn(w, 128, torch.Generator().manual_seed(seed), **inits[name].defaults())
        stds.append(w.std().item())
    assert sum(stds) / len(stds) == pytest.approx(EXPECTED_STD[name], rel=0.03)


@pytest.mark.parametrize("name", optimizers.names())
def test_optimizer_builds_the_torch_optimizer_with_its_defaults(name):
    p = torch.nn.Parameter(torch.ones(3))
    opt = optimizers[name].fn([p], **optimizers[name].defaults())
    assert type(opt).__name__.lower() == name
    assert opt.param_groups[0]["lr"] == optimizers[name].defaults()["lr"]


@pytest.mark.parametrize("name", schedules.names())
def test_schedule_starts_at_the_base_rate_and_never_grows(name):
    kwargs = schedules[name].defaults()
    factors = [schedules[name].fn(t, 500, **kwargs) for t in range(500)]
    assert factors[0] == pytest.approx(1.0)
    assert all(b <= a + 1e-12 for a, b in zip(factors, factors[1:]))


def test_schedule_values_by_hand():
    assert schedules["step"].fn(250, 1000, step_size=100, gamma=0.5) == 0.25
    assert schedules["cosine"].fn(500, 1000) == pytest.approx(0.5)
    assert schedules["inverse_time"].fn(10, 100, decay=0.1) == pytest.approx(0.5)


@pytest.mark.parametrize("name", CONFIGURABLE_DATA)
def test_every_data_set_trains_a_tiny_run(name, tmp_path):
    kwargs = {"n_samples": 60} if "n_samples" in datasets[name].params() else {}
    raw = {
        "name": f"d_{name}",
        "data": {"name": name, **kwargs},
        "model": {"depth": 1, "width": 4},
        "train": {"epochs": 2, "batch_size": 16, "log_every": 1},
    }
    cfg = build(raw)
    summary, folder, _ = execute(cfg, str(tmp_path))
    assert summary["status"] == "finished"
    run = load_run(folder)
    assert run.metrics["grad_w"].shape[1] == 2  # one hidden layer + the output layer
    assert math.isfinite(summary["final_train_loss"])


@pytest.mark.parametrize(
    "kind,name",
    [
        (k, n)
        for k, r in [
            ("activation", activations),
            ("init", inits),
            ("optimizer", optimizers),
            ("schedule", schedules),
        ]
        for n in r
    ],
)
def test_every_component_trains_a_tiny_run(kind, name, tmp_path):
    model = {"depth": 2, "width": 6}
    optim = {"name": "sgd", "lr": 0.05}
    if kind == "activation":
        model["activation"] = name
    elif kind == "init":
        model["init"] = name
    elif kind == "optimizer":
        optim = {"name": name}
    else:
        optim["schedule"] = name
    raw = {
        "name": "c",
        "data": {"name": "xor", "n_samples": 64},
        "model": model,
        "optim": optim,
        "train": {"epochs": 2, "batch_size": 16, "log_every": 1},
    }
    summary, folder, _ = execute(build(raw), str(tmp_path))
    assert summary["status"] == "finished"
    assert len(load_run(folder).metrics["step"]) == 8  # every step of 2 epochs x 4 batches


def test_list_names_every_registered_entry(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for registry in (activations, inits, optimizers, schedules, datasets):
        for name in registry:
            assert f"  {name} " in out


@pytest.mark.parametrize("name", [n for n in activations if "derivative" in activations[n].meta])
def test_closed_form_derivative_matches_autograd(name):
    from lossbench.components.activations import derivative_fn

    fn = activations[name].fn()
    z = torch.linspace(-6, 6, 121, dtype=torch.float64) + 0.013
    assert torch.allclose(derivative_fn(name, {})(z, fn(z)), derivative(fn, z), atol=1e-12)
