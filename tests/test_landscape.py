"""The loss landscape (`lossbench.engine.landscape`) against closed forms: a linear model's MSE slice is the
paraboloid computed by hand, the line ends at the recorded losses and bottoms out at least squares'
optimum, MAE's line is the piecewise-linear mean of absolute residuals, the directions are
normalised per filter, the principal path starts at the initial weights; and the snapshots both
engines keep."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from conftest import TINY, run_cli

import lossbench
from lossbench.config import build
from lossbench.engine.landscape import LINE, Landscape, directions
from lossbench.errors import UserError

LINEAR = {
    "name": "linear",
    "dtype": "float64",
    "data": {"name": "line", "n_samples": 40, "outlier_fraction": 0.1},
    "model": {"depth": 0},
    "loss": "mse",
    "optim": {"name": "sgd", "lr": 0.5},
    "train": {"steps": 400, "batch_size": None, "log_every": 50, "snapshots": 2},
}


pytestmark = pytest.mark.xdist_group("landscape")  # one module-scoped fixture, built once


@pytest.fixture(scope="module")
def linear_run(tmp_path_factory):
    return lossbench.run(LINEAR, out=str(tmp_path_factory.mktemp("landscape")))


def _design(run):
    """The run's training inputs with a column of ones (A), targets (y), initial weights [w, b]."""
    model, data = lossbench.init_model(build(run.config))
    x, y = data["x"].numpy(), data["y"].numpy().ravel()
    theta_0 = np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])
    return np.hstack([x, np.ones((len(x), 1))]), y, theta_0


def test_mse_slice_is_the_closed_form_paraboloid(linear_run):
    out = lossbench.landscape(linear_run, resolution=7, span=1.5)
    a, y, _ = _design(linear_run)
    theta_1 = np.concatenate(
        [t.numpy().ravel() for t in torch.load(os.path.join(linear_run.path, "model.pt")).values()]
    )
    d1, d2 = directions(
        Landscape(linear_run.path, linear_run.config), 0
    ).numpy()  # drawn again from the recorded seed
    np.testing.assert_array_equal(out["directions"], np.float32([d1, d2]))
    for i, yy in enumerate(out["slice_y"]):
        for j, xx in enumerate(out["slice_x"]):
            r = a @ (theta_1 + xx * d1 + yy * d2) - y
            assert out["slice_loss"][i, j] == pytest.approx(np.mean(r**2), rel=1e-12)
    # a paraboloid: every second difference along a grid line is the same constant
    second = np.diff(out["slice_loss"], 2, axis=1)
    np.testing.assert_allclose(second, second[0, 0], rtol=1e-8)


def test_line_ends_at_the_recorded_losses_and_bottoms_out_at_least_squares(linear_run):
    out = lossbench.landscape(linear_run, resolution=3)
    i0, i1 = np.flatnonzero(LINE == 0)[0], np.flatnonzero(LINE == 1)[0]
    # full batch: the first row's loss is the whole training set's at the initial weights
    assert out["line_loss"][i0] == pytest.approx(linear_run.metrics["loss"][0], rel=1e-12)
    assert out["line_loss"][i1] == pytest.approx(linear_run.summary["final_train_loss"], rel=1e-12)
    assert out["line_val_loss"][i1] == pytest.approx(linear_run.summary["final_val_loss"], rel=1e-12)
    a, y, _ = _design(linear_run)
    solution, residual, *_ = np.linalg.lstsq(a, y, rcond=None)
    # the line is a parabola in a: its vertex, from three of its points, is least squares' optimum
    c2, c1, c0 = np.polyfit(LINE[[0, 40, 80]], out["line_loss"][[0, 40, 80]], 2)
    vertex = -c1 / (2 * c2)
    assert vertex == pytest.approx(1.0, abs=1e-6)
    assert c0 + c1 * vertex + c2 * vertex**2 == pytest.approx(residual[0] / len(y), rel=1e-9)
    assert out["line_loss"].min() == pytest.approx(residual[0] / len(y), rel=1e-9)


