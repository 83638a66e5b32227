"""Pictures of runs, drawn from run folders alone (config.yaml, metrics.jsonl, summary.json, view.npz).

`python -m lossbench plot PATH...` draws the figures of each run, sweep or results folder into
`PATH/figures/`; `compare PATH... [--by KEY]` overlays the runs of several folders. Runs that differ
only in `seed` form one group, drawn as the mean over seeds with its 95% Student-t interval
(`verdicts.seed_interval`); legend labels name the config keys whose values differ between groups.
Each figure function takes groups and returns a matplotlib `Figure` (so tests can read the plotted
data back from its artists); nothing here imports the trainer or trains anything.

The figures live by subject: `curves` (loss curves, convergence), `layers` (gradient heat maps and
profile, activation health), `task` (decision boundary, fitted function). This module lists them
and writes them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..runs.store import atomic_write, check_writable
from .canvas import _figure, _wants_log, render  # noqa: F401 (tests use _wants_log from here)
from .curves import fig_convergence, fig_loss_curves
from .layers import fig_activation_health, fig_grad_heatmap, fig_grad_profile
from .load import MAX_PANELS, Group
from .metrics import check_metric
from .summary import fig_sweep_summary
from .task import fig_linear, fig_task, load_view  # noqa: F401 (part of this module's interface)

if TYPE_CHECKING:  # matplotlib loads on first use
    from matplotlib.figure import Figure

FIGURES: dict[str, Callable[..., Figure | None]] = {
    "loss_curves": fig_loss_curves,
    "convergence": fig_convergence,
    "sweep_summary": fig_sweep_summary,
    "grad_heatmap_w": functools.partial(fig_grad_heatmap, key="grad_w"),
    "grad_heatmap_out": functools.partial(fig_grad_heatmap, key="grad_out"),
    "grad_profile": fig_grad_profile,
    "activation_health": fig_activation_health,
    "task": fig_task,
    "linear": fig_linear,
}
"""Figure name -> function(groups, **options) -> Figure or None (when the runs hold nothing to draw)."""

TAKES_METRIC = {"loss_curves", "convergence", "sweep_summary"}
PAGED = {
    "grad_heatmap_w": MAX_PANELS,
    "grad_heatmap_out": MAX_PANELS,
    "activation_health": 6,
    "task": MAX_PANELS,
}
"""Figures with a panel per config: more configs than this go on further pages (NAME_2, NAME_3, ...)."""


def figure_jobs(groups: list[Group], metric: str | None = None) -> list[tuple]:
    """(file name, function, groups, keyword arguments) of every figure to try: each a pure call
    (groups in, Figure or None out), so a caller may draw them in any order or process.

    Raises UserError for an unknown `metric` before anything is drawn.
    """
    if metric:
        check_metric(metric, groups)
    jobs: list[tuple[str, Callable[..., Figure | None], list[Group], dict[str, Any]]] = []
    for name, fn in FIGURES.items():
        options: dict[str, Any] = {"metric": metric} if name in TAKES_METRIC else {}
        per = PAGED.get(name)
        if per and len(groups) > per:
            n_pages = -(-len(groups) // per)
            size = -(-len(groups) // n_pages)  # pages of even size: 9 configs at 6 a page are 5 + 4
            pages = [groups[i : i + size] for i in range(0, len(groups), size)]
            for p, page in enumerate(pages):
                jobs.append(
                    (
                        name if p == 0 else f"{name}_{p + 1}",
                        fn,
                        page,
                        {**options, "page": (p + 1, len(pages))},
                    )
                )
        else:
            jobs.append((name, fn, groups, options))
    return jobs


def figures(groups: list[Group], metric: str | None = None) -> Iterator[tuple[str, Figure]]:
    """(name, Figure) for every figure the groups have data for."""
    for name, fn, page, options in figure_jobs(groups, metric):
        fig = fn(page, **options)
        if fig is not None:
            yield name, fig


def save_figures(
    groups: list[Group], out: str, fmt: str = "png", metric: str | None = None, bar: Any = None
) -> list[str]:
    """Write every figure to `out/NAME.FMT` (atomically); returns the paths. Figures of an earlier
    drawing in `out` that these groups do not have (a removed config's page) are deleted, so the
    folder holds this drawing's figures only; other files stay.

    The figures are drawn in parallel worker processes where that is safe (`viz.draw`); `bar`, a
    tqdm bar, advances once per figure job.
    """
    return save_all([(out, groups)], fmt, metric, bar)


def save_all(
    drawings: list[tuple[str, list[Group]]], fmt: str = "png", metric: str | None = None, bar: Any = None
) -> list[str]:
    """`save_figures` of several (folder, groups), all drawn in one pool of workers."""
    from .draw import draw

    jobs = [figure_jobs(groups, metric) for _, groups in drawings]  # an unknown metric: refused first
    for out, _ in drawings:
        check_writable(out)
    paths = []
    for (out, _), drawn in zip(drawings, draw(jobs, fmt, bar=bar)):
        os.makedirs(out, exist_ok=True)
        written = []
        for name, data in drawn.items():
            path = os.path.join(out, f"{name}.{fmt}")
            atomic_write(path, data)
            os.chmod(path, 0o644)  # atomic_write's temporary file is private (0600); figures are for sharing
            written.append(path)
        remove_figures(out, fmt, keep=written)
        paths += written
    return paths


def remove_figures(folder: str, fmt: str, keep: Sequence[str] = ()) -> None:
    """Delete the figures an earlier drawing left in `folder` (NAME.FMT, pages NAME_2.FMT) but those
    in `keep`; other files stay."""
    import re

    if not os.path.isdir(folder):
        return
    for name in set(os.listdir(folder)) - {os.path.basename(p) for p in keep}:
        stem, dot, ext = name.rpartition(".")
        if dot and ext == fmt and re.sub(r"_[0-9]+$", "", stem) in FIGURES:
            os.remove(os.path.join(folder, name))


# ----- commands --------------------------------------------------------------------------------------


# ----- for figures drawn outside this module (the experiments) -------------------------------------


def new_figure(width: float, height: float) -> Figure:
    """A Figure on the Agg canvas (no pyplot state): draw on `fig.subplots(...)`, then `save_figure`."""
    return _figure(width, height)


def save_figure(fig: Figure, path: str, dpi: int = 100) -> str:
    """Write one Figure to `path` (format from the suffix, atomically, readable by all)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    atomic_write(path, render(fig, os.path.splitext(path)[1].lstrip(".") or "png", dpi))
    os.chmod(path, 0o644)  # atomic_write's temporary file is private (0600); figures are for sharing
    return path
