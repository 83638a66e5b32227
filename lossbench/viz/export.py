"""`python -m lossbench export tensorboard PATH`: the metrics of runs as TensorBoard scalars.

For users who live in TensorBoard: each run folder under PATH becomes a log folder
`OUT/<name>/<label> (<run_id>)/` (default OUT: PATH/tensorboard), named by the run's label (the config
values that differ from its siblings, as in the figures' legends, plus its seed when seeds differ) so
sigmoid and ReLU runs can be told apart in TensorBoard's run list; with every scalar metric at its step and every
per-layer metric as `KEY/layer_N` (N = 1 next to the input), plus the resolved config as text. Needs
the `tensorboard` package (extra `tensorboard`); read from the run folders alone. Exporting again
replaces a run's earlier export (its events files), so no scalar is shown twice.
"""

from __future__ import annotations

import math
import os
import re

import yaml

from .. import progress
from ..errors import UserError
from ..runs.store import check_name, check_writable, inside
from .load import group_runs, load_runs

SKIP = {"step", "diverged"}


def _summary_writer():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError(
            [
                (
                    "tensorboard",
                    "the tensorboard package is not installed; install it with "
                    "pip install 'lossbench[tensorboard]' (or pip install tensorboard)",
                )
            ],
            "export",
        ) from None
    return SummaryWriter


def run_labels(runs: list) -> list[tuple]:
    """(run, label) for every run: its group's label (what differs from its siblings), and its seed
    when the group holds several seeds; a label safe as one folder name."""
    labelled = []
    for group in group_runs(runs):
        base = re.sub(r" \(\d+ seeds\)$", "", group.label)
        for run in group.runs:
            label = f"{base}, seed={run.config.get('seed')}" if len(group.runs) > 1 else base
            labelled.append((run, re.sub(r"[^\w.,=+()\[\] -]", "_", label)[:150].strip() or "run"))
    return labelled


def _drop_earlier_export(folder: str) -> None:
    """Remove the event files an earlier export of this run wrote into its log folder: TensorBoard
    reads every events file in a folder, so a second export would show each scalar twice."""
    if os.path.isdir(folder) and not os.path.islink(folder):
        for entry in os.scandir(folder):
            if entry.name.startswith("events.out.tfevents.") and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)


def export_tensorboard(path: str, out: str, quiet: bool = True) -> list[str]:
    """Write one TensorBoard log folder per run under `path`; returns the folders.

    A progress bar counts the runs on a terminal, unless `quiet`.
    """
    runs = load_runs([path])
    summary_writer = _summary_writer()
    check_writable(out)
    planned = []
    for run, label in run_labels(runs):  # every path checked before anything is written
        name = check_name(run.config.get("name", "run"), "name", os.path.join(run.path, "config.yaml"))
        run_id = os.path.basename(os.path.normpath(run.path))
        leaf = f"{label} ({run_id})" if label != name else run_id
        planned.append((run, inside(out, name, leaf, source=os.path.join(run.path, "config.yaml"))))
    folders = []
    for run, folder in progress.iterate(planned, "export", "run", not quiet):
        _drop_earlier_export(folder)
        writer = summary_writer(log_dir=folder)
        try:
            writer.add_text("config", "```\n" + yaml.safe_dump(run.config, sort_keys=False) + "```", 0)
            steps = run.metrics["step"]
            for key, column in run.metrics.items():
                if key in SKIP:
                    continue
                for i, step in enumerate(steps):
                    values = column[i] if column.ndim == 2 else [column[i]]
                    for layer, value in enumerate(values):
                        if math.isfinite(value):
                            tag = f"{key}/layer_{layer + 1}" if column.ndim == 2 else key
                            writer.add_scalar(tag, float(value), int(step))
        finally:
            writer.close()
        folders.append(folder)
    return folders
