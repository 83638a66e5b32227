"""Every compared group can be told apart, and colour follows what the user compared.

Sets of configs differing in one, two and three keys (a few values up to more than the palette has)
are grouped and drawn; each group's line is read back from the loss-curve figure's artists and every
pair of lines must differ by a clearly visible hue (CIELAB distance, computed here from sRGB) or by
line style or marker.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from test_compare import CURVE, config, write_run

from lossbench.viz import figures as plots
from lossbench.viz import load as viz_load

CLEARLY = 20.0  # CIELAB distance; about 2.3 is the smallest difference a reader can see


def lab(colour) -> np.ndarray:
    """sRGB -> CIELAB (D65), the textbook formulas."""
    rgb = np.array(to_rgb(colour))
    rgb = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = m @ rgb / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


KEYS = {"model.activation": ["tanh", "relu", "sigmoid", "gelu", "elu", "silu", "selu", "softplus", "leaky_relu"],
        "model.depth": [1, 2, 3, 4, 5, 6],
        "optim.lr": [0.1, 0.01, 0.001, 0.3, 0.03]}  # fmt: skip

SETS = [
    {"model.activation": 2},
    {"model.activation": 7},
    {"model.activation": 9},  # more values than hues
    {"model.activation": 3, "model.depth": 3},
    {"model.activation": 2, "model.depth": 6},  # more depths than line styles
    {"model.activation": 9, "model.depth": 2},
    {"model.activation": 3, "model.depth": 2, "optim.lr": 2},
    {"model.activation": 2, "model.depth": 3, "optim.lr": 5},
]


def sweep_like(tmp_path, counts: dict) -> list:
    """A run per combination of the keys' first `n` values, written as a sweep of those keys."""
    names = list(counts)
    for i, combo in enumerate(itertools.product(*[KEYS[k][:n] for k, n in counts.items()])):
        write_run(tmp_path / f"run{i:03d}", config(**dict(zip(names, combo))), {"loss": list(CURVE)}, None)
    runs = viz_load.load_runs([str(tmp_path)])
    return viz_load.group_runs(runs, swept=names)


@pytest.mark.parametrize(
    "counts", SETS, ids=lambda c: "x".join(f"{k.split('.')[-1]}{n}" for k, n in c.items())
)
def test_every_pair_of_groups_is_told_apart_in_the_drawn_figure(tmp_path, counts):
    groups = sweep_like(tmp_path, counts)
    assert len(groups) == int(np.prod(list(counts.values())))
    fig = plots.fig_loss_curves(groups)
    drawn = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    looks = [(lab(drawn[g.label].get_color()), drawn[g.label].get_linestyle(), drawn[g.label].get_marker())
             for g in groups]  # fmt: skip
    for a, b in itertools.combinations(range(len(groups)), 2):
        (ca, sa, ma), (cb, sb, mb) = looks[a], looks[b]
        assert np.linalg.norm(ca - cb) >= CLEARLY or sa != sb or ma != mb, (groups[a].label, groups[b].label)
    first = list(counts)[0]
    if counts[first] <= len(viz_load.PALETTE):  # the hue is the first key's value, and nothing else's
        hue = {}
        for g in groups:
            assert hue.setdefault(g.values[first], drawn[g.label].get_color()) == drawn[g.label].get_color()
        assert len(set(hue.values())) == counts[first]
    n = list(counts.values())
    if len(n) >= 2 and n[0] <= len(viz_load.PALETTE) and n[1] <= 4 and (len(n) == 2 or n[2] <= 9):
        second = list(counts)[1]  # the second key's value is the line style
        style = {}
        for g in groups:
            assert (
                style.setdefault(g.values[second], drawn[g.label].get_linestyle())
                == drawn[g.label].get_linestyle()
            )


def test_the_palette_is_clearly_distinct_pairwise():
    for a, b in itertools.combinations(viz_load.PALETTE, 2):
        assert np.linalg.norm(lab(a) - lab(b)) >= CLEARLY, (a, b)


def test_a_derived_output_never_leads_a_label_or_title(tmp_path):
    """A sweep of losses whose `auto` output follows the loss: hue, labels and title name the loss."""
    outputs = {"mse": "sigmoid", "mae": "sigmoid", "huber": "sigmoid", "bce": "sigmoid", "hinge": "identity"}
    for i, (loss, output) in enumerate(outputs.items()):
        cfg = config(**{"loss": {"name": loss}, "model.output": output})
        write_run(tmp_path / f"run{i}", cfg, {"loss": list(CURVE), "acc": [0.5, 0.7, 0.8, 0.9]},
                  {"task": "binary"})  # fmt: skip
    groups = viz_load.group_runs(viz_load.load_runs([str(tmp_path)]), swept=["loss.name"])
    assert [g.label for g in groups] == [f"loss={n}" for n in outputs]
    assert len({g.color for g in groups}) == 5
    fig = plots.fig_loss_curves(groups)
    assert "model.output" not in fig._suptitle.get_text()
    summary = plots.fig_sweep_summary(groups)
    assert [ax.get_xlabel() for ax in summary.axes if ax.get_xlabel()] == ["loss.name"]
    for ax in summary.axes:  # categories: points, never a line joining two losses
        for container in ax.containers:
            assert container.lines[0].get_linestyle() == "None"


def test_a_summary_panel_only_for_a_swept_key(tmp_path):
    """Three separate runs are no sweep: no 'What the sweep found' figure."""
    for i, depth in enumerate([1, 2, 3]):
        write_run(
            tmp_path / f"run{i}",
            config(**{"model.depth": depth}),
            {"loss": list(CURVE)},
            {"task": "regression"},
        )
    groups = viz_load.group_runs(viz_load.load_runs([str(tmp_path)]))
    assert len(groups) == 3
    assert plots.fig_sweep_summary(groups) is None
