"""Comparisons that answer their question, on run folders written by hand (no training: fast).

Each folder holds exactly the files a run writes (config.yaml, metrics.jsonl, summary.json, and
sweep.yaml / runs.csv for a sweep), with made-up but known numbers; every figure is read back from
its artists and compared with those numbers.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import yaml
from conftest import run_cli

from lossbench.cli import main
from lossbench.config.schema import RUN_FORMAT
from lossbench.runs.store import RunFolderError, load_run
from lossbench.viz import figures as plots
from lossbench.viz import load as viz_load
from lossbench.viz.summary import fig_sweep_summary

LAYER_KEYS = ["grad_w", "grad_b", "grad_out", "act_mean", "act_std", "act_saturated", "act_dead", "act_deriv",
              "weight_norm", "update_ratio"]  # fmt: skip


def config(**changes) -> dict:
    """A resolved-looking regression config; `changes` maps dotted keys to values."""
    cfg = {
        "name": "cmp",
        "seed": 0,
        "data": {"name": "sine", "val_fraction": 0.2, "n_samples": 200, "noise": 0.1, "periods": 1.0},
        "model": {
            "depth": 2,
            "width": 8,
            "activation": "tanh",
            "init": "default",
            "bias_init": "default",
            "output": "identity",
        },  # fmt: skip
        "loss": {"name": "mse", "half": False},
        "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.0, "schedule": "constant"},
        "train": {"epochs": 2, "batch_size": 32, "log_every": 1, "target_loss": None},
    }
    for dotted, value in changes.items():
        node = cfg
        *path, last = dotted.split(".")
        for part in path:
            node = node[part]
        node[last] = value
    return cfg


def write_run(folder, cfg: dict, columns: dict, summary: dict | None, n_layers: int = 3) -> str:
    """A run folder with metrics rows built from `columns` (name -> list of values per row)."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.yaml"), "w") as f:
        yaml.safe_dump(cfg, f)
    n = len(columns["loss"])
    with open(os.path.join(folder, "metrics.jsonl"), "w") as f:
        for i in range(n):
            row = {"step": i * 10, "epoch": i / 2, "time": i * 0.01, **{k: v[i] for k, v in columns.items()}}
            for k in LAYER_KEYS:
                row.setdefault(k, [0.5 / (j + 1) for j in range(n_layers)])
            f.write(json.dumps(row) + "\n")
    if summary is not None:
        with open(os.path.join(folder, "summary.json"), "w") as f:
            json.dump({"format": RUN_FORMAT, "status": "finished", "steps": n * 10, "steps_done": n * 10, "epochs": 2.0,
                       "diverged_step": None, "wall_time": 1.0, **summary}, f)  # fmt: skip
    return str(folder)


CURVE = np.array([4.0, 2.0, 1.0, 0.5])


@pytest.fixture
def mae_huber(tmp_path):
    """MAE and Huber on one regression set: losses 10x apart, MSE recorded beside each."""
    folders = {}
    for name, scale in [("mae", 1.0), ("huber", 0.1)]:
        cfg = config(**{"loss": {"name": name, **({"delta": 1.0} if name == "huber" else {})}})
        cols = {"loss": list(CURVE * scale), "val_loss": list(CURVE * scale * 1.1),
                "mse": list(CURVE / (2 if name == "mae" else 3)), "val_mse": list(CURVE / (2 if name == "mae" else 3) * 1.2)}  # fmt: skip
        summary = {"task": "regression", "final_val_mse": cols["val_mse"][-1],
                   "targets": [{"metric": "val_mse", "value": 1.0, "steps_to": 20 if name == "mae" else 10,
                                "seconds_to": 0.02}]}  # fmt: skip
        folders[name] = write_run(tmp_path / name / "run0", cfg, cols, summary)
    return folders


def groups_of(*paths, by=None):
    return viz_load.group_runs(viz_load.load_runs([str(p) for p in paths]), by=by)


def curve(ax, label):
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return line


# ----- a common metric -------------------------------------------------------------------------------


