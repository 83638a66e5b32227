"""Figures drawn from run folders: the plotted data must be the recorded data.

A handful of tiny real runs are trained once per module (a sweep folder of two losses x two seeds, a
diverged run, a 1-D regression with outliers and no hidden layer, a run without a validation set);
every figure is then checked by reading its artists back against metrics.jsonl / summary.json /
view.npz as `lossbench.runs.load_run` reads them.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, TINY, run_cli
from scipy import stats

from lossbench import config
from lossbench.errors import UserError
from lossbench.runs import runner
from lossbench.runs import store as runs
from lossbench.viz import figures as plots
from lossbench.viz import load as viz_load

pytestmark = pytest.mark.xdist_group("plots")


def _execute(raw: dict, root) -> str:
    cfg, _, _ = config.load(raw=raw)
    return runner.execute(cfg, str(root))[1]


def _tiny(**changes) -> dict:
    raw = copy.deepcopy(TINY)
    raw["train"]["target_loss"] = 0.69
    for dotted, value in changes.items():
        section, _, key = dotted.partition("__")
        if key:
            raw[section][key] = value
        else:
            raw[section] = value
    return raw


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Run folders: results/sweep (bce|hinge x seeds 0,1), results/bad (diverged), results/line
    (1-D regression, outliers, depth 0), results/noval (no validation set)."""
    root = tmp_path_factory.mktemp("results")
    sweep = {}
    for loss in ["bce", "hinge"]:
        for seed in [0, 1]:
            sweep[loss, seed] = _execute(_tiny(name="sweep", seed=seed, loss__name=loss), root)
    diverged = _execute(_tiny(name="bad", optim__lr=1e6, model__activation="relu"), root)
    line = _execute(
        {
            "name": "line",
            "data": {"name": "line", "n_samples": 60, "outlier_fraction": 0.1},
            "model": {"depth": 0},
            "loss": {"name": "mae"},
            "optim": {"name": "sgd", "lr": 0.05},
            "train": {"epochs": 4, "batch_size": 16, "log_every": 3},
        },
        root,
    )
    noval = _execute(_tiny(name="noval", data__val_fraction=0.0), root)
    regression = {
        loss: _execute(
            {
                "name": "reg",
                "data": {"name": "sine", "n_samples": 64},
                "model": {"depth": 1, "width": 8, "activation": "tanh"},
                "loss": {"name": loss},
                "optim": {"name": "sgd", "lr": 0.05},
                "train": {"epochs": 2, "batch_size": 16, "log_every": 2},
            },
            root,
        )
        for loss in ["mae", "huber"]
    }
    return {
        "root": root,
        "sweep": sweep,
        "diverged": diverged,
        "line": line,
        "noval": noval,
        "reg": regression,
    }


def _groups(*paths, by=None):
    return viz_load.group_runs(viz_load.load_runs(list(paths)), by=by)


def _lines(ax, label=None):
    return [ln for ln in ax.get_lines() if label is None or ln.get_label() == label]


# ----- loss curves -----------------------------------------------------------------------------------


def test_single_run_loss_curve_is_the_recorded_loss(lab):
    folder = lab["sweep"]["bce", 0]
    run = runs.load_run(folder)
    fig = plots.fig_loss_curves(_groups(folder))
    train_ax, val_ax = fig.axes[:2]
    (line,) = [ln for ln in train_ax.get_lines() if len(ln.get_xdata()) > 1]
    np.testing.assert_array_equal(line.get_xdata(), run.metrics["step"])
    np.testing.assert_allclose(line.get_ydata(), run.metrics["loss"])
    (val,) = [ln for ln in val_ax.get_lines() if len(ln.get_xdata()) > 1]
    has_val = np.isfinite(run.metrics["val_loss"])
    np.testing.assert_allclose(val.get_ydata(), run.metrics["val_loss"][has_val])
    assert "step" in train_ax.get_xlabel() and "loss" in train_ax.get_ylabel()
    assert "Loss curves" in fig._suptitle.get_text()
    assert not [c for c in train_ax.collections if len(c.get_paths())]  # one seed: no band, and it says so
    notes = fig.legends[0].get_title().get_text() if fig.legends else fig._supxlabel.get_text()
    assert "one seed: differences may be chance" in notes and "sweep: {seeds: N}" in notes