def test_examples_limits_each_set_to_its_first_n(linear_run):
    out = lossbench.landscape(linear_run, resolution=3, n_examples=10)
    a, y, _ = _design(linear_run)
    theta_1 = np.concatenate(
        [t.numpy().ravel() for t in torch.load(os.path.join(linear_run.path, "model.pt")).values()]
    )
    end = np.flatnonzero(LINE == 1)[0]
    assert out["line_loss"][end] == pytest.approx(np.mean((a[:10] @ theta_1 - y[:10]) ** 2), rel=1e-12)


def test_principal_path_starts_at_the_initial_weights(linear_run):
    out = lossbench.landscape(linear_run, resolution=3)
    _, _, theta_0 = _design(linear_run)
    theta_1 = np.concatenate(
        [t.numpy().ravel() for t in torch.load(os.path.join(linear_run.path, "model.pt")).values()]
    )
    assert list(out["path_steps"]) == [0, 200, 400]
    start = theta_1 + out["path_xy"][0] @ out["pca"].astype(np.float64)
    np.testing.assert_allclose(start, theta_0, rtol=1e-6)  # snapshots and directions are float32
    np.testing.assert_allclose(out["path_xy"][-1], 0, atol=1e-6)  # the final weights: the origin
    assert out["explained"].sum() == pytest.approx(1.0)  # 3 points span a plane: all the variance


def test_mae_line_is_piecewise_linear(tmp_path):
    run = lossbench.run(
        {**LINEAR, "loss": "mae", "data": {"name": "line", "n_samples": 8}}, out=str(tmp_path)
    )
    out = lossbench.landscape(run, resolution=3)
    a, y, theta_0 = _design(run)
    theta_1 = np.concatenate(
        [t.numpy().ravel() for t in torch.load(os.path.join(run.path, "model.pt")).values()]
    )
    r0, r1 = a @ theta_0 - y, a @ theta_1 - y  # residual along the line: r0 + a (r1 - r0)
    expected = [np.mean(np.abs((1 - t) * r0 + t * r1)) for t in LINE]
    np.testing.assert_allclose(out["line_loss"], expected, rtol=1e-12)
    kinks = -r0 / (r1 - r0)
    second = np.diff(out["line_loss"], 2)
    straight = [not np.any((kinks > LINE[i]) & (kinks < LINE[i + 2])) for i in range(len(second))]
    assert sum(straight) > 50
    np.testing.assert_allclose(second[straight], 0, atol=1e-12)


@pytest.mark.parametrize("bias", ["row", "zero"])
def test_directions_are_normalised_per_filter(tmp_path, bias):
    run = lossbench.run(TINY, out=str(tmp_path))
    ls = Landscape(run.path, run.config)
    dirs = directions(ls, seed=3, bias=bias)
    g = torch.Generator().manual_seed(3)
    state = torch.load(os.path.join(run.path, "model.pt"))
    n_layers = len(ls.names) // 2
    weights = [state[f"layers.{i}.weight"].double() for i in range(n_layers)]
    biases = [state[f"layers.{i}.bias"].double() for i in range(n_layers)]
    rows = [torch.cat([w, b[:, None]], 1) if bias == "row" else w for w, b in zip(weights, biases)]
    raw = [[torch.randn(r.shape, generator=g, dtype=torch.float64) for r in rows] for _ in range(2)]
    drawn = []
    for d in dirs:
        parts = dict(zip(ls.names, d.split(ls.sizes)))
        layers = []
        for i, w in enumerate(weights):
            dw, db = parts[f"layers.{i}.weight"].reshape(w.shape), parts[f"layers.{i}.bias"]
            layers.append(torch.cat([dw, db[:, None]], 1) if bias == "row" else dw)
            if bias == "zero":
                assert (db == 0).all()
        drawn.append(layers)
    for i, r in enumerate(rows):
        for k in range(len(r)):  # row by row, with numpy: norms, and directions of the draws
            d1, d2 = drawn[0][i][k].numpy(), drawn[1][i][k].numpy()
            g1, g2 = raw[0][i][k].numpy(), raw[1][i][k].numpy()
            g2 = g2 - g2 @ g1 / (g1 @ g1) * g1  # the second draw, orthogonal to the first
            for d, draw in ((d1, g1), (d2, g2)):
                assert np.linalg.norm(d) == pytest.approx(np.linalg.norm(r[k].numpy()), rel=1e-9)
                assert d @ draw / (np.linalg.norm(d) * np.linalg.norm(draw)) == pytest.approx(1.0)
            assert d1 @ d2 == pytest.approx(0.0, abs=1e-9 * np.linalg.norm(d1) * np.linalg.norm(d2))
    again = lossbench.landscape(run, resolution=5, seed=3, bias=bias)
    np.testing.assert_array_equal(again["directions"], dirs.numpy().astype(np.float32))
    np.testing.assert_array_equal(
        again["slice_loss"], lossbench.landscape(run, resolution=5, seed=3, bias=bias)["slice_loss"]
    )
    assert int(again["seed"]) == 3 and str(again["bias"]) == bias