def test_different_losses_are_compared_on_the_shared_metric(mae_huber):
    groups = groups_of(mae_huber["mae"], mae_huber["huber"])
    assert [g.label for g in groups] == ["loss=huber", "loss=mae"]  # sorted: huber before mae
    fig = plots.fig_loss_curves(groups)
    train, val = fig.axes[:2]
    for g, divisor in zip(groups, [3, 2]):
        np.testing.assert_allclose(curve(train, g.label).get_ydata(), CURVE / divisor)
        np.testing.assert_allclose(curve(val, g.label).get_ydata(), CURVE / divisor * 1.2)
    assert "MSE" in fig._suptitle.get_text() and "every loss shares" in fig._suptitle.get_text()
    assert "MSE" in val.get_ylabel()


def test_raw_losses_of_different_losses_say_the_units_differ(mae_huber):
    groups = groups_of(mae_huber["mae"], mae_huber["huber"])
    fig = plots.fig_loss_curves(groups, metric="loss")
    np.testing.assert_allclose(curve(fig.axes[0], "loss=mae").get_ydata(), CURVE)
    notes = fig.legends[0].get_title().get_text() if fig.legends else fig._supxlabel.get_text()
    assert "units differ" in notes


def test_metric_option_picks_another_and_refuses_unknown_names(mae_huber, tmp_path):
    groups = groups_of(mae_huber["mae"], mae_huber["huber"])
    fig = plots.fig_loss_curves(groups, metric="val_loss")
    np.testing.assert_allclose(curve(fig.axes[0], "loss=huber").get_ydata(), CURVE * 0.1)
    out = tmp_path / "out"
    r = run_cli("compare", mae_huber["mae"], mae_huber["huber"], "--metric", "val_mes", "--out", out)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "'val_mse'" in r.stderr and "did you mean" in r.stderr and "valid:" in r.stderr
    assert not out.exists()  # nothing half-written


def test_runs_without_the_metric_are_named_not_crashed_on(mae_huber, tmp_path):
    old = write_run(tmp_path / "old" / "run1", config(**{"loss": {"name": "mae"}}),
                    {"loss": list(CURVE), "val_loss": list(CURVE)}, {"task": "regression"})  # fmt: skip
    groups = groups_of(mae_huber["huber"], old)
    fig = plots.fig_loss_curves(groups)
    text = fig.legends[0].get_title().get_text() if fig.legends else fig._supxlabel.get_text()
    assert "1 run (run1) recorded no mse" in text
    assert [ln.get_label() for ln in fig.axes[0].get_lines()] == ["loss=huber"]  # the run is left out
    for name, fig in plots.figures(groups):  # every figure copes
        assert fig is not None, name


# ----- convergence -----------------------------------------------------------------------------------


def test_convergence_on_the_shared_target_and_no_target_is_not_a_failure(mae_huber, tmp_path):
    none = write_run(tmp_path / "none" / "run2", config(**{"loss": {"name": "huber", "delta": 0.5}}),
                     {"loss": list(CURVE), "val_loss": list(CURVE), "mse": list(CURVE), "val_mse": list(CURVE)},
                     {"task": "regression", "targets": []})  # fmt: skip
    groups = groups_of(mae_huber["mae"], mae_huber["huber"], none)
    fig = plots.fig_convergence(groups)
    steps_ax = fig.axes[0]
    np.testing.assert_allclose([p.get_width() for p in steps_ax.patches], [10, 20])  # huber, mae
    failed = [ln for ln in steps_ax.get_lines() if ln.get_marker() in ("<", "X") and len(ln.get_xdata())]
    assert failed == []
    assert "no target set" in [t.get_text() for t in steps_ax.texts]
    assert "val_mse <= 1" in fig._suptitle.get_text()


# ----- labels and order ------------------------------------------------------------------------------


def test_default_and_xavier_init_are_named_never_dashes(tmp_path):
    a = write_run(tmp_path / "a" / "r", config(), {"loss": list(CURVE)}, {"task": "regression"})
    b = write_run(tmp_path / "b" / "r", config(**{"model.init": {"name": "xavier_uniform", "gain": 1.0}}),
                  {"loss": list(CURVE)}, {"task": "regression"})  # fmt: skip
    c = write_run(tmp_path / "c" / "r", config(**{"model.init": {"name": "normal", "mean": 0.0, "std": 2.0},
                                                  "model.activation": "relu"}),
                  {"loss": list(CURVE)}, {"task": "regression"})  # fmt: skip
    labels = [g.label for g in groups_of(a, b)]
    assert labels == ["model.init=default", "model.init=xavier_uniform"]
    labels = [g.label for g in groups_of(a, c)]  # both changed keys named, the init with its setting
    assert labels == [
        "model.activation=relu, model.init=normal(std=2)",
        "model.activation=tanh, model.init=default",
    ]
    assert [g.label for g in groups_of(a, b, by=["model.init.name"])] == [
        "model.init.name=default",
        "model.init.name=xavier_uniform",
    ]
    fig = plots.fig_loss_curves(groups_of(a, b))
    legend = {t.get_text() for t in fig.legends[0].get_texts()}
    assert legend == {"model.init=default", "model.init=xavier_uniform"}


