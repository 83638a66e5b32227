"""What the per-layer recording costs: lossbench's training loop against a bare PyTorch loop.

Both train the same model (same init), on the same data, in the same batches, for the same steps, in
this process, one torch thread. The bare loop is forward, loss, backward, step and nothing else. The
lossbench loop also reads every layer every `log_every` steps, evaluates the validation set, keeps
the running loss and accuracy, and appends the rows to a metrics file. Prints the time ratio.

    python bench/bench_engine.py            # default logging settings
    python bench/bench_engine.py --log-every 1

How to read it. Each loop is timed `--repeats` times, in back-to-back pairs in alternating order. On
a shared machine other processes only ever add time, so the headline is the ratio of the two best
times (what `timeit` recommends: the minimum is the run least disturbed). The median of the pairs'
ratios and its interquartile range show the spread, and `bare/bare` times two identical bare loops
the same way: the noise floor, which is 1.000 by construction for the best times and shows how far
apart identical work lands for the median.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from lossbench.config.validate import build
from lossbench.engine.model import build_model
from lossbench.engine.train import prepare, train
from lossbench.runs.store import RunWriter

BUILTIN_LOSS = {
    "bce": torch.nn.functional.binary_cross_entropy_with_logits,
    "cross_entropy": torch.nn.functional.cross_entropy,
}


def bare_loop(cfg) -> float:
    """The baseline: the same model, data and batches, no reading, no logging."""
    start = time.process_time()  # timed from data and model setup, as lossbench's train() is
    torch.manual_seed(cfg.seed)
    d = prepare(cfg)
    x, y = d["x"], d["y"]
    model = build_model(cfg, torch.Generator().manual_seed(cfg.seed + 1))
    opt = torch.optim.SGD(
        model.parameters(), lr=cfg.optim.kwargs["lr"], momentum=cfg.optim.kwargs["momentum"], foreach=False
    )
    batch, per_epoch, n_steps = cfg.plan(len(x))
    shuffle = torch.Generator().manual_seed(cfg.seed + 2)
    for step in range(n_steps):
        if step % per_epoch == 0:
            order = torch.randperm(len(x), generator=shuffle)
        idx = order[(step % per_epoch) * batch : (step % per_epoch + 1) * batch]
        z = model(x[idx])
        loss = BUILTIN_LOSS[cfg.loss.name](z, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.process_time() - start


def lossbench_loop(cfg) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        writer = RunWriter(tmp + "/run", cfg)
        start = time.process_time()
        train(cfg, log=writer.log)
        elapsed = time.process_time() - start
        writer.close()
    return elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--log-every", type=int, default=None, help="default: lossbench's default")
    p.add_argument("--repeats", type=int, default=21)
    args = p.parse_args()
    torch.set_num_threads(1)
    moons = {"data": {"name": "moons", "n_samples": 1000}, "loss": "bce"}
    cases = {  # the small nets are the hard case: a reading costs about as much as a whole step
        "moons d3 w32 b64": {**moons, "model": {"depth": 3, "width": 32, "activation": "relu"}},
        "moons d8 w32 b64 sigmoid": {**moons, "model": {"depth": 8, "width": 32, "activation": "sigmoid"}},
        "moons d5 w16 b64 tanh": {**moons, "model": {"depth": 5, "width": 16, "activation": "tanh"}},
        "mnist_like d3 w128 b64 CE": {
            "data": {"name": "mnist_like", "n_samples": 1000},
            "loss": "cross_entropy",
            "model": {"depth": 3, "width": 128, "activation": "relu"},
        },
    }
    print(
        f"{'case':<28}{'steps':>7}{'bare s':>9}{'lossbench s':>13}{'ratio':>8}"
        f"{'pair median':>13}{'IQR':>12}{'bare/bare':>11}"
    )
    for label, spec in cases.items():
        raw = {
            "name": "bench",
            "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
            "train": {"epochs": 30, "batch_size": 64},
            **spec,
        }
        if args.log_every:
            raw["train"]["log_every"] = args.log_every
        cfg = build(raw)
        bare_loop(cfg), lossbench_loop(cfg)  # warm up
        bare, ours, ratios, control = [], [], [], []
        for i in range(args.repeats):
            # back-to-back pairs in alternating order, so drifts in machine speed hit both alike
            if i % 2:
                o, b = lossbench_loop(cfg), bare_loop(cfg)
            else:
                b, o = bare_loop(cfg), lossbench_loop(cfg)
            bare.append(b), ours.append(o), ratios.append(o / b)
            control.append(bare_loop(cfg) / bare_loop(cfg))  # the noise floor: identical work
        q1, _, q3 = statistics.quantiles(ratios, n=4)
        print(
            f"{label:<28}{cfg.plan(len(prepare(cfg)['x']))[2]:>7}{min(bare):>9.3f}{min(ours):>13.3f}{min(ours) / min(bare):>8.3f}"
            f"{statistics.median(ratios):>13.3f}{f'{q1:.2f}-{q3:.2f}':>12}{statistics.median(control):>11.3f}"
        )
    print(
        f"(log_every = {cfg.train.log_every}; CPU seconds, best of {args.repeats}; ratio = best lossbench / "
        f"best bare, the target is at most 1.05; pair median = median of the {args.repeats} back-to-back "
        "pairs' ratios, IQR its interquartile range; bare/bare = that median for two identical bare loops, "
        "the noise floor)"
    )


if __name__ == "__main__":
    main()
