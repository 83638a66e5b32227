"""Which metric a comparison draws: the trained loss when every run trains the same one, else a
metric every loss shares (MSE for regression; for classification the labels' negative
log-likelihood when every output gives probabilities, else accuracy).

Two losses are two different functions: MAE cannot go below about the noise level where Huber goes
near 0, and MSE squares what MAE does not, so their loss curves on one axis answer nothing. The
common metrics are recorded on every run beside the loss (`mse`, `mae`, `nll`, `acc` and their
`val_` twins).
"""

from __future__ import annotations

import os

import numpy as np

from ..config.schema import PROBABILITY_OUTPUTS, shared_metrics
from ..errors import UserError
from ..runs.store import Run
from .load import Group, value_text

METRICS = {
    "loss": "loss (each run's own loss, its own units)",
    "mse": "MSE (mean squared error, target units squared)",
    "mae": "MAE (mean absolute error, target units)",
    "nll": "NLL (negative log-likelihood of the labels, nats)",
    "acc": "accuracy (fraction correct)",
}
"""The metrics a comparison can draw (each also as `val_NAME`, on the validation set)."""

NOT_METRICS = {"step", "epoch", "time", "lr", "diverged"}


def base(metric: str) -> str:
    """`val_mse` -> `mse`: the train and validation columns of one metric."""
    return metric[4:] if metric.startswith("val_") else metric


def valid_metrics(groups: list[Group]) -> list[str]:
    """Every name `--metric` accepts here: the common metrics, their `val_` twins and any other
    scalar column the runs recorded."""
    names = [*METRICS, *(f"val_{m}" for m in METRICS)]
    for g in groups:
        for r in g.runs:
            names += [
                k for k, v in r.metrics.items() if v.ndim == 1 and k not in NOT_METRICS and k not in names
            ]
    return names


def check_metric(metric: str, groups: list[Group], where: str = "--metric") -> str:
    """`metric` when a comparison can draw it; else UserError with the valid names and a close one."""
    valid = valid_metrics(groups)
    if metric not in valid:
        from ..components.registry import did_you_mean

        raise UserError(
            [(where, f"unknown metric {metric!r}{did_you_mean(metric, valid)}; valid: {', '.join(valid)}")],
            "command line",
        )
    return metric


def task_of(groups: list[Group]) -> str:
    """`regression` or a classification task, from the summaries (else from the recorded accuracy)."""
    for g in groups:
        for r in g.runs:
            task = (r.summary or {}).get("task")
            if task:
                return task
    for g in groups:
        acc = g.stacked("acc")
        if acc is not None and np.isfinite(acc).any():
            return "binary"
    return "regression"


def losses_differ(groups: list[Group]) -> bool:
    """Whether the runs train different losses (another name, or other settings such as Huber's delta)."""
    return len({value_text(r.config, "loss") for g in groups for r in g.runs}) > 1


def choose_metric(groups: list[Group], requested: str | None = None) -> str:
    """The metric (base name) a comparison of `groups` draws: `requested`, else `loss` when every run
    trains the same loss, else the task's common metric."""
    if requested:
        return base(check_metric(requested, groups))
    if not losses_differ(groups):
        return "loss"
    if task_of(groups) == "regression":
        return "mse"
    outputs = {value_text(r.config, "model.output") for g in groups for r in g.runs}
    return "nll" if outputs <= set(PROBABILITY_OUTPUTS) else "acc"


REGRESSION_ONLY = set(shared_metrics("regression"))
"""Metrics only a regression records (a classifier's are `acc` and `nll`)."""


def run_task(run: Run) -> str:
    """`regression` or a classification task: the summary's, else from what the run recorded."""
    task = (run.summary or {}).get("task")
    if isinstance(task, str):
        return task
    return "binary" if "acc" in run.metrics else "regression"


def by_task(runs: list) -> dict[str, list]:
    """The runs by task, in the order first seen."""
    out: dict[str, list] = {}
    for r in runs:
        out.setdefault(run_task(r), []).append(r)
    return out


def measurable(run: Run, key: str) -> bool:
    """Whether a run of its task records `key` at all (a classifier has no MSE, a regression no accuracy)."""
    regression = run_task(run) == "regression"
    return base(key) not in (METRICS.keys() - REGRESSION_ONLY - {"loss"} if regression else REGRESSION_ONLY)


def lacking(groups: list[Group], key: str) -> list[str]:
    """Folders of the runs that recorded no finite `key` (a metric their task lacks, or none yet:
    `lacking_note` tells which)."""
    out = []
    for g in groups:
        for r in g.runs:
            column = r.metrics.get(key)
            if column is None or not np.isfinite(column.astype(float)).any():
                out.append(r.path)
    return out


def lacking_note(
    paths: list[str], what: str, prefix: str = "not drawn: ", groups: list[Group] | None = None
) -> str:
    """One line naming runs without `what` and why: runs of a task that has no such metric (given
    `groups`, and `what` a metric), else runs that recorded none (still training, or diverged first)."""
    if not paths:
        return ""
    runs = {r.path: r for g in groups or [] for r in g.runs}
    other = [p for p in paths if p in runs and what in METRICS and not measurable(runs[p], what)]
    others = [p for p in paths if p not in other]
    parts = []
    if other:
        tasks = sorted({run_task(runs[p]) for p in other})
        parts.append(
            f"{_runs(other)} of the {'/'.join(tasks)} task, which has no {what}: compare runs of one task"
        )
    if others:
        parts.append(f"{_runs(others)} recorded no {what}")
    return prefix + "; ".join(parts)


def _runs(paths: list[str]) -> str:
    names = ", ".join(os.path.basename(os.path.normpath(p)) for p in paths[:4])
    more = f" and {len(paths) - 4} more" if len(paths) > 4 else ""
    return f"{len(paths)} run{'s' if len(paths) != 1 else ''} ({names}{more})"