@pytest.fixture
def sweep(tmp_path):
    """A 3 x 3 sweep (activation x depth, 2 seeds) whose run ids sort differently from the grid."""
    folder = tmp_path / "sweep"
    acts, depths, rows = ["sigmoid", "tanh", "relu"], [2, 5, 10], []
    for i, act in enumerate(acts):
        for j, depth in enumerate(depths):
            for seed in [0, 1]:
                run_id = f"{(7 * (3 * i + j) + seed) % 19:02d}{act}"  # not grid order when sorted
                ratio = (0.25 if act == "sigmoid" else 1.0) ** depth * (1 + 0.1 * seed)
                cfg = config(**{"seed": seed, "model.activation": act, "model.depth": depth, "name": "sweep"})
                write_run(folder / run_id, cfg, {"loss": list(CURVE), "val_loss": list(CURVE)},
                          {"task": "regression", "final_val_loss": 0.1 * depth + seed * 0.01,
                           "grad_ratio_first_last": ratio}, n_layers=depth + 1)  # fmt: skip
                rows.append([run_id, act, depth, seed])
    (folder / "sweep.yaml").write_text(yaml.safe_dump({"name": "sweep", "swept": ["model.activation", "model.depth", "seed"],
                                                      "config": {"sweep": {"model.activation": acts, "model.depth": depths, "seeds": 2}}}))  # fmt: skip
    (folder / "runs.csv").write_text(
        "run_id,model.activation,model.depth,seed\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    )
    return folder


def test_groups_follow_the_grid_and_keep_their_colours(sweep):
    groups = groups_of(sweep)
    assert [(g.values["model.activation"], g.values["model.depth"]) for g in groups] == [
        (a, d) for a in ["sigmoid", "tanh", "relu"] for d in ["2", "5", "10"]
    ]
    fig = plots.fig_loss_curves(groups)
    lines = [ln for ln in fig.axes[0].get_lines() if ln.get_label() in {g.label for g in groups}]
    assert [ln.get_label() for ln in lines] == [g.label for g in groups]
    assert [ln.get_color() for ln in lines] == [g.color for g in groups]
    styles = [(c, s) for c in viz_load.PALETTE[:3] for s in viz_load.LINESTYLES[:3]]
    assert [(g.color, g.linestyle) for g in groups] == styles  # a hue per activation, a style per depth
    heat = plots.fig_grad_heatmap(groups, "grad_out")
    assert [ax.get_title().replace("\n", " ") for ax in heat.axes[:9]] == [g.label for g in groups]


def test_sweep_summary_points_are_the_runs_summaries(sweep):
    groups = groups_of(sweep)
    fig = fig_sweep_summary(groups)
    axes = np.array(fig.axes).reshape(2, 2)  # rows: final val loss, grad ratio; columns: activation, depth
    ratio_by_depth = axes[1, 1]
    assert [t.get_text() for t in ratio_by_depth.get_xticklabels()] == ["2", "5", "10"]  # grid order
    assert ratio_by_depth.get_yscale() == "log"  # the sigmoid ratio spans decades
    for container in ratio_by_depth.containers:
        act = container.get_label().split("=")[1]
        line = container.lines[0]
        for x, y in zip(line.get_xdata(), line.get_ydata()):
            depth = [2, 5, 10][round(x)]  # (lines are dodged sideways a little)
            seeds = [(0.25 if act == "sigmoid" else 1.0) ** depth * (1 + 0.1 * s) for s in (0, 1)]
            assert y == pytest.approx(np.mean(seeds))
    assert [c.get_label() for c in ratio_by_depth.containers] == [
        f"model.activation={a}" for a in ["sigmoid", "tanh", "relu"]
    ]
    assert "model.depth" in axes[1, 1].get_xlabel()


STEPS_TO = {"sigmoid": [10, 20, 40], "relu": [30, None, 50]}  # relu seed 1 never reaches the target
FINAL_ACC = {"sigmoid": [0.61, 0.55, 0.7], "relu": [0.9, 0.97, 0.95]}


@pytest.fixture
def seeded(tmp_path):
    """A sweep of two activations x three seeds with known final accuracies and steps to a target."""
    folder = tmp_path / "seeded"
    for act in STEPS_TO:
        for seed, (steps, acc) in enumerate(zip(STEPS_TO[act], FINAL_ACC[act])):
            cfg = config(**{"seed": seed, "model.activation": act, "name": "seeded"})
            target = {
                "metric": "val_acc",
                "value": 0.9,
                "steps_to": steps,
                "seconds_to": steps and steps / 1e3,
            }
            write_run(folder / f"{act}{seed}", cfg, {"loss": list(CURVE), "acc": [0.5, 0.6, 0.7, acc]},
                      {"task": "binary", "final_val_acc": acc, "targets": [target]})  # fmt: skip
    (folder / "sweep.yaml").write_text(yaml.safe_dump({"swept": ["model.activation", "seed"]}))
    return folder


def t_interval(values, top=np.inf):
    """scipy's 95% t-interval of the mean, as drawn: cut at 0 and at `top` (1 for accuracy)."""
    from scipy import stats

    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    return max(lo, 0.0), min(hi, top)


def test_figures_draw_scipys_t_interval_of_the_recorded_values(seeded):
    groups = groups_of(seeded)
    acts = [g.values["model.activation"] for g in groups]  # (no runs.csv: sorted by name)
    fig = fig_sweep_summary(groups)
    acc_ax, steps_ax = fig.axes  # one swept key: final val acc, steps to the target
    assert "95% Student-t interval" in fig._suptitle.get_text() and "3 seeds" in fig._suptitle.get_text()
    for ax, values, top in [(acc_ax, FINAL_ACC, 1.0), (steps_ax, STEPS_TO, np.inf)]:
        (bars,) = ax.containers
        segments = bars.lines[2][0].get_segments()
        for (x, lo), (_, hi) in segments:
            seeds = [v for v in values[acts[round(x)]] if v is not None]
            assert (lo, hi) == pytest.approx(t_interval(seeds, top))
    relu = acc_ax.containers[0].lines[2][0].get_segments()[acts.index("relu")]
    assert relu[1][1] == 1.0  # its interval reaches above 1: cut there
    assert sorted(t.get_text() for t in steps_ax.texts) == ["2/3", "3/3"]  # seeds that reached it
    fig = plots.fig_convergence(groups)
    bars = [c for c in fig.axes[0].containers if getattr(c, "has_xerr", False)]
    assert len(bars) == 2
    for bar, act in zip(bars, acts):
        ((start, _), (end, _)) = bar.lines[2][0].get_segments()[0]
        assert (start, end) == pytest.approx(t_interval([v for v in STEPS_TO[act] if v is not None]))
    labels = [t.get_text().replace("\n", " ") for t in fig.axes[0].get_yticklabels()]
    assert [label.split(": ")[-1] for label in labels] == [
        f"{len(STEPS_TO[a]) - (None in STEPS_TO[a])}/3 reached it" for a in acts
    ]


def test_one_seed_accuracies_close_together_are_drawn_close_and_called_maybe_chance(tmp_path):
    folder = tmp_path / "losses"
    for name, acc in [("mse", 0.96), ("mae", 0.98), ("huber", 0.97)]:
        write_run(folder / name, config(**{"loss": {"name": name}}), {"loss": list(CURVE)},
                  {"task": "binary", "final_val_acc": acc})  # fmt: skip
    (folder / "sweep.yaml").write_text(yaml.safe_dump({"swept": ["loss.name"]}))
    fig = fig_sweep_summary(groups_of(folder))
    low, high = fig.axes[0].get_ylim()
    assert high - low >= 0.1 - 1e-12 and low <= 0.96 and high >= 0.98  # 1 example in 50, drawn small
    assert "one seed: differences may be chance" in fig._supxlabel.get_text()


def test_two_sweeps_that_differ_in_another_key_are_never_pooled_as_seeds(tmp_path):
    """compare of a 40-epoch and a 3-epoch sweep over loss.name: one point per (loss, epochs), not a
    mean of the two drawn as if they were seeds (a learner saw 0.90 +- 0.9 'over seeds')."""
    folders = []
    for epochs, accs in [(40, {"mse": 0.96, "mae": 0.98}), (3, {"mse": 0.84, "mae": 0.85})]:
        folder = tmp_path / f"losses_{epochs}"
        for name, acc in accs.items():
            cfg = config(**{"loss": {"name": name}, "train": {"epochs": epochs, "batch_size": 8}})
            write_run(folder / name, cfg, {"loss": list(CURVE)}, {"task": "binary", "final_val_acc": acc})
        (folder / "sweep.yaml").write_text(yaml.safe_dump({"swept": ["loss.name"]}))
        folders.append(folder)
    fig = fig_sweep_summary(groups_of(*folders))
    bars = [c for c in fig.axes[0].containers if hasattr(c, "lines")]
    points = sorted(round(float(y), 2) for bar in bars for y in bar.lines[0].get_ydata())
    assert points == [0.84, 0.85, 0.96, 0.98]  # four points, none pooled
    assert sorted(bar.get_label() for bar in bars) == ["train.epochs=3", "train.epochs=40"]


def test_per_config_figures_are_paged_not_dropped(sweep):
    groups = groups_of(sweep)
    jobs = [(name, page) for name, _, page, _ in plots.figure_jobs(groups)]
    health = [(name, page) for name, page in jobs if name.startswith("activation_health")]
    assert [name for name, _ in health] == ["activation_health", "activation_health_2"]
    assert [g for _, page in health for g in page] == groups  # every config, in order


# ----- layers ----------------------------------------------------------------------------------------


def test_heat_map_labels_the_output_row_and_colours_exact_zeros(tmp_path):
    cfg = config(**{"model.activation": "relu"})
    zero = [[0.0, 0.0, 0.3]] * 4  # a dead ReLU net: nothing reaches the first two layers
    folder = write_run(
        tmp_path / "dead" / "r", cfg, {"loss": list(CURVE), "grad_out": zero}, {"task": "regression"}
    )
    fig = plots.fig_grad_heatmap(groups_of(folder), "grad_out")
    ax = fig.axes[0]
    assert ax.get_yticklabels()[-1].get_text() == "out 3"
    colour_mesh, zero_mesh = ax.collections
    assert np.ma.count(colour_mesh.get_array()) == 4  # only the positive cells on the log scale
    assert np.ma.count(zero_mesh.get_array()) == 8  # the zeros, drawn in their own colour
    assert "exactly 0" in fig.legends[0].get_texts()[0].get_text()


def test_depth0_runs_get_output_derivative_weights_and_final_parameters(tmp_path):
    data = {"name": "single", "val_fraction": 0.0, "x": 1.0, "y": 0.0}
    cfg = config(**{"model.depth": 0, "model.output": "sigmoid", "data": data})
    out = [0.98, 0.9, 0.5, 0.2]
    deriv = [a * (1 - a) for a in out]  # sigma'(z) of the neuron's one example
    folder = write_run(tmp_path / "neuron" / "r", cfg,
                       {"loss": list(CURVE), "act_mean": [[v] for v in out], "act_deriv": [[v] for v in deriv]},
                       {"task": "regression", "linear": {"weight": [[0.5]], "bias": [-1.25]}}, n_layers=1)  # fmt: skip
    groups = groups_of(folder)
    names = [name for name, _ in plots.figures(groups)]
    assert "linear" in names and not {"grad_heatmap_w", "grad_profile", "activation_health"} & set(names)
    fig = dict(plots.figures(groups))["linear"]
    panels = {ax.get_title(): ax for ax in fig.axes}
    (line,) = panels["Output over training"].get_lines()
    np.testing.assert_allclose(line.get_ydata(), out)
    assert line.get_label().endswith("final w = 0.5, b = -1.25")
    (relative,) = panels["Output derivative relative to its peak"].get_lines()  # Nielsen's start: 0.078
    np.testing.assert_allclose(relative.get_ydata(), np.array(deriv) / 0.25)
    (loss,) = panels["Loss over training (▼: exactly 0 from here)"].get_lines()
    np.testing.assert_allclose(loss.get_ydata(), CURVE)
    (moved,) = panels["How far each step moves the output"].get_lines()  # logged every 10 steps
    np.testing.assert_allclose(moved.get_ydata(), np.abs(np.diff(out)) / 10)
    assert "Weights over training" in panels  # the one weight is 0.5 throughout: drawn


# ----- the summary printed by `run` ------------------------------------------------------------------


def test_printed_summary_shows_shared_metrics_targets_and_fitted_parameters(capsys):
    from lossbench.cli import print_summary

    base = {"status": "finished", "steps": 300, "steps_done": 300, "epochs": 300.0, "wall_time": 0.5}
    neuron = config(
        **{"model.depth": 0, "model.output": "sigmoid", "data": {"name": "single", "x": 1.0, "y": 0.0}}
    )
    print_summary({**base, "task": "regression", "final_train_loss": 0.02, "final_train_mse": 0.04,
                   "final_train_mae": 0.2, "linear": {"weight": [[0.5]], "bias": [-1.25]},
                   "targets": [{"metric": "val_mse", "value": 0.01, "steps_to": None, "seconds_to": None}]},
                  "f", neuron)  # fmt: skip
    out = capsys.readouterr().out
    assert re.search(r"train mse / mae +0.04 / 0.2\n", out)
    assert "to val_mse <= 0.01" in out and "not reached" in out
    assert "weight" in out and "0.5" in out and "-1.25" in out
    assert "output at x = 1" in out and f"{1 / (1 + np.exp(0.75)):.4g}" in out  # sigmoid(0.5 - 1.25)
    line = config(**{"model.depth": 0, "data": {"name": "line"}})
    print_summary({**base, "task": "regression", "linear": {"weight": [[2.02]], "bias": [3.05]}}, "f", line)
    assert "y = 2.02 x + 3.05" in capsys.readouterr().out
    loss_target = [{"metric": "loss", "value": 0.05, "steps_to": 40, "seconds_to": 0.3}]
    binary = {**base, "task": "binary", "final_val_acc": 0.95, "final_val_nll": 0.12, "targets": loss_target}
    hinge = config(**{"loss": {"name": "hinge"}, "model.output": "identity"})
    print_summary({**binary, "final_train_loss": 0.2, "final_train_acc": 0.9}, "f", hinge)
    out = capsys.readouterr().out
    assert re.search(r"val acc / nll +0.950 / 0.12\n", out)
    # a loss target names the loss's units, and hinge's are no shared metric's: the way to compare
    assert re.search(r"to loss <= 0.05 \(hinge units\) +step 40 \(0.30 s\)\n", out)
    assert "train.target: {metric: val_acc, value: ...}" in out
    bce = {**binary, "final_train_loss": 0.2, "final_train_nll": 0.2, "final_train_acc": 0.9}
    print_summary(bce, "f", config(**{"loss": {"name": "bce"}}))  # bce is the labels' NLL: no pointer
    out = capsys.readouterr().out
    assert "to loss <= 0.05 (bce units)" in out and "train.target: {metric" not in out


# ----- the report ------------------------------------------------------------------------------------


def _rows(text: str) -> list[list[str]]:
    import html

    rows = re.findall(r"<tr class=\"[^\"]*\">(.*?)</tr>", text)
    return [
        [html.unescape(re.sub("<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", r)] for r in rows
    ]


def test_report_rows_follow_the_grid_and_targets_get_columns(sweep, mae_huber, tmp_path):
    from lossbench.viz import report

    runs = viz_load.load_runs([str(sweep)])
    text = report._table(viz_load.group_runs(runs), str(tmp_path))
    order = [(row[1], row[2]) for row in _rows(text)]  # model.activation, model.depth
    assert order == [(a, d) for a in ["sigmoid", "tanh", "relu"] for d in ["2", "5", "10"] for _ in (0, 1)]
    runs = viz_load.load_runs([mae_huber["mae"], mae_huber["huber"]])
    text = report._table(viz_load.group_runs(runs), str(tmp_path))
    assert "steps to val_mse &lt;= 1" in text and '<th class="text">loss</th>' in text
    head = [re.sub("<[^>]+>", "", h) for h in re.findall(r"<th[^>]*>(.*?)</th>", text)]
    at = head.index("steps to val_mse &lt;= 1")
    assert [row[at : at + 2] for row in _rows(text)] == [["10", "0.02"], ["20", "0.02"]]  # huber, mae
    path = os.path.join(mae_huber["mae"], "summary.json")
    json.dump({**json.load(open(path)), "engine": "stacked"}, open(path, "w"))  # alone: its own clock
    runs = viz_load.load_runs([mae_huber["mae"], mae_huber["huber"]])
    text = report._table(viz_load.group_runs(runs), str(tmp_path))
    assert [row[at : at + 2] for row in _rows(text)] == [["10", "0.02"], ["20", "0.02"]]
    json.dump({**json.load(open(path)), "stack_size": 3}, open(path, "w"))  # trained with stack-mates
    runs = viz_load.load_runs([mae_huber["mae"], mae_huber["huber"]])
    text = report._table(viz_load.group_runs(runs), str(tmp_path))
    assert [row[at : at + 2] for row in _rows(text)] == [["10", "0.02"], ["20", "(stack's)"]]


def test_sweep_of_losses_with_a_loss_target_shows_no_incomparable_steps(tmp_path):
    folder = tmp_path / "losses"
    for i, name in enumerate(["mae", "huber"]):
        write_run(folder / f"r{i}", config(**{"loss": {"name": name}, "train.target_loss": 0.5}),
                  {"loss": list(CURVE), "val_loss": list(CURVE), "val_mse": list(CURVE)},
                  {"task": "regression", "final_val_loss": 1.0 + i, "final_val_mse": 2.0 + i,
                   "targets": [{"metric": "loss", "value": 0.5, "steps_to": 30, "seconds_to": 0.1}]})  # fmt: skip
    (folder / "sweep.yaml").write_text(yaml.safe_dump({"swept": ["loss.name"]}))
    fig = fig_sweep_summary(groups_of(folder))
    assert [ax.get_ylabel() for ax in fig.axes] == ["final validation MSE"]  # no "steps to loss" row
    (container,) = fig.axes[0].containers
    assert sorted(container.lines[0].get_ydata()) == [2.0, 3.0]
    assert "steps to the loss target not shown" in fig._supxlabel.get_text()


def test_a_component_whose_arguments_alone_differ_is_named_by_them(tmp_path):
    a = write_run(tmp_path / "a" / "r", config(), {"loss": list(CURVE)}, {"task": "regression"})
    b = write_run(tmp_path / "b" / "r", config(**{"optim.momentum": 0.9, "train.target_loss": 0.05}),
                  {"loss": list(CURVE)}, {"task": "regression"})  # fmt: skip
    assert [g.label for g in groups_of(a, b)] == [
        "optim.momentum=0, train.target_loss=None",
        "optim.momentum=0.9, train.target_loss=0.05",
    ]


def test_a_run_of_another_format_is_refused_by_every_reader_with_one_message(tmp_path, capsys):
    old = {"task": "regression", "format": 0, "versions": {"lossbench": "0.0.1"}}
    folder = write_run(tmp_path / "old" / "r", config(), {"loss": list(CURVE)}, old)
    with pytest.raises(RunFolderError) as e:
        load_run(folder)
    message = "made by lossbench 0.0.1 (run format 0; this lossbench reads format 1); rerun with --force"
    assert message in e.value.render()
    for command in (["plot", folder], ["compare", folder, "--out", str(tmp_path / "c")], ["report", folder]):
        assert main(command) == 2
        assert message in capsys.readouterr().err


# ----- compare says what it compares ------------------------------------------------------------------


def classifier(folder, loss="bce") -> str:
    cfg = config(
        **{"data": {"name": "moons", "n_samples": 100}, "loss": {"name": loss}, "model.output": "sigmoid"}
    )
    cols = {"loss": list(CURVE), "acc": [0.5, 0.7, 0.8, 0.9], "nll": list(CURVE / 4)}
    return write_run(folder, cfg, cols, {"task": "binary", "final_val_acc": 0.9})


def test_a_classifier_without_mse_is_named_for_its_task_never_sent_to_rerun(mae_huber, tmp_path):
    groups = groups_of(mae_huber["mae"], classifier(tmp_path / "clf" / "run9"), by=["loss.name"])
    fig = plots.fig_loss_curves(groups, metric="mse")
    text = fig.legends[0].get_title().get_text() if fig.legends else fig._supxlabel.get_text()
    assert "run9" in text and "binary task, which has no mse" in text.replace("\n", " ")
    assert "--force" not in text


@pytest.mark.slow
def test_compare_draws_each_task_apart_and_keeps_only_its_own_figures(mae_huber, tmp_path):
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "activation_health_2.png").write_bytes(b"an earlier compare's page")
    (out / "notes.txt").write_text("the user's")
    clf = classifier(tmp_path / "clf" / "run9")
    r = run_cli("compare", mae_huber["mae"], mae_huber["huber"], clf, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert (
        "runs of 2 tasks" in r.stdout and "regression (2 runs)" in r.stdout and "binary (1 run)" in r.stdout
    )
    assert sorted(os.listdir(out)) == ["binary", "notes.txt", "regression"]
    assert "loss_curves.png" in os.listdir(out / "regression") and "task.png" not in os.listdir(
        out / "binary"
    )
    # a second compare of one task writes its figures only: the per-task folders stay the user's to remove
    r = run_cli("compare", mae_huber["mae"], mae_huber["huber"], "--out", out / "regression", "--quiet")
    assert r.returncode == 0, r.stderr
    written = {os.path.basename(p) for p in r.stdout.split()}
    assert set(os.listdir(out / "regression")) == written


def test_by_names_the_label_and_the_other_differing_keys_go_to_the_title(tmp_path):
    folders = [write_run(tmp_path / f"r{i}", config(**{"loss": {"name": loss}, "model.depth": depth}), {"loss": list(CURVE)},
                         {"task": "regression"}) for i, (loss, depth) in enumerate([("mse", 1), ("mae", 2), ("mse", 3)])]  # fmt: skip
    groups = groups_of(*folders, by=["loss.name"])
    assert [g.label for g in groups] == [
        "loss.name=mae",
        "loss.name=mse (model.depth=1)",
        "loss.name=mse (model.depth=3)",
    ]
    assert groups[1].color == groups[2].color != groups[0].color  # the hue is the --by key's
    assert groups[1].linestyle != groups[2].linestyle
    title = plots.fig_loss_curves(groups)._suptitle.get_text().replace("\n", " ")
    assert "3 configs by loss.name (also differing: model.depth)" in title
    folders.append(write_run(tmp_path / "r3", config(**{"loss": {"name": "huber"}, "data.noise": 0.3}), {"loss": list(CURVE)},
                             {"task": "regression"}))  # fmt: skip
    title = (
        plots.fig_loss_curves(groups_of(*folders, by=["loss.name"]))._suptitle.get_text().replace("\n", " ")
    )
    assert "4 configs by loss.name (also differing: model.depth, data.noise)" in title


@pytest.mark.slow
def test_plot_of_a_results_folder_draws_each_folder_of_runs_apart(mae_huber, tmp_path):
    results = os.path.dirname(os.path.dirname(mae_huber["mae"]))  # results/mae/run0, results/huber/run0
    r = run_cli("plot", results)
    assert r.returncode == 0, r.stderr
    assert "2 folders of runs" in r.stderr
    assert not os.path.exists(os.path.join(results, "figures"))
    for name in ("mae", "huber"):
        figures = os.listdir(os.path.join(results, name, "figures"))
        assert "loss_curves.png" in figures and "sweep_summary.png" not in figures


def test_wall_time_to_target_only_for_runs_that_own_their_clock(mae_huber):
    plain = plots.fig_convergence(groups_of(*mae_huber.values()))
    assert [ax.get_title() for ax in plain.axes] == ["Steps to target", "Wall time to target"]
    path = os.path.join(mae_huber["mae"], "summary.json")
    summary = json.load(open(path))
    json.dump({**summary, "stack_size": 2}, open(path, "w"))  # trained with a stack-mate
    fig = plots.fig_convergence(groups_of(*mae_huber.values()))
    assert [ax.get_title() for ax in fig.axes] == ["Steps to target"]
    text = fig.legends[0].get_title().get_text() if fig.legends else fig._supxlabel.get_text()
    assert "1 run was trained as one stack" in text.replace("\n", " ")