def test_seeds_are_one_group_with_mean_and_band(lab):
    groups = _groups(os.path.dirname(lab["sweep"]["bce", 0]))
    assert sorted(len(g.runs) for g in groups) == [2, 2]
    # only loss.name was set differently: model.output and loss.margin follow it and stay out of the label
    assert sorted(g.label for g in groups) == ["loss=bce (2 seeds)", "loss=hinge (2 seeds)"]
    fig = plots.fig_loss_curves(groups, metric="loss")
    ax = fig.axes[0]
    a, b = (runs.load_run(lab["sweep"]["bce", s]).metrics["loss"] for s in (0, 1))
    (line,) = _lines(ax, "loss=bce (2 seeds)")
    np.testing.assert_allclose(line.get_ydata(), (a + b) / 2)
    from matplotlib.colors import same_color

    # the band is the 95% Student-t interval of the mean of the two seeds, step by step
    lo, hi = stats.t.interval(0.95, 1, loc=(a + b) / 2, scale=stats.sem(np.stack([a, b]), axis=0))
    (band,) = [c for c in ax.collections if same_color(c.get_facecolor()[0][:3], line.get_color())]
    edge = band.get_paths()[0].vertices[:, 1]
    if ax.get_yscale() == "log":  # drawn down to the axis' foot where the interval reaches below it
        lo = np.maximum(lo, ax.get_ylim()[0])
    assert np.isclose(edge.min(), lo.min()) and np.isclose(edge.max(), hi.max())
    assert "95% Student-t interval" in fig._suptitle.get_text() and "2 seeds" in fig._suptitle.get_text()
    legend = fig.legends[0] if fig.legends else ax.get_legend()
    assert {t.get_text() for t in legend.get_texts()} >= {g.label for g in groups}


def test_mae_against_huber_is_drawn_on_the_recorded_mse_of_both(lab):
    groups = _groups(os.path.dirname(lab["reg"]["mae"]))
    fig = plots.fig_loss_curves(groups)
    train_ax, val_ax = fig.axes[:2]
    for loss, folder in lab["reg"].items():
        run = runs.load_run(folder)
        (line,) = _lines(train_ax, f"loss={loss}")
        np.testing.assert_allclose(line.get_ydata(), run.metrics["mse"])  # the engine's own numbers
        (val,) = _lines(val_ax, f"loss={loss}")
        np.testing.assert_allclose(
            val.get_ydata(), run.metrics["val_mse"][np.isfinite(run.metrics["val_mse"])]
        )
    assert "MSE" in fig._suptitle.get_text()
    notes = fig.legends[0].get_title().get_text() if fig.legends else fig._supxlabel.get_text()
    assert notes.startswith("one seed:") and "\n" not in notes  # no other note: both recorded it


def test_epoch_axis_uses_recorded_epochs(lab):
    folder = lab["sweep"]["bce", 0]
    run = runs.load_run(folder)
    fig = plots.fig_loss_curves(_groups(folder), x="epoch")
    line = max(fig.axes[0].get_lines(), key=lambda ln: len(ln.get_xdata()))
    np.testing.assert_allclose(line.get_xdata(), run.metrics["epoch"])
    assert fig.axes[0].get_xlabel() == "epoch"


def test_diverged_run_is_drawn_with_a_marker_at_its_divergence_step(lab):
    run = runs.load_run(lab["diverged"])
    assert run.summary["status"] == "diverged"
    fig = plots.fig_loss_curves(_groups(lab["diverged"]))
    marks = [ln for ln in fig.axes[0].get_lines() if ln.get_marker() == "X" and len(ln.get_xdata())]
    assert [float(m.get_xdata()[0]) for m in marks] == [run.summary["diverged_step"]]
    assert np.isfinite(marks[0].get_ydata()[0])
    for fn in plots.FIGURES.values():
        fn(_groups(lab["diverged"]))  # every figure copes with a diverged run (some return None)


def test_log_scale_only_when_the_range_calls_for_it():
    assert plots._wants_log([1000, 1]) and not plots._wants_log([0.7, 0.3])
    assert not plots._wants_log([0.0, 5.0, 500.0])  # a zero loss (hinge) cannot go on a log axis


# ----- convergence -----------------------------------------------------------------------------------


