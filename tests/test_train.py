"""The training loop records what really happened: checked against autograd by hand."""

import glob
import json
import math
import os
import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT, run_cli

from lossbench.config.validate import build, load
from lossbench.engine.model import build_model
from lossbench.engine.train import prepare, train
from lossbench.runs.runner import execute
from lossbench.runs.store import config_hash, load_run


def _cfg(tiny, **train):
    tiny["train"].update(train)
    return build(tiny)


def test_step_zero_reading_equals_autograd_by_hand(tiny):
    """grad_w, grad_b, grad_out, act stats and update_ratio at step 0, recomputed independently."""
    tiny["dtype"] = "float64"
    tiny["train"] = {"steps": 1, "batch_size": 32, "log_every": 1}
    cfg = build(tiny)
    rows = []
    train(cfg, log=rows.append)
    row = rows[0]

    # the same first batch, the same initial weights, through plain torch
    torch.manual_seed(cfg.seed)
    d = prepare(cfg)
    model = build_model(cfg, torch.Generator().manual_seed(cfg.seed + 1))
    order = torch.randperm(len(d["x"]), generator=torch.Generator().manual_seed(cfg.seed + 2))
    xb, yb = d["x"][order[:32]], d["y"][order[:32]]
    h, pre = xb, []
    for i, layer in enumerate(model.layers):
        z = layer(h)
        z.retain_grad()
        pre.append(z)
        h = torch.tanh(z) if i < len(model.layers) - 1 else z
    loss = torch.nn.functional.binary_cross_entropy_with_logits(h, yb)
    loss.backward()
    assert row["loss"] == pytest.approx(loss.item(), rel=1e-12)
    for i, layer in enumerate(model.layers):
        assert row["grad_w"][i] == pytest.approx(layer.weight.grad.norm().item(), rel=1e-6)
        assert row["grad_b"][i] == pytest.approx(layer.bias.grad.norm().item(), rel=1e-6)
        assert row["grad_out"][i] == pytest.approx(pre[i].grad.norm().item(), rel=1e-6)
        assert row["weight_norm"][i] == pytest.approx(layer.weight.norm().item(), rel=1e-6)
        # plain SGD: the update is lr * grad, so the ratio is lr |g| / |W|
        expected_ratio = 0.1 * layer.weight.grad.norm().item() / layer.weight.norm().item()
        assert row["update_ratio"][i] == pytest.approx(expected_ratio, rel=1e-5)
    a = torch.tanh(pre[0])
    assert row["act_mean"][0] == pytest.approx(a.mean().item(), rel=1e-6)
    assert row["act_std"][0] == pytest.approx(a.std().item(), rel=1e-6)
    assert row["act_deriv"][0] == pytest.approx((1 - a**2).mean().item(), rel=1e-6)
    assert row["act_saturated"][0] == pytest.approx(((1 - a**2) < 0.05).double().mean().item())
    # the output layer's "activation" is the sigmoid output: its derivative is sigma'(z)
    s = torch.sigmoid(pre[-1])
    assert row["act_deriv"][-1] == pytest.approx((s * (1 - s)).mean().item(), rel=1e-6)