def test_stacked_and_plain_runs_keep_the_same_snapshots(tmp_path):
    cfg = build({**TINY, "train": {**TINY["train"], "snapshots": 3}})
    other = build({**TINY, "seed": 1, "train": {**TINY["train"], "snapshots": 3}})
    stacked = lossbench.run_many([cfg, other], out=str(tmp_path / "stacked"))[0]
    plain = lossbench.run(
        {**TINY, "train": {**TINY["train"], "snapshots": 3, "engine": "plain"}}, out=str(tmp_path)
    )
    assert stacked.summary["engine"] == "stacked" and plain.summary["engine"] == "plain"
    a = np.load(os.path.join(stacked.path, "snapshots.npz"))
    b = np.load(os.path.join(plain.path, "snapshots.npz"))
    assert sorted(a) == sorted(b) and list(a["steps"]) == [0, 3, 6, 9]  # 3 epochs of 3 steps
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6)
    for run, kept in ((stacked, a), (plain, b)):  # the last snapshot: the final weights, bit for bit
        for k, v in torch.load(os.path.join(run.path, "model.pt")).items():
            np.testing.assert_array_equal(kept[k][-1], v.numpy())


@pytest.mark.slow
def test_cli_draws_and_names_runs_without_snapshots(tmp_path, write_config):
    config = write_config({**TINY, "train": {**TINY["train"], "epochs": 1}})
    assert run_cli("run", config, "--out", tmp_path / "r", "--quiet").returncode == 0
    done = run_cli("landscape", tmp_path / "r", "--resolution", "5")
    assert done.returncode == 0, done.stderr
    command = next(line.strip() for line in done.stderr.splitlines() if "train.snapshots=20 --out" in line)
    assert command.endswith(f"config.yaml train.snapshots=20 --out {tmp_path / 'r'}")  # copy-pasteable
    files = done.stdout.split()
    assert any(f.endswith("figures/landscape.png") for f in files) and any(
        f.endswith("landscape.npz") for f in files
    )
    saved = np.load([f for f in files if f.endswith(".npz")][0])
    numbers = lossbench.landscape(os.path.dirname(os.path.dirname(files[0])), resolution=5)  # the API
    assert sorted(saved) == sorted(numbers)
    for key in ("line_loss", "slice_loss", "slice_nll", "directions"):
        np.testing.assert_allclose(saved[key], numbers[key], rtol=1e-6)
    from lossbench.cli import main

    assert main(["report", str(tmp_path / "r"), "--out", str(tmp_path / "page"), "--quiet"]) == 0
    assert "loss landscape (drawn by lossbench landscape" in (tmp_path / "page" / "index.html").read_text()
    bad = run_cli("landscape", tmp_path / "r", "--resolution", "2")
    assert bad.returncode == 2 and "--resolution" in bad.stderr and "Traceback" not in bad.stderr


def test_memory_estimate_refuses_what_would_not_fit(linear_run, monkeypatch):
    monkeypatch.setattr("lossbench.engine.landscape.memory_budget", lambda: 1000)
    with pytest.raises(UserError, match="use a smaller --resolution"):
        lossbench.landscape(linear_run, resolution=41)


def test_report_says_how_to_draw_a_missing_landscape(tmp_path):
    from lossbench.cli import main

    run = lossbench.run({**TINY, "train": {**TINY["train"], "epochs": 1}}, out=str(tmp_path / "r"))
    assert main(["report", run.path, "--out", str(tmp_path / "page"), "--quiet"]) == 0
    page = (tmp_path / "page" / "index.html").read_text()
    assert "Loss landscape: not drawn" in page and f"python -m lossbench landscape {run.path}" in page


