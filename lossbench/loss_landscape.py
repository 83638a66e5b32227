"""`python -m lossbench landscape PATH...`: the loss landscape of every run under each PATH,
computed by `engine.landscape`, saved beside the run's figures and drawn by `viz.landscape`."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from .engine.landscape import compute
from .runs.store import atomic_write, check_writable

COMPARED = 6  # runs drawn side by side in one figure; more are named in a note


def landscape(
    paths: list[str],
    resolution: int = 41,
    span: float = 1.0,
    seed: int = 0,
    bias: str = "row",
    n_examples: int | None = None,
    fmt: str = "png",
    echo: Callable[[str], object] = print,
) -> list[str]:
    """Compute and draw the landscape of every run under `paths`; returns the files written.

    Each run gets `figures/landscape.npz` and `figures/landscape.FMT` in its folder; a PATH holding
    several runs also gets `PATH/figures/landscape.FMT` with the first seed of each config side by
    side (up to six). Runs without snapshots or without weights are named, with the way to get them.
    """
    import io

    from .viz.figures import save_figure
    from .viz.landscape import fig_landscape, own_metric
    from .viz.load import group_runs, load_runs
    from .viz.metrics import choose_metric

    loaded = [(path, group_runs(load_runs([path]))) for path in paths]  # every input checked first
    written, no_weights, no_snapshots = [], [], []
    for path, groups in loaded:
        items = []
        for g in groups:
            for i, run in enumerate(g.runs):
                if not os.path.isfile(os.path.join(run.path, "model.pt")):
                    no_weights.append(run.path)
                    continue
                data = compute(run.path, run.config, resolution, span, seed, bias, n_examples)
                no_snapshots += [] if "path_xy" in data else [run.path]
                label = (
                    g.label if len(groups) > 1 else f"{run.config.get('name')} ({os.path.basename(run.path)})"
                )
                item = {"label": label, "loss": str(run.config.get("loss", {}).get("name")), "data": data}
                figures = os.path.join(run.path, "figures")
                check_writable(figures)
                os.makedirs(figures, exist_ok=True)
                buf = io.BytesIO()
                np.savez_compressed(buf, allow_pickle=False, **data)
                atomic_write(os.path.join(figures, "landscape.npz"), buf.getvalue())
                fig = fig_landscape([item], own_metric(data))
                written += [
                    os.path.join(figures, "landscape.npz"),
                    save_figure(fig, os.path.join(figures, f"landscape.{fmt}")),
                ]
                if i == 0:
                    items.append(item)
        if len(items) > 1:
            metric = choose_metric(groups)
            fig = fig_landscape(items[:COMPARED], metric)
            written.append(save_figure(fig, os.path.join(path, "figures", f"landscape.{fmt}")))
            if len(items) > COMPARED:
                echo(
                    f"lossbench landscape: {path}: the first {COMPARED} of {len(items)} configs side by side"
                )
    if no_weights:
        echo(f"lossbench landscape: no trained weights (model.pt; diverged?) in {', '.join(no_weights)}")
    if no_snapshots:
        commands = [
            f"  python -m lossbench run {os.path.join(p, 'config.yaml')} train.snapshots=20 "
            f"--out {os.path.dirname(os.path.dirname(os.path.normpath(p)))}"
            for p in no_snapshots[:3]
        ]
        more = f"\n  (and {len(no_snapshots) - 3} more runs)" if len(no_snapshots) > 3 else ""
        echo(
            f"lossbench landscape: no training path for {len(no_snapshots)} run(s) without weight snapshots; "
            "to keep them, train again with train.snapshots=20 (a new run beside the old one):\n"
            + "\n".join(commands)
            + more
        )
    return written