@pytest.mark.parametrize(
    "activation, data, loss",
    [("relu", "moons", "bce"), ("sigmoid", "blobs", "cross_entropy"), ("gelu", "sine", "mse")],
)
def test_activation_statistics_of_every_layer_by_hand(activation, data, loss):
    """mean, std, saturated, dead and mean derivative of every layer, against plain torch formulas.

    ReLU has dead units after a bias shift, GELU's derivative comes from autograd, and a softmax
    output reports the fraction of confident (> 0.99) predictions.
    """
    from lossbench.components.activations import activations, derivative, peak_derivative
    from lossbench.engine.train import LayerReader

    raw = {
        "data": {"name": data, "n_samples": 200},
        "model": {"depth": 3, "width": 12, "activation": activation},
        "loss": loss,
        "dtype": "float64",
    }
    cfg = build(raw)
    model = build_model(cfg, torch.Generator().manual_seed(4))
    with torch.no_grad():
        model.layers[1].bias.sub_(3.0)  # push some units of layer 2 into saturation / death
    x = prepare(cfg)["x"][:50]
    keep = []
    z = model(x, keep=keep)
    for h in keep:
        h.retain_grad()
    z.square().mean().backward()
    reader = LayerReader(
        [layer.weight for layer in model.layers], [layer.bias for layer in model.layers], cfg
    )
    [row] = reader.finish(reader.read(keep))
    fn = activations[activation].fn()
    peak = peak_derivative(activation, {})
    for i, h in enumerate(keep[:-1]):
        a, d = fn(h.detach()), derivative(fn, h.detach()).abs()
        sat = d < 0.05 * peak
        assert row["act_mean"][i] == pytest.approx(a.mean().item(), rel=1e-9, abs=1e-12)
        assert row["act_std"][i] == pytest.approx(a.std().item(), rel=1e-9)
        assert row["act_deriv"][i] == pytest.approx(d.mean().item(), rel=1e-9)
        assert row["act_saturated"][i] == pytest.approx(sat.double().mean().item(), abs=1e-12)
        assert row["act_dead"][i] == pytest.approx(sat.all(0).double().mean().item(), abs=1e-12)
    if activation == "relu":
        assert row["act_dead"][1] > 0  # the shifted layer really has dead units to count
    out = keep[-1].detach()
    if loss == "cross_entropy":
        p = torch.softmax(out, -1)
        assert row["act_mean"][-1] == pytest.approx(p.mean().item(), rel=1e-9)
        assert row["act_std"][-1] == pytest.approx(p.std().item(), rel=1e-9)
        assert row["act_saturated"][-1] == pytest.approx((p.amax(-1) > 0.99).double().mean().item())
        assert math.isnan(row["act_dead"][-1]) and math.isnan(row["act_deriv"][-1])
    elif loss == "mse":  # identity output: derivative 1, never saturated
        assert row["act_deriv"][-1] == 1.0 and row["act_saturated"][-1] == 0.0
        assert row["act_std"][-1] == pytest.approx(out.std().item(), rel=1e-9)


def test_run_folder_holds_config_metrics_summary(tiny, tmp_path):
    cfg = _cfg(tiny, target_loss=0.6)
    summary, folder, reused = execute(cfg, str(tmp_path))
    assert not reused and folder == os.path.join(str(tmp_path), "tiny", config_hash(cfg.to_dict()))
    assert sorted(os.listdir(folder)) == [
        "config.yaml",
        "metrics.jsonl",
        "model.pt",
        "summary.json",
        "view.npz",
    ]
    with open(os.path.join(folder, "config.yaml")) as f:
        assert yaml.safe_load(f) == cfg.to_dict()
    run = load_run(folder)
    steps = run.metrics["step"].tolist()
    # 96 training examples, batch 32: 3 steps an epoch, 9 steps, logged every 2nd and the last
    assert steps == [0, 2, 4, 6, 8]
    assert run.metrics["grad_w"].shape == (5, 3)
    assert summary["steps_done"] == 9 and summary["status"] == "finished"
    assert summary["versions"]["torch"] == torch.__version__
    # steps to target: the first logged row at or below the target
    losses = run.metrics["loss"]
    hits = [s for s, v in zip(steps, losses) if v <= 0.6]
    (target,) = summary["targets"]  # train.target_loss is a target on `loss`, in the one shape
    assert target["metric"] == "loss" and target["value"] == 0.6
    assert target["steps_to"] == (hits[0] if hits else None)
    assert (target["seconds_to"] is None) == (target["steps_to"] is None)
    assert not {"target_loss", "steps_to_target", "seconds_to_target"} & set(summary)
    # the final loss is a full pass with the trained weights, reloaded from model.pt
    state = torch.load(os.path.join(folder, "model.pt"))
    model = build_model(cfg, torch.Generator())
    model.load_state_dict(state)
    d = prepare(cfg)
    with torch.no_grad():
        full = torch.nn.functional.binary_cross_entropy_with_logits(model(d["x"]), d["y"]).item()
        val = torch.nn.functional.binary_cross_entropy_with_logits(model(d["x_val"]), d["y_val"]).item()
        val_acc = ((model(d["x_val"]) > 0) == (d["y_val"] > 0.5)).double().mean().item()
    assert summary["final_train_loss"] == pytest.approx(full, rel=1e-5)
    # the validation metrics of the final weights: taken from the last row, equal to a full pass
    assert summary["final_val_loss"] == pytest.approx(val, rel=1e-5) == run.metrics["val_loss"][-1]
    assert summary["final_val_acc"] == pytest.approx(val_acc) == run.metrics["val_acc"][-1]


