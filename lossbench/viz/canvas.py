"""Figure helpers shared by the figure modules: a Figure without pyplot, legends, titles, scales."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

import numpy as np

from ..runs.store import Run
from ..verdicts import ADD_SEEDS, INTERVAL, ONE_SEED
from .load import Group, _default_label

if TYPE_CHECKING:  # matplotlib loads on first use
    from matplotlib.figure import Figure


def _figure(width: float, height: float) -> Figure:
    """A Figure on the Agg canvas (no pyplot, no global state, nothing to close)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _legend(fig, ax, n_entries: int) -> None:
    """One legend for the figure, below the axes: never over the data."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    ncol = 1 if max(len(t) for t in labels) > 60 else min(3 if n_entries > 3 else n_entries, len(labels))
    fig.legend(handles, labels, loc="outside lower center", fontsize="small", ncol=ncol)


def one_step(groups: list[Group]) -> bool:
    """Every run logged a single step (init_scale looks at the network as initialised): a figure
    over training would be one dot, so those figures are left out and `grad_profile` shows the step."""
    return all(len(r.metrics["step"]) <= 1 for g in groups for r in g.runs)


def _wrap(text: str, width: int = 48) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width, break_long_words=False)) or text


def _suptitle(fig, text: str) -> None:
    width = int(fig.get_figwidth() * 11)
    fig.suptitle("\n".join(_wrap(line, width) for line in text.split("\n")))


def _wants_log(values) -> bool:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return v.size > 1 and bool((v > 0).all()) and v.max() / v.min() > 30


def _diverged_step(run: Run) -> int | None:
    s = (run.summary or {}).get("diverged_step")
    if s is not None:
        return int(s)
    flags = run.metrics.get("diverged")
    if flags is not None and (flags == 1).any():
        return int(run.metrics["step"][np.argmax(flags == 1)])
    return None


def _page(page: tuple[int, int] | None) -> str:
    """' (page 2 of 3)' for a figure whose configs are split over several files."""
    return f" (page {page[0]} of {page[1]})" if page else ""


def _grid(n: int, groups: list[Group] | None = None) -> tuple[int, int]:
    """(rows, columns) of a panel per config: a row per value of the first label key when the
    groups form a grid of two keys (a sweep's 3 activations x 3 depths: 3 x 3), else 4 across."""
    keys = list(groups[0].values) if groups else []
    cols = min(n, 4)
    if groups and len(keys) >= 2:
        inner = len({g.values[keys[-1]] for g in groups})
        cols = inner if 1 < inner <= 4 else cols
    return math.ceil(n / cols), cols


def _notes(fig, notes: list[str]) -> None:
    """Warnings written on the figure itself, in red at its foot, so a saved PNG carries them: the
    title of the figure's legend when it has one below the axes (call after `_legend`), else a
    figure-level x label (constrained layout keeps room for both, not for loose text)."""
    notes = [n for n in notes if n]
    if not notes:
        return
    text = "\n".join(_wrap(n, int(fig.get_figwidth() * 13)) for n in notes)
    if fig.legends:
        legend = fig.legends[0]
        legend.set_title(text, prop={"size": "small"})
        legend.get_title().set_color(NOTE_COLOR)
    else:
        fig.supxlabel(text, color=NOTE_COLOR, fontsize="small")


NOTE_COLOR = "#B00020"


def _seeds(groups: list[Group], what: str = "band") -> tuple[str, str]:
    """(the title's words on the seeds, the note on configs with one seed) of a figure that draws
    each config's mean over seeds with its 95% interval as a `what` ("band", "line", "bars")."""
    counts = sorted({len(g.runs) for g in groups})
    if counts[-1] == 1:
        return "", ONE_SEED
    n = f"{counts[0]}-{counts[-1]}" if len(counts) > 1 else f"{counts[0]}"
    ones = sum(len(g.runs) == 1 for g in groups)
    note = (
        f"{ones} config{'s' if ones > 1 else ''} with one seed: no {what}, may differ by chance; {ADD_SEEDS}"
    )
    return f"mean over {n} seeds, {what}: {INTERVAL.replace(' over seeds', '')}", note if ones else ""


def _what(groups: list[Group]) -> str:
    keys = list(groups[0].values) if groups else []
    n_runs = sum(len(g.runs) for g in groups)
    if len(groups) > 1 and keys:
        also = groups[0].also
        return f"{len(groups)} configs by {', '.join(groups[0].by or keys)}" + (
            f" (also differing: {', '.join(also)})" if also else ""
        )
    return f"{_default_label(groups[0].runs[0])} ({n_runs} run{'s' if n_runs != 1 else ''})"


def render(fig: Figure, fmt: str = "png", dpi: int = 100) -> bytes:
    """The figure as image bytes in `fmt` (png, pdf, svg, ...)."""
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings():
        # a metric that is constant over a run (e.g. a loss of exactly 0) gives equal axis limits;
        # matplotlib widens them itself, the warning only alarms the reader
        warnings.filterwarnings("ignore", message="Attempting to set identical")
        fig.savefig(buf, format=fmt, dpi=dpi)
    return buf.getvalue()