def test_convergence_bars_are_the_summary_steps_to_target(lab):
    groups = _groups(os.path.dirname(lab["sweep"]["bce", 0]), lab["diverged"])
    fig = plots.fig_convergence(groups)
    steps_ax = fig.axes[0]
    widths = [p.get_width() for p in steps_ax.patches]
    expected, flagged = [], 0
    for g in groups:
        values = _reached(g)
        if values:
            expected.append(np.mean(values))
        flagged += len(g.runs) - len(values)
    np.testing.assert_allclose(widths, expected)
    # a line over each bar of two reaching seeds: their 95% Student-t interval; the label: k/n reached
    bars = [c for c in steps_ax.containers if getattr(c, "has_xerr", False)]
    assert len(bars) == len([g for g in groups if len(_reached(g)) > 1])
    for bar, g in zip(bars, [g for g in groups if len(_reached(g)) > 1]):
        values = _reached(g)
        lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
        ((start, _), (end, _)) = bar.lines[2][0].get_segments()[0]
        assert (start, end) == pytest.approx((max(lo, 0), hi))  # cut at 0 steps
    labels = [t.get_text().replace("\n", " ") for t in steps_ax.get_yticklabels()]
    for g, label in zip(groups, labels):
        if len(g.runs) > 1:
            assert f"{len(_reached(g))}/{len(g.runs)} reached it" in label
    markers = [ln for ln in steps_ax.get_lines() if ln.get_marker() in ("X", "<") and len(ln.get_xdata())]
    assert len(markers) == flagged >= 1  # the diverged run at least
    assert "target" in steps_ax.get_xlabel()


def _reached(g) -> list:
    """The steps to the loss target of a group's seeds that reached it, from their summaries."""
    return [s for r in g.runs if (s := r.summary["targets"][0]["steps_to"]) is not None]


def test_convergence_is_skipped_without_a_target(lab):
    assert plots.fig_convergence(_groups(lab["line"])) is None


# ----- vanishing gradients ---------------------------------------------------------------------------


def test_heatmap_is_layer_by_step_on_a_log_scale_input_layer_at_the_bottom(lab):
    from matplotlib.colors import LogNorm

    folder = lab["sweep"]["bce", 0]
    run = runs.load_run(folder)
    for key in ["grad_w", "grad_out"]:
        fig = plots.fig_grad_heatmap(_groups(folder), key)
        ax = fig.axes[0]
        (mesh,) = ax.collections
        assert isinstance(mesh.norm, LogNorm)
        np.testing.assert_allclose(
            np.asarray(mesh.get_array()).reshape(run.metrics[key].T.shape), run.metrics[key].T
        )
        # the first row of the mesh (the input layer) has the lowest y
        y = mesh.get_coordinates()[:, 0, 1]
        assert y[0] < y[1] and ax.get_ylim()[0] < ax.get_ylim()[1]


def test_gradient_profile_start_and_end_are_the_first_and_last_rows(lab):
    folder = lab["sweep"]["hinge", 1]
    run = runs.load_run(folder)
    fig = plots.fig_grad_profile(_groups(folder))
    axes = np.array(fig.axes[:6]).reshape(2, 3)
    for row, key in zip(axes, ["grad_w", "grad_out"]):
        start, end = row[0].get_lines()[0], row[2].get_lines()[0]
        np.testing.assert_allclose(start.get_ydata(), run.metrics[key][0])
        np.testing.assert_allclose(end.get_ydata(), run.metrics[key][-1])
        np.testing.assert_array_equal(start.get_xdata(), np.arange(1, run.metrics[key].shape[1] + 1))
        assert row[0].get_yscale() == "log"
    assert "grad_w" in axes[0, 0].get_title() and "grad_out" in axes[1, 0].get_title()


def test_activation_health_lines_and_guide(lab):
    from lossbench.components.activations import SATURATION, peak_derivative

    folder = lab["sweep"]["bce", 1]
    run = runs.load_run(folder)
    fig = plots.fig_activation_health(_groups(folder))
    sat_ax, deriv_ax, dead_ax, ratio_ax = fig.axes[:4]
    n_layers = run.metrics["update_ratio"].shape[1]
    assert f"{SATURATION:.0%}" in sat_ax.get_ylabel()  # the engine's threshold, not a typed-in one
    peaks = [peak_derivative("tanh", {})] * (n_layers - 1) + [0.25]  # tanh hidden, sigmoid output
    expected = {
        sat_ax: run.metrics["act_saturated"],
        deriv_ax: run.metrics["act_deriv"] / np.array(peaks),  # relative to the peak: continuous
        dead_ax: run.metrics["act_dead"][:, :-1],  # hidden layers only: an output is never "dead"
        ratio_ax: run.metrics["update_ratio"],
    }
    for ax, values in expected.items():
        lines = [ln for ln in ax.get_lines() if ln.get_label().startswith(("layer", "output"))]
        assert len(lines) == values.shape[1]
        for i, ln in enumerate(lines):
            np.testing.assert_allclose(ln.get_ydata(), values[:, i])
        assert lines[-1].get_label() == (
            "output layer (sigmoid)" if ax is not dead_ax else f"layer {n_layers - 1}"
        )
    guide = _lines(ratio_ax, "1e-3 guide")
    assert guide and np.allclose(guide[0].get_ydata(), 1e-3) and ratio_ax.get_yscale() == "log"
    legend = {t.get_text() for t in fig.legends[0].get_texts()}
    assert legend == {f"layer {i}" for i in range(1, n_layers)} | {"output layer (sigmoid)", "1e-3 guide"}


