"""The lesson figures, drawn from real runs of the lesson configs, can be read: no legend and no tick
label sits on a plotted line, no two tick labels of an axis collide, and each shows its lesson's claim.

The small lessons are trained here as docs/make_images.py trains them (same configs and overrides);
the heavy ones (deep nets, sweeps of many runs) are left to that script.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import ROOT
from test_compare import sweep  # noqa: F401 (a fixture: activation x depth, 2 seeds)

from lossbench.cli import main
from lossbench.viz import figures as plots
from lossbench.viz.load import group_runs, load_runs

LESSONS = {
    "outliers": [[], ["loss.name=mae"], ["loss=huber"]],
    "mae_jumping": [[], ["optim.schedule=inverse_time"], ["loss.name=mse"]],
    "hinge_margin": [[], ["loss=bce"], ["loss.margin=2"]],
    "nielsen_neuron": [[], ["loss.name=bce"]],
    "likelihood": [[], ["loss.name=mae"]],
    "init_scale": [["model.width=16", "data.n_samples=100"]],  # its 31 layers, narrower
}


pytestmark = pytest.mark.xdist_group("lesson_figures")  # one module-scoped fixture, built once


@pytest.fixture(scope="module")
def lessons(tmp_path_factory):
    out = tmp_path_factory.mktemp("lessons")
    drawn = {}
    for name, runs in LESSONS.items():
        for overrides in runs:
            assert main(["run", f"{ROOT}/configs/{name}.yaml", *overrides, "--out", str(out), "--quiet"]) == 0
        drawn[name] = dict(plots.figures(group_runs(load_runs([str(out / name)]))))
    return drawn


def boxes(fig):
    """(line boxes clipped to their axes, legend boxes, tick label boxes per axis) in pixels."""
    fig.draw_without_rendering()  # runs the constrained layout
    renderer = fig.canvas.get_renderer()
    lines, legends, ticks = [], [], []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        frame = ax.get_window_extent(renderer)
        for line in ax.get_lines():
            data = np.asarray(line.get_xydata(), float)
            if line.get_visible() and len(data) and np.isfinite(data).any():
                box = line.get_window_extent(renderer)
                inside = box.intersection(box, frame) if box.overlaps(frame) else None
                if inside is not None and line.get_transform().contains_branch(ax.transData):
                    lines.append(inside)
        if ax.get_legend() is not None:
            legends.append(ax.get_legend().get_window_extent(renderer))
        for axis in (ax.xaxis, ax.yaxis):
            labels = [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]
            ticks.append([t.get_window_extent(renderer) for t in labels])
    legends += [legend.get_window_extent(renderer) for legend in fig.legends]
    return lines, legends, ticks


def cases():
    return [(lesson, name) for lesson in LESSONS for name in ("loss_curves", "task", "linear", "grad_profile",
                                                                "sweep_summary", "convergence")]  # fmt: skip


@pytest.mark.parametrize("lesson, name", cases())
def test_no_legend_or_tick_label_on_the_data_and_no_colliding_ticks(lessons, lesson, name):
    fig = lessons[lesson].get(name)
    if fig is None:
        pytest.skip(f"{lesson} has no {name} figure")
    lines, legends, ticks = boxes(fig)
    for legend, line in itertools.product(legends, lines):
        assert not legend.overlaps(line), f"{lesson} {name}: a legend covers a line"
    for axis in ticks:
        for a, b in itertools.combinations(axis, 2):
            assert not a.overlaps(b), f"{lesson} {name}: two tick labels collide"
        for tick, line in itertools.product(axis, lines):
            assert not tick.overlaps(line), f"{lesson} {name}: a tick label sits on a line"


def test_one_step_runs_get_one_step_figures(lessons):
    figs = lessons["init_scale"]
    assert "loss_curves" not in figs and "grad_heatmap_w" not in figs and "activation_health" not in figs
    profile = figs["grad_profile"]
    assert [ax.get_title() for ax in profile.axes] == [
        "the one step recorded (step 0): grad_w",
        "the one step recorded (step 0): grad_out",
    ]


def test_hinge_reaching_zero_and_its_margin_are_drawn(lessons):
    linear = lessons["hinge_margin"]["linear"]
    (loss_ax,) = [ax for ax in linear.axes if ax.get_title().startswith("Loss over training")]
    marks = [t.get_text() for t in loss_ax.texts]
    assert len(marks) == 2 and all(m.startswith("0 from step ") for m in marks)  # hinge and hinge(margin=2)
    task = lessons["hinge_margin"]["task"]
    titles = {ax.get_title().split("\n")[0]: ax.get_title().split("\n")[1] for ax in task.axes}
    margin, widest = (float(t.split()[-1]) for t in titles["loss=hinge"].split(", "))
    assert titles["loss=hinge"].startswith("margin 1/|w| = ")
    assert abs(margin - widest) < 0.01  # hinge's margin is near the widest any line has
    assert titles["loss=bce"].startswith("widest (SVM)")  # BCE has no margin where it stops
    legend = [t.get_text() for t in task.legends[0].get_texts()]
    assert "f(x) = ±margin: hinge stops pulling beyond" in legend and "decision boundary" in legend


def test_mae_jumping_shows_the_step_sizes(lessons):
    fig = lessons["mae_jumping"]["linear"]
    (ax,) = [ax for ax in fig.axes if ax.get_title() == "How far each step moves the output"]
    moved = {ln.get_label(): ln.get_ydata() for ln in ax.get_lines()}
    fixed = next(v for k, v in moved.items() if "constant" in k and "mae" in k)
    decaying = next(v for k, v in moved.items() if "inverse_time" in k)
    assert np.allclose(fixed[-20:], 0.1, rtol=1e-3)  # a fixed step of 0.1 jumps 0.1 for ever
    assert np.all(decaying[-20:] < 0.05)  # the decaying step's jumps shrink with it (lr / (1 + 0.01 t))


def test_a_sweep_summary_of_two_keys_keeps_its_legends_off_the_points(sweep):  # noqa: F811
    """Lesson 5's sweep shape (activation x depth, 2 seeds), from run folders written by hand."""
    fig = plots.fig_sweep_summary(group_runs(load_runs([str(sweep)])))
    lines, legends, _ = boxes(fig)
    assert len(legends) == 2 and lines  # one legend per column, above its top panel
    for legend, line in itertools.product(legends, lines):
        assert not legend.overlaps(line)


def test_every_docs_image_is_drawn_by_make_images():
    """docs/make_images.py redraws every picture in docs/images (none is drawn by hand or left stale)."""
    import importlib.util
    import os

    spec = importlib.util.spec_from_file_location("make_images", os.path.join(ROOT, "docs", "make_images.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    images = {
        n[: -len(".png")] for n in os.listdir(os.path.join(ROOT, "docs", "images")) if n.endswith(".png")
    }
    assert images == set(module.PICTURES)