@pytest.mark.parametrize("snapshots", [0, 2])
def test_watch_shows_the_landscape_of_a_run_that_keeps_snapshots(tmp_path, write_config, snapshots):
    from lossbench.watch import train_and_draw

    config = write_config({**TINY, "train": {**TINY["train"], "epochs": 1, "snapshots": snapshots}})
    figures, _ = train_and_draw(config, [], str(tmp_path / "r"), None)
    assert ("landscape" in figures) == bool(snapshots)
    assert not snapshots or figures["landscape"].startswith(b"\x89PNG")


def test_snapshots_are_counted_in_the_memory_estimate(monkeypatch):
    from lossbench.config import validate

    keep = build({**TINY, "train": {**TINY["train"], "snapshots": 1000}})
    n_params = (2 * 8 + 8) + (8 * 8 + 8) + (8 * 1 + 1)  # TINY: 2 inputs, two hidden layers of 8, 1 output
    assert validate.memory_parts(keep, None)["the weight snapshots"] == 1001 * n_params * 4  # float32
    assert validate.memory_parts(build(TINY), None)["the weight snapshots"] == 0
    assert "snapshots" not in build(TINY).to_dict()["train"]  # off: run ids as before the key existed
    monkeypatch.setattr(validate, "memory_budget", lambda: 1001 * n_params * 4)
    with pytest.raises(UserError, match="use fewer train.snapshots"):
        build({**TINY, "train": {**TINY["train"], "snapshots": 1000}})


def test_a_run_whose_snapshots_are_lost_is_trained_again(tmp_path, capsys):
    cfg = {**TINY, "train": {**TINY["train"], "epochs": 1, "snapshots": 2}}
    run = lossbench.run(cfg, out=str(tmp_path))
    os.remove(os.path.join(run.path, "snapshots.npz"))
    again = lossbench.run(cfg, out=str(tmp_path))
    assert again.path == run.path and os.path.isfile(os.path.join(run.path, "snapshots.npz"))
    assert "snapshots.npz is missing" in capsys.readouterr().err


def test_no_examples_is_refused_before_anything_is_written(linear_run):
    """`--examples 0` leaves no set to evaluate: one message, exit 2, nothing written (a user's try
    ended in KeyError: 'slice_loss' and a stripped landscape.npz)."""
    figures = os.path.join(linear_run.path, "figures")
    before = sorted(os.listdir(figures)) if os.path.isdir(figures) else []
    with pytest.raises(UserError, match="--examples"):
        lossbench.landscape(linear_run, resolution=3, n_examples=0)
    done = run_cli("landscape", linear_run.path, "--examples", "0", "--resolution", "3")
    assert done.returncode == 2 and "Traceback" not in done.stderr and "--examples" in done.stderr
    assert (sorted(os.listdir(figures)) if os.path.isdir(figures) else []) == before


def test_a_loss_that_is_the_shared_metric_is_drawn_once_on_its_scale():
    """bce is the NLL: the line panel draws one curve, on the shared metric's axis, named for both
    (two scales made one curve look like two diverging ones)."""
    from lossbench.viz.landscape import fig_landscape

    a, grid = np.linspace(-0.5, 1.5, 9), np.linspace(-1, 1, 3)
    line, plane = np.exp(-3 * a), np.outer(grid, grid) ** 2 + 0.1
    d = {"line_a": a, "line_loss": line, "line_nll": line, "slice_x": grid, "slice_y": grid}
    d |= {"slice_loss": plane, "slice_nll": plane, "seed": 0, "bias": "row"}
    fig = fig_landscape([{"label": "loss=bce", "loss": "bce", "data": d}], metric="nll")
    left = fig.axes[0]
    twin = next(ax for ax in fig.axes[1:] if ax.bbox.bounds == left.bbox.bounds)
    assert not [x for x in left.get_lines() if not x.get_label().startswith("_")]  # only a=0, a=1 marks
    assert [x.get_label() for x in twin.get_lines()] == ["bce = NLL (train)"]
    np.testing.assert_array_equal(twin.get_lines()[0].get_ydata(), line)
