"""What batching buys the landscape: a 41 x 41 slice of the quickstart net over its training set,
and of the outliers' linear model.

`lossbench.engine.landscape` evaluates the slice's points in batches (the run's model under
`torch.func.vmap`, one batch of parameter sets per call); the baseline, in this process on the same
points, loads each point into the model and calls it once per point, as a plain loop would. Both
compute the training loss and the common metrics at every point (the losses checked equal); prints each one's best wall time and
best CPU time (all threads) of `--repeats`, and their ratios. On a shared machine the CPU time is
the steadier of the two: other processes stretch the wall time, not the work done.

    python bench/bench_landscape.py                 # the torch threads this machine gives
    python bench/bench_landscape.py --threads 2     # the "2 cores" of the issue
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

import lossbench
from lossbench.engine.landscape import Landscape, directions
from lossbench.engine.recording import prediction_metrics


def per_point(ls: Landscape, coeffs: np.ndarray, basis: torch.Tensor) -> np.ndarray:
    """The baseline: each point's weights copied into the model, then one forward pass, its loss and
    the common metrics (what the batches compute too)."""
    x, y, labels = ls.sets[""]
    out = []
    with torch.no_grad():
        for c in torch.as_tensor(coeffs):
            torch.nn.utils.vector_to_parameters((c @ basis).to(ls.dtype), ls.model.parameters())
            z = ls.model(x)[None]
            out.append(ls.losses(z, y[None]).item())
            prediction_metrics(z, labels[None], ls.cfg.task, ls.cfg.model.output)
    return np.array(out)


def bench(config: str, resolution: int, repeats: int) -> None:
    """Time both ways on one config's slice and print a block of results."""
    with tempfile.TemporaryDirectory() as out:
        run = lossbench.run(config, out=out, threads=None)
        ls = Landscape(run.path, run.config)
    basis = torch.cat([ls.theta_1[None], directions(ls, seed=0)])
    g = np.linspace(-1, 1, resolution)
    gx, gy = np.meshgrid(g, g)
    coeffs = np.stack([np.ones(gx.size), gx.ravel(), gy.ravel()], 1)
    ways = {
        "batched": lambda: ls.values(coeffs, basis, which=("",))["loss"],
        "per point": lambda: per_point(ls, coeffs, basis),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    values = {}
    for _ in range(repeats):
        for name, fn in ways.items():
            wall, cpu = time.perf_counter(), time.process_time()
            values[name] = fn()
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    np.testing.assert_allclose(values["batched"], values["per point"], rtol=1e-4)
    n_params, n_train = sum(ls.sizes), len(ls.sets[""][0])
    print(
        f"{resolution} x {resolution} slice of {config} ({n_params} parameters, {n_train} training "
        f"examples), {torch.get_num_threads()} torch threads, best of {repeats}:"
    )
    best = {name: [min(t[i] for t in ts) for i in (0, 1)] for name, ts in times.items()}
    for name, (wall, cpu) in best.items():
        print(f"  {name:10s} wall {wall:7.3f} s   cpu {cpu:7.3f} s")
    wall, cpu = (best["per point"][i] / best["batched"][i] for i in (0, 1))
    print(f"  ratio      wall {wall:7.1f}x   cpu {cpu:7.1f}x   (per point / batched)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--resolution", type=int, default=41)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for config in ("configs/quickstart.yaml", "configs/outliers.yaml"):
        bench(config, args.resolution, args.repeats)


if __name__ == "__main__":
    main()
