"""How long `lossbench plot` takes on a 300-run sweep, against plotting one run in the same process.

    python bench/bench_plots.py [--runs 300] [--rows 200] [--depth 5]

Writes a synthetic sweep folder (config.yaml, metrics.jsonl, summary.json per run, exactly the files a
run writes; 10 seeds per config, no view.npz) into a temporary folder, then times loading + grouping +
drawing + saving all figures for one run (the baseline) and for the whole sweep, and prints both and
their ratio. The cost should grow with the number of configs drawn (capped panels), not with runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lossbench.config.schema import RUN_FORMAT
from lossbench.engine.train import LAYER_KEYS
from lossbench.viz import figures as plots
from lossbench.viz import load as viz_load


def write_run(folder: str, cfg: dict, n_rows: int, n_layers: int, rng) -> None:
    os.makedirs(folder)
    with open(os.path.join(folder, "config.yaml"), "w") as f:
        yaml.safe_dump(cfg, f)
    steps = np.arange(n_rows) * 10
    loss = np.exp(-steps / (500 + 300 * rng.random())) + 0.05 * rng.random(n_rows)
    with open(os.path.join(folder, "metrics.jsonl"), "w") as f:
        for i, s in enumerate(steps):
            row = {"step": int(s), "epoch": s / 20, "loss": loss[i], "acc": 1 - loss[i] / 2, "lr": 0.1,
                   "time": s * 1e-3, "val_loss": loss[i] * 1.1, "val_acc": 1 - loss[i] / 2}  # fmt: skip
            row.update(
                {k: list(rng.random(n_layers) * 10.0 ** -np.arange(n_layers)[::-1]) for k in LAYER_KEYS}
            )
            f.write(json.dumps(row) + "\n")
    reached = next((int(s) for s, v in zip(steps, loss) if v < 0.3), None)
    summary = {"format": RUN_FORMAT, "status": "finished", "steps": int(steps[-1]) + 1, "steps_done": int(steps[-1]) + 1,
               "final_train_loss": loss[-1], "final_val_loss": loss[-1] * 1.1,
               "targets": [{"metric": "loss", "value": 0.3, "steps_to": reached,
                            "seconds_to": reached and reached * 1e-3}],
               "diverged_step": None, "task": "binary", "wall_time": 1.0}  # fmt: skip
    with open(os.path.join(folder, "summary.json"), "w") as f:
        json.dump(summary, f)


def make_sweep(root: str, n_runs: int, n_rows: int, depth: int) -> str:
    rng = np.random.default_rng(0)
    sweep = os.path.join(root, "bench")
    for i in range(n_runs):
        config_i, seed = divmod(i, 10)
        cfg = {"name": "bench", "seed": seed, "loss": {"name": ["bce", "mse", "hinge"][config_i % 3]},
               "model": {"depth": depth, "width": 16 + config_i // 3, "activation": "tanh"}}  # fmt: skip
        write_run(os.path.join(sweep, f"run{i:04d}"), cfg, n_rows, depth + 1, rng)
    return sweep


def timed(path: str, out: str) -> float:
    start = time.perf_counter()
    plots.save_figures(viz_load.group_runs(viz_load.load_runs([path])), out)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--rows", type=int, default=200)
    p.add_argument("--depth", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as root:
        sweep = make_sweep(root, args.runs, args.rows, args.depth)
        timed(os.path.join(sweep, "run0000"), os.path.join(root, "warmup"))  # imports, font cache
        one = timed(os.path.join(sweep, "run0000"), os.path.join(root, "one"))
        start = time.perf_counter()
        n = len(viz_load.load_runs([sweep]))
        load = time.perf_counter() - start
        many = timed(sweep, os.path.join(root, "many"))
    print(f"1 run: {one:.2f} s   {n} runs ({n // 10} configs x 10 seeds, {args.rows} rows, "
          f"{args.depth + 1} layers): {many:.2f} s (of which loading {load:.2f} s)   ratio {many / one:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