def test_runs_record_what_the_figures_would_otherwise_ask_torch_for(lab):
    """Reference: the registries and the engine's own peak function, asked here where torch is loaded."""
    from lossbench.components.activations import SATURATION, peak_derivative
    from lossbench.config.overrides import registry_at

    run = runs.load_run(lab["sweep"]["hinge", 0])
    assert run.summary["activation"] == {
        "peak_derivative": peak_derivative("tanh", {}),
        "saturation": SATURATION,
    }
    recorded = run.summary["defaults"]
    assert recorded["loss"] == registry_at(("loss",))["hinge"].defaults() and "margin" in recorded["loss"]
    assert recorded["optim"] == registry_at(("optim",))["sgd"].defaults()
    assert set(recorded) == set(viz_load.COMPONENTS)


@pytest.mark.slow
def test_drawing_a_runs_figures_never_loads_torch(lab, tmp_path):
    """`plot` draws from the files alone: labels leave defaults out and the activation health is
    scaled by the recorded peak, with torch never imported (checked in a fresh process)."""
    folder = os.path.dirname(lab["sweep"]["bce", 0])
    code = (
        "import sys\n"
        "from lossbench.viz import figures, load\n"
        f"groups = load.group_runs(load.load_runs([{folder!r}]))\n"
        "print([g.label for g in groups])\n"
        "fig = figures.fig_activation_health(groups)\n"
        "print(list(fig.axes[2].get_lines()[0].get_ydata()[:3]))  # row 2, column 1: bce\n"
        "drawn = [name for name, fig in figures.figures(groups) if figures.render(fig)]\n"
        "from lossbench.cli import main\n"
        f"assert main(['plot', {folder!r}, '--out', {str(tmp_path)!r}, '--quiet']) == 0\n"
        "print('torch' in sys.modules, len(drawn))\n"
    )
    env = {**os.environ, "PYTHONPATH": ROOT}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    labels, health, last = lines[0], lines[1], lines[-1]
    assert labels == "['loss=bce (2 seeds)', 'loss=hinge (2 seeds)']"  # hinge(margin=1): default
    seeds = [runs.load_run(lab["sweep"]["bce", seed]) for seed in (0, 1)]
    mean = viz_load.group_runs(seeds)[0].mean("act_deriv")[1]
    np.testing.assert_allclose(eval(health), mean[:3, 0] / seeds[0].summary["activation"]["peak_derivative"])
    assert last == "False 7" and len(os.listdir(tmp_path)) == 7


# ----- task pictures ---------------------------------------------------------------------------------


def test_fitted_curve_with_outliers_marked(lab):
    folder = lab["line"]
    view = np.load(os.path.join(folder, "view.npz"))
    fig = plots.fig_task(_groups(folder))
    ax = fig.axes[0]
    (model,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("model")]
    np.testing.assert_allclose(model.get_xdata(), view["grid_x"])
    np.testing.assert_allclose(model.get_ydata(), view["pred"][:, 0])
    # a depth-0 line: its equation in the panel's title, the line through its own predictions
    import torch

    weights = torch.load(os.path.join(folder, "model.pt"), weights_only=True)
    slope, intercept = weights["layers.0.weight"].item(), weights["layers.0.bias"].item()
    sign = "-" if intercept < 0 else "+"
    assert ax.get_title().split("\n")[-1] == f"y = {slope:.3g} x {sign} {abs(intercept):.3g}"
    (outliers,) = _lines(ax, "outliers")
    marks = view["marks"].astype(bool)
    assert marks.sum() == 6
    np.testing.assert_allclose(outliers.get_ydata(), view["y"][marks, 0])
    (data,) = _lines(ax, "data")
    assert len(data.get_xdata()) == (~marks).sum()


def test_decision_boundary_with_the_data(lab):
    folder = lab["sweep"]["bce", 0]
    view = np.load(os.path.join(folder, "view.npz"))
    fig = plots.fig_task(_groups(folder))
    ax = fig.axes[0]
    scatter = [c for c in ax.collections if c.get_offsets().shape == view["x"].shape]
    np.testing.assert_allclose(scatter[0].get_offsets(), view["x"])
    np.testing.assert_array_equal(scatter[0].get_array(), view["y"][:, 0].astype(int))
    assert "decision boundary" in [t.get_text() for t in fig.legends[0].get_texts()]  # below the panels


