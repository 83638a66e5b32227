"""Sweeps at speed: the stacked engine against plain loops, a 300-run grid, and Lightning.

All timings in this process (and its worker processes for the grid), one torch thread each:

1. 16 seeds of one depth-5, width-16 sigmoid MLP, batch 64: the stacked engine (`lossbench.engine.stacked`,
   recording every layer) against 16 runs of lossbench's plain loop (`train.train`, recording the
   same) and 16 bare PyTorch loops (forward, loss, backward, step, nothing read). CPU seconds
   (`time.process_time`), best of `--repeats`, so other load on the machine counts less.
2. A 300-run grid (3 losses x 4 activations x 5 depths x 5 seeds, small data) through
   `sweep.run_configs` into a temporary folder, stacked and not: wall time and runs per second.
3. The same 16 runs with PyTorch Lightning logging `grad_norm` every step (when lightning imports).

    python bench/bench_sweep.py             # about 3 minutes on a 2-core machine
    python bench/bench_sweep.py --quick     # smaller, to check it works
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import tempfile
import time

import torch
from bench_engine import bare_loop  # forward, loss, backward, step: nothing read or logged (this folder)

from lossbench.config.grid import expand
from lossbench.config.validate import build
from lossbench.engine.model import build_model
from lossbench.engine.stacked import train_stacked
from lossbench.engine.train import prepare, train
from lossbench.runs.sweep import run_configs

SEEDS = {
    "name": "bench",
    "data": {"name": "moons", "n_samples": 1000},
    "model": {"depth": 5, "width": 16, "activation": "sigmoid"},
    "loss": "bce",
    "optim": {"name": "sgd", "lr": 0.5, "momentum": 0.9},
    "train": {"steps": 300, "batch_size": 64},
}

GRID = {
    "name": "bench_grid",
    "data": {"name": "moons", "n_samples": 200},
    "model": {"width": 16},
    "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
    "train": {"epochs": 10, "batch_size": 32},
    "sweep": {
        "loss.name": ["mse", "bce", "hinge"],
        "model.activation": ["sigmoid", "tanh", "relu", "leaky_relu"],
        "model.depth": [1, 2, 3, 4, 5],
        "seeds": 5,
    },
}


def seed_configs(n: int, steps: int):
    raw = copy.deepcopy(SEEDS)
    raw["train"]["steps"] = steps
    return [build({**raw, "seed": s}) for s in range(n)]


def cpu_time(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def lightning_loop(cfg, log_dir: str) -> None:
    """The same model and batches in a LightningModule that logs every layer's grad_norm each step."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.utilities import grad_norm

    d = prepare(cfg)
    model = build_model(cfg, torch.Generator().manual_seed(cfg.seed + 1))
    batch, _, n_steps = cfg.plan(len(d["x"]))

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = model

        def training_step(self, b, _):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(self.net(b[0]), b[1])
            self.log("loss", loss)
            return loss

        def on_before_optimizer_step(self, optimizer):
            self.log_dict(grad_norm(self.net, norm_type=2))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.5, momentum=0.9, foreach=False)

    data = torch.utils.data.TensorDataset(d["x"], d["y"])
    loader = torch.utils.data.DataLoader(
        data, batch_size=batch, shuffle=True, generator=torch.Generator().manual_seed(cfg.seed + 2)
    )
    trainer = L.Trainer(
        max_steps=n_steps,
        accelerator="cpu",
        devices=1,
        logger=CSVLogger(log_dir),
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(Module(), loader)


def bench_seeds(n_members: int, steps: int, repeats: int, with_lightning: bool) -> None:
    cfgs = seed_configs(n_members, steps)
    label = f"{n_members} seeds, depth 5 width 16 sigmoid, batch 64, {steps} steps"
    times = {"stacked (records every layer)": [], "lossbench plain loop x16 (same records)": []}
    times["bare PyTorch loop x16 (records nothing)"] = []
    for _ in range(repeats):
        times["stacked (records every layer)"].append(cpu_time(lambda: train_stacked(cfgs, logs=None)))
        times["lossbench plain loop x16 (same records)"].append(
            cpu_time(lambda: [train(c, log=lambda row: None) for c in cfgs])
        )
        times["bare PyTorch loop x16 (records nothing)"].append(
            cpu_time(lambda: [bare_loop(c) for c in cfgs])
        )
    best = {k: min(v) for k, v in times.items()}
    if with_lightning:
        import logging
        import warnings

        logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore")
        with tempfile.TemporaryDirectory() as tmp:
            n_l = min(n_members, 2)  # Lightning is slow: time 2 runs, scale to 16
            t = cpu_time(lambda: [lightning_loop(c, tmp) for c in cfgs[:n_l]])
        best["Lightning logging grad_norm x16 (2 timed, scaled)"] = t * n_members / n_l
    stacked = best["stacked (records every layer)"]
    print(f"\n1. {label} (CPU seconds, best of {repeats})")
    for name, t in best.items():
        ratio = "" if t is stacked else f"   stacked is {t / stacked:5.1f}x faster"
        print(f"   {name:<50}{t:8.2f} s{ratio}")


def bench_grid(quick: bool, workers: int) -> None:
    raw = copy.deepcopy(GRID)
    if quick:
        raw["sweep"] = {
            "loss.name": ["bce"],
            "model.activation": ["tanh", "relu"],
            "model.depth": [1, 3],
            "seeds": 3,
        }
    cfgs = expand(raw, "bench")
    print(
        f"\n2. grid of {len(cfgs)} runs ({raw['data']['name']} {raw['data']['n_samples']} points, "
        f"{raw['train']['epochs']} epochs), {workers} worker processes, wall time"
    )
    results = {}
    for batch in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            start, cpu = time.perf_counter(), time.process_time()
            out = run_configs(cfgs, tmp, workers=workers, batch=batch)
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (
                time.process_time()
                - cpu
                + (after.ru_utime + after.ru_stime)
                - (children.ru_utime + children.ru_stime)
            )
            assert all(s["status"] in ("finished", "diverged") for s, _ in out)
        results[batch] = wall
        name = "stacked" if batch else "one by one (--no-batch)"
        print(f"   {name:<28}{wall:8.1f} s wall {len(cfgs) / wall:7.1f} runs/s   ({cpu:.1f} CPU s in all)")
    print(f"   stacked is {results[False] / results[True]:.1f}x faster")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes, to check the script")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--skip", nargs="*", default=[], choices=["seeds", "grid", "lightning"])
    args = p.parse_args()
    torch.set_num_threads(1)
    try:
        import lightning  # noqa: F401

        with_lightning = "lightning" not in args.skip
    except ImportError:
        with_lightning = False
        print("lightning is not installed: the Lightning comparison is skipped")
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, 1 torch thread per process")
    if "seeds" not in args.skip:
        bench_seeds(16, 60 if args.quick else 300, 1 if args.quick else args.repeats, with_lightning)
    if "grid" not in args.skip:
        bench_grid(args.quick, args.workers)


if __name__ == "__main__":
    main()