def test_same_config_twice_gives_identical_metrics_and_is_reused(tiny, tmp_path):
    cfg = _cfg(tiny)
    _, folder_a, _ = execute(cfg, str(tmp_path / "a"))
    _, folder_b, _ = execute(cfg, str(tmp_path / "b"))
    a, b = load_run(folder_a).metrics, load_run(folder_b).metrics
    for key in a:
        if key != "time":
            assert a[key].tobytes() == b[key].tobytes(), key
    summary, folder, reused = execute(cfg, str(tmp_path / "a"))
    assert reused and folder == folder_a


def test_a_huge_learning_rate_diverges_and_keeps_what_was_recorded(tiny, tmp_path):
    tiny["loss"] = {"name": "mse"}
    tiny["data"] = {"name": "sine", "n_samples": 100}
    tiny["optim"]["lr"] = 1e3
    summary, folder, _ = execute(build(tiny), str(tmp_path))
    assert summary["status"] == "diverged"
    run = load_run(folder)
    assert run.metrics["step"][-1] == summary["diverged_step"]
    assert summary["diverged_step"] < 9
    assert not math.isfinite(run.metrics["loss"][-1]) or not np.isfinite(run.metrics["grad_w"][-1]).all()

    # strict JSON throughout: a non-finite number is written as null, never as NaN or Infinity
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    for name in ("metrics.jsonl", "summary.json"):
        text = open(os.path.join(folder, name)).read()
        for line in text.splitlines() if name.endswith("jsonl") else [text]:
            json.loads(line, parse_constant=refuse)
    assert "null" in open(os.path.join(folder, "metrics.jsonl")).read().splitlines()[-1]


def test_softmax_rows_write_null_and_read_back_nan(tmp_path):
    """A softmax output has no 'dead' units or single derivative: NaN in memory, null on disk."""
    raw = {"data": {"name": "blobs", "n_samples": 120}, "loss": "cross_entropy", "train": {"steps": 3}}
    summary, folder, _ = execute(build(raw), str(tmp_path))
    first = json.loads(open(os.path.join(folder, "metrics.jsonl")).readline())
    assert first["act_dead"][-1] is None and first["act_deriv"][-1] is None
    run = load_run(folder)
    assert (
        np.isnan(run.metrics["act_dead"][:, -1]).all() and np.isfinite(run.metrics["act_dead"][:, :-1]).all()
    )


def test_nielsen_neuron_matches_the_closed_form_recursion(tmp_path):
    """A depth-0, one-input net is one sigmoid neuron: gradient descent by hand gives the same w, b."""
    cfg, _, _ = load(os.path.join(ROOT, "configs", "nielsen_neuron.yaml"))
    rows = []
    summary, model, _ = train(cfg, log=rows.append)
    w, b = 2.0, 2.0
    for _ in range(300):
        a = 1 / (1 + math.exp(-(w + b)))
        g = (a - 0.0) * a * (1 - a)  # dC/dz for C = (a - y)^2 / 2
        w, b = w - 0.15 * g, b - 0.15 * g
    assert model.layers[0].weight.item() == pytest.approx(w, rel=1e-4)
    assert model.layers[0].bias.item() == pytest.approx(b, rel=1e-4)