# ----- missing optional metrics ----------------------------------------------------------------------


def test_missing_optional_metrics_do_not_crash(lab, tmp_path):
    # no validation set: one loss panel; no hidden layer (depth 0): one-layer heat map and profile
    fig = plots.fig_loss_curves(_groups(lab["noval"]))
    assert len([ax for ax in fig.axes if ax.get_ylabel()]) == 1
    paths = plots.save_figures(_groups(lab["line"]), str(tmp_path / "line"))
    assert {os.path.basename(p) for p in paths} == {"loss_curves.png", "linear.png", "task.png"}
    # a metrics file without any per-layer column (an older or foreign run): only the loss curves
    bare = tmp_path / "bare"
    shutil.copytree(lab["noval"], bare)
    rows = [json.loads(x) for x in (bare / "metrics.jsonl").read_text().splitlines()]
    (bare / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": r["step"], "loss": r["loss"]}) + "\n" for r in rows)
    )
    (bare / "view.npz").unlink()
    names = [name for name, fig in plots.figures(_groups(str(bare)))]
    assert names == ["loss_curves", "convergence"]


# ----- commands --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_plot_command_writes_figures_beside_the_results(lab, tmp_path):
    sweep = tmp_path / "sweep"
    shutil.copytree(os.path.dirname(lab["sweep"]["bce", 0]), sweep)
    r = run_cli("plot", sweep, "--format", "svg")
    assert r.returncode == 0, r.stderr
    printed = r.stdout.split()
    assert printed and all(p.startswith(str(sweep / "figures")) and p.endswith(".svg") for p in printed)
    assert all(open(p).read(200).lstrip().startswith("<?xml") for p in printed)
    # the folder has everything but a sweep.yaml (no sweep summary) and a depth-0 model
    assert {os.path.basename(p) for p in printed} == {f"{n}.svg" for n in plots.FIGURES} - {
        "sweep_summary.svg",
        "linear.svg",
    }


def test_compare_overlays_folders_labelled_by_key(lab):
    groups = _groups(lab["line"], lab["noval"], by=["data.name"])
    assert [g.label for g in groups] == ["data.name=line", "data.name=moons"]
    fig = plots.fig_loss_curves(groups)
    assert plots.render(fig, "pdf")[:4] == b"%PDF"
    assert b"<svg" in plots.render(fig, "svg")[:1000]


def test_bad_input_is_a_config_error_naming_the_path_or_key(lab, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        viz_load.load_runs([str(tmp_path / "nope")])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="holds no run folder") as e:
        viz_load.load_runs([str(empty)])
    assert str(empty) in str(e.value)
    broken = tmp_path / "broken"
    shutil.copytree(lab["noval"], broken)
    (broken / "summary.json").write_text('{"status": "fin')
    with pytest.raises(UserError, match="summary.json"):
        viz_load.load_runs([str(broken)])
    (broken / "summary.json").unlink()
    (broken / "metrics.jsonl").unlink()
    with pytest.raises(UserError, match="metrics.jsonl missing"):
        viz_load.load_runs([str(tmp_path)])  # found inside a results folder, still named
    (broken / "metrics.jsonl").write_text("")
    with pytest.raises(UserError, match="no metrics rows"):
        viz_load.load_runs([str(broken)])
    with pytest.raises(UserError, match="'loss.nme'.*did you mean"):
        _groups(lab["line"], by=["loss.nme"])
    shutil.copytree(lab["line"], tmp_path / "cut")
    view = tmp_path / "cut" / "view.npz"
    view.write_bytes(view.read_bytes()[:100])
    with pytest.raises(UserError, match="view.npz"):
        plots.fig_task(_groups(str(tmp_path / "cut")))


def test_bad_input_exits_2_without_traceback(lab, tmp_path):
    r = run_cli("plot", tmp_path / "nope")
    assert r.returncode == 2 and "nope" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("compare", lab["line"], lab["noval"], "--by", "model.widht", "--out", tmp_path / "c")
    assert r.returncode == 2 and "model.widht" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "c").exists()  # nothing half-written


def test_run_folders_are_found_below_a_reproduce_style_output(tmp_path, tiny):
    """reproduce writes <out>/<slug>/<name>/<run_id>: plot and report must find those runs."""
    from lossbench.config.validate import build
    from lossbench.runs.runner import execute
    from lossbench.viz.load import find_run_folders

    _, folder, _ = execute(build(tiny), str(tmp_path / "reproduce" / "some_slug"))
    assert find_run_folders(str(tmp_path)) == [folder]
    assert find_run_folders(str(tmp_path / "reproduce")) == [folder]