@pytest.mark.slow
def test_every_shipped_config_validates():
    paths = glob.glob(os.path.join(ROOT, "configs", "*.yaml")) + glob.glob(
        os.path.join(ROOT, "experiments", "*", "*.yaml")
    )
    assert paths
    for path in paths:
        with open(path) as f:
            assert f.readline().startswith("#"), f"{path} needs a header comment"
        load(path)


def test_help_answers_without_importing_torch():
    code = (
        "import sys; from lossbench.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass\n"
        "assert 'torch' not in sys.modules, 'torch imported for --help'"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.slow
def test_cli_run_prints_a_summary_and_override_and_rerun_says_reused(tmp_path, write_config, tiny):
    path = write_config(tiny)
    first = run_cli("run", path, "model.depth=1", "--out", tmp_path)
    assert first.returncode == 0, first.stderr
    assert "val acc" in first.stdout and "folder" in first.stdout
    [folder] = glob.glob(str(tmp_path / "tiny" / "*"))
    assert yaml.safe_load(open(os.path.join(folder, "config.yaml")))["model"]["depth"] == 1
    again = run_cli("run", path, "model.depth=1", "--out", tmp_path)
    assert again.returncode == 0 and "reused" in again.stdout
    summary = json.load(open(os.path.join(folder, "summary.json")))
    assert summary["status"] == "finished"
    assert summary["versions"]["threads"] == 1  # the CLI's default: small nets are fastest on one


def test_validate_reports_every_problem_at_once(write_config, tiny):
    tiny["model"]["depth"] = -1
    tiny["loss"] = {"name": "mce"}
    tiny["optim"]["lr"] = 0
    tiny["modle"] = {}
    out = run_cli("validate", write_config(tiny))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    for fragment in (
        "model.depth: must be >= 0",
        "did you mean 'mse'",
        "optim.lr: must be > 0",
        "modle: unknown key (did you mean 'model'?)",
        "4 problems",
    ):
        assert fragment in out.stderr, out.stderr


@pytest.mark.parametrize(
    "data, loss, output",
    [
        ({"name": "sine", "n_samples": 120}, "huber", "identity"),
        ({"name": "moons", "n_samples": 120}, "mse", "sigmoid"),
        ({"name": "blobs", "n_samples": 120}, "cross_entropy", "softmax"),
        ({"name": "blobs", "n_samples": 120}, "bce", "sigmoid"),
        ({"name": "moons", "n_samples": 120}, "hinge", "identity"),
    ],
    ids=["regression", "binary-sigmoid", "softmax", "multiclass-sigmoid", "hinge"],
)
def test_common_metrics_equal_pytorch_on_the_final_weights(data, loss, output, tmp_path):
    """val_mse / val_mae (regression) and val_nll (probabilities), whatever loss trained the model,
    recomputed here with torch.nn.functional from the saved weights; none where they do not apply."""
    import torch.nn.functional as F

    raw = {"data": data, "loss": loss, "dtype": "float64", "train": {"steps": 7, "log_every": 3}}
    cfg = build(raw)
    summary, folder, _ = execute(cfg, str(tmp_path))
    run = load_run(folder)
    model = build_model(cfg, torch.Generator())
    model.load_state_dict(torch.load(os.path.join(folder, "model.pt")))
    d = prepare(cfg)
    with torch.no_grad():
        z, z_train = model(d["x_val"]), model(d["x"])
    labels, expected = d["labels_val"], {}
    if output == "identity" and loss != "hinge":
        expected["val_mse"] = F.mse_loss(z, labels.double()).item()
        expected["val_mae"] = F.l1_loss(z, labels.double()).item()
        expected["final_train_mse"] = F.mse_loss(z_train, d["labels"].double()).item()
    elif output == "softmax":
        expected["val_nll"] = F.cross_entropy(z, labels).item()
    elif output == "sigmoid" and data["name"] == "blobs":  # one Bernoulli per class, summed
        onehot = F.one_hot(labels, z.shape[1]).double()
        expected["val_nll"] = F.binary_cross_entropy_with_logits(z, onehot, reduction="sum").item() / len(z)
    elif output == "sigmoid":
        expected["val_nll"] = F.binary_cross_entropy_with_logits(z, labels.double()).item()
    assert expected or loss == "hinge"
    for key, value in expected.items():
        recorded = summary[key] if key.startswith("final") else run.metrics[key][-1]
        assert recorded == pytest.approx(value, rel=1e-12), key
        if not key.startswith("final"):
            assert summary[f"final_{key}"] == recorded
    absent = {"mse", "mae", "nll"} - {k.replace("val_", "") for k in expected}
    assert not any(f"val_{k}" in run.metrics or f"final_val_{k}" in summary for k in absent)


def test_targets_on_any_metric_are_reached_where_the_rows_say(tiny, tmp_path):
    """Each target's steps_to is the first row at or below (accuracy: at or above) its value."""
    tiny["optim"]["lr"] = 0.5
    tiny["train"].update(
        epochs=6,
        target_loss=0.6,
        target=[{"metric": "val_acc", "value": 0.9}, {"metric": "nll", "value": 0.01}],
    )
    cfg = build(tiny)
    assert cfg.train.target == [{"metric": "val_acc", "value": 0.9}, {"metric": "nll", "value": 0.01}]
    summary, folder, _ = execute(cfg, str(tmp_path))
    rows = [json.loads(line) for line in open(os.path.join(folder, "metrics.jsonl"))]

    def first(metric, ok):
        return next((r["step"] for r in rows if r.get(metric) is not None and ok(r[metric])), None)

    loss_step, acc_step = first("loss", lambda v: v <= 0.6), first("val_acc", lambda v: v >= 0.9)
    assert [t["metric"] for t in summary["targets"]] == ["loss", "val_acc", "nll"]
    assert [t["steps_to"] for t in summary["targets"]] == [loss_step, acc_step, None]
    assert 0 < acc_step < loss_step  # reached mid-run
    assert summary["targets"][2]["seconds_to"] is None


def test_a_config_without_target_keeps_its_run_id(tiny):
    """`train.target` unset is left out of the resolved config: existing run ids do not move."""
    cfg = build(tiny)
    assert "target" not in cfg.to_dict()["train"]
    tiny["train"]["target"] = {"metric": "val_acc", "value": 0.9}
    with_target = build(tiny)
    assert with_target.to_dict()["train"]["target"] == [{"metric": "val_acc", "value": 0.9}]
    assert config_hash(with_target.to_dict()) != config_hash(cfg.to_dict())


def test_an_unknown_target_metric_is_refused_with_the_choices(write_config, tiny):
    tiny["train"]["target"] = [{"metric": "val_acc", "value": 0.9}, {"metric": "val_mes", "value": 1}]
    tiny["data"] = {"name": "sine", "n_samples": 100}
    tiny["loss"] = "mse"
    out = run_cli("validate", write_config(tiny))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "train.target[0].metric: 'val_acc' is not recorded for this regression run" in out.stderr
    assert "train.target[1].metric: unknown metric 'val_mes' (did you mean 'val_mse'?)" in out.stderr
    assert "valid: loss, mse, mae, val_loss, val_mse, val_mae" in out.stderr


def test_a_depth0_summary_holds_the_fitted_weights(tmp_path):
    cfg, _, _ = load(os.path.join(ROOT, "configs", "nielsen_neuron.yaml"))
    summary, model, _ = train(cfg)
    assert summary["linear"] == {
        "weight": model.layers[0].weight.tolist(),
        "bias": model.layers[0].bias.tolist(),
    }
