"""The edit-run-look loop: each command's wall time against its floor, as ratios (issue 13).

Every row is a fresh `python -m lossbench ...` process (best wall time of `--repeats`), and every
floor is measured in this same run: the bare `import torch` and `import matplotlib.pyplot`
processes, and the bare training (the same configs trained in this process after the imports,
writing nothing). Each row gives wall time and CPU seconds (the command and its workers): on a
shared machine other load stretches the wall times, much less the CPU times. Targets (wall time),
on the 2-core machine:

- a finished run reused: at most the torch import + 0.5 s;
- `validate` of one config: at most the torch import + 0.5 s; of a 16-seed sweep: at most 1.5x one;
- a 16-seed stacked sweep (depth 5, width 16): at most 3x (torch import + its training);
- a fresh `run` of the quickstart: at most the torch import + its training + 0.5 s;
- `plot` of one run: at most the matplotlib import + 0.8 s (and 2 CPU s); of the 27-run
  `configs/sweep_activations.yaml`: at most 3 s; `plot` and `report` of a results folder of 150
  runs: at most 15 s each;
- `watch`: from saving the quickstart config to the first new point on the page (the live view's
  first row of the new training): at most 1 s; to the page's refreshed figures: at most 2 s.

    python bench/bench_loop.py              # about 3 minutes on a 2-core machine
    python bench/bench_loop.py --repeats 1  # quicker, noisier
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}

MANY = {  # a results folder of 150 small runs: 3 activations x 50 seeds, stacked
    "name": "many",
    "data": {"name": "moons", "n_samples": 200},
    "model": {"depth": 2, "width": 8},
    "loss": "bce",
    "optim": {"name": "sgd", "lr": 0.1},
    "train": {"epochs": 5, "batch_size": 32, "log_every": 5},
    "sweep": {"model.activation": ["sigmoid", "tanh", "relu"], "seeds": 50},
}

SEEDS = {  # bench_sweep.py's 16-seed case
    "name": "bench_seeds",
    "data": {"name": "moons", "n_samples": 1000},
    "model": {"depth": 5, "width": 16, "activation": "sigmoid"},
    "loss": "bce",
    "optim": {"name": "sgd", "lr": 0.5, "momentum": 0.9},
    "train": {"steps": 300, "batch_size": 64},
    "sweep": {"seeds": 16},
}


LAST = {"cpu": float("nan")}
"""The best CPU seconds (user + system, the command and its worker processes) of the last `wall`
call: other load on a shared machine stretches wall times far more than CPU times."""


def wall(args: list[str], repeats: int, setup=None) -> float:
    """Best wall time of `repeats` runs of `python ARGS` (calling `setup()` before each)."""
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        if setup:
            setup()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], cwd=ROOT, env=ENV, check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        best_cpu = min(best_cpu, cpu)
    LAST["cpu"] = best_cpu
    return best


def lb(*args: str) -> list[str]:
    return ["-m", "lossbench", *args]


def bare_training(raw: dict, stacked: bool) -> float:
    """Seconds to train the sweep's members in this process, imports done, nothing written."""
    import torch

    from lossbench.config.grid import expand
    from lossbench.engine.stacked import train_stacked
    from lossbench.engine.train import train

    torch.set_num_threads(1)
    configs = expand(raw)
    start = time.perf_counter()
    if stacked:
        train_stacked(configs)
    else:
        for cfg in configs:
            train(cfg)
    return time.perf_counter() - start


def watch_refresh(tmp: str, repeats: int) -> tuple[float, float] | None:
    """Seconds from saving the quickstart config to the first row of the new training on the watch
    page's live view, and to a new figure version."""
    config = os.path.join(tmp, "watch.yaml")
    shutil.copy(os.path.join(ROOT, "configs", "quickstart.yaml"), config)
    proc = subprocess.Popen(
        [sys.executable, *lb("watch", config, "--out", os.path.join(tmp, "w"))],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = None
        for line in proc.stdout:
            if "http://127.0.0.1:" in line:
                url = line[line.index("http://") :].split()[0]
                break
        if url is None:
            return None

        def state():
            with urllib.request.urlopen(url.rstrip("/") + "/state.json", timeout=5) as r:
                return json.load(r)

        def wait_for(version):
            while True:
                s = state()
                if s["version"] >= version and not s["busy"]:
                    return s
                time.sleep(0.01)

        def first_live_row(gen):  # the page's own ask: rows of the next training, as soon as there are
            while True:
                with urllib.request.urlopen(f"{url.rstrip('/')}/live.json?gen={gen}&at=", timeout=30) as r:
                    live = json.load(r)
                if live["gen"] > gen and any(run["rows"]["step"] for run in live["runs"]):
                    return live["gen"]

        state0 = wait_for(1)
        version, gen = state0["version"], state0["live_gen"]
        best, best_live = float("inf"), float("inf")
        for i in range(repeats):
            text = open(config).read().replace(f"seed: {i}", f"seed: {i + 1}")
            start = time.perf_counter()
            with open(config, "w") as f:
                f.write(text)
            try:
                gen = first_live_row(gen)
                best_live = min(best_live, time.perf_counter() - start)
            except OSError:  # a watch without the live view (an older lossbench)
                best_live = float("nan")
            version = wait_for(version + 1)["version"]
            best = min(best, time.perf_counter() - start)
        return best_live, best
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    n = ap.parse_args().repeats
    tmp = tempfile.mkdtemp(prefix="bench_loop_")
    out = os.path.join(tmp, "results")
    seeds = os.path.join(tmp, "seeds.yaml")
    with open(seeds, "w") as f:
        yaml.safe_dump(SEEDS, f)
    quick = os.path.join(ROOT, "configs", "quickstart.yaml")
    sweep27 = os.path.join(ROOT, "configs", "sweep_activations.yaml")
    try:
        torch_s = wall(["-c", "import torch"], n)
        torch_cpu = LAST["cpu"]
        mpl_s = wall(["-c", "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot"], n)
        mpl_cpu = LAST["cpu"]
        rows = []

        def row(what, seconds, floor_name, floor, target, ok, cpu=None, floor_cpu=None):
            cpu = LAST["cpu"] if cpu is None else cpu
            floor_cpu = {"torch import": torch_cpu, "matplotlib import": mpl_cpu}.get(floor_name, floor_cpu)
            rows.append((what, seconds, floor_name, floor, target, ok, cpu, floor_cpu))
            print(f"{what:<42} {seconds:6.2f} s, {cpu:6.2f} CPU s", file=sys.stderr)

        quick_train = bare_training({**yaml.safe_load(open(quick)), "sweep": {"seeds": 1}}, stacked=False)
        s = wall(
            lb("run", quick, "--out", out, "--quiet"), n, setup=lambda: shutil.rmtree(out, ignore_errors=True)
        )
        row(
            "run the quickstart, fresh",
            *(
                s,
                "torch + training",
                torch_s + quick_train,
                "<= floor + 0.5 s",
                s <= torch_s + quick_train + 0.5,
            ),
            floor_cpu=torch_cpu + quick_train,
        )
        wall(lb("run", quick, "--out", out, "--quiet"), 1)  # train once; the rows reuse it
        s = wall(lb("run", quick, "--out", out, "--quiet"), n)
        row("run (a finished run reused)", s, "torch import", torch_s, "<= floor + 0.5 s", s <= torch_s + 0.5)
        v1 = wall(lb("validate", quick), n)
        row("validate one config", v1, "torch import", torch_s, "<= floor + 0.5 s", v1 <= torch_s + 0.5)
        v1_cpu = LAST["cpu"]
        v16 = wall(lb("validate", seeds), n)
        row("validate a 16-seed sweep", v16, "validate one", v1, "<= 1.5x", v16 <= 1.5 * v1, floor_cpu=v1_cpu)

        raw = yaml.safe_load(open(seeds))
        train_s = bare_training(raw, stacked=True)
        clean = lambda: shutil.rmtree(out, ignore_errors=True)  # noqa: E731
        s = wall(lb("run", seeds, "--out", out, "--quiet"), n, setup=clean)
        floor = torch_s + train_s
        row(
            "run a 16-seed sweep, stacked",
            *(s, "torch + training", floor, "<= 3x", s <= 3 * floor),
            floor_cpu=torch_cpu + train_s,
        )
        plain_s = bare_training(raw, stacked=False)
        s = wall(lb("run", seeds, "--out", out, "--quiet", "--no-batch"), 1, setup=clean)
        floor = torch_s + plain_s
        row(
            "the same, --no-batch",
            s,
            "torch + training",
            floor,
            "(none)",
            None,
            floor_cpu=torch_cpu + plain_s,
        )

        wall(lb("run", quick, "--out", out, "--quiet"), 1)
        s = wall(lb("plot", os.path.join(out, "quickstart"), "--out", os.path.join(tmp, "f1")), n)
        ok = s <= mpl_s + 0.8 and LAST["cpu"] <= 2
        row("plot one run", s, "matplotlib import", mpl_s, "<= floor + 0.8 s, 2 CPU s", ok)
        wall(lb("run", sweep27, "--out", out, "--quiet"), 1)
        sweep_dir = os.path.join(out, "sweep_activations")
        s = wall(lb("plot", sweep_dir, "--out", os.path.join(tmp, "f27")), n)
        row("plot the 27-run sweep", s, "matplotlib import", mpl_s, "<= 3 s", s <= 3)
        many = os.path.join(tmp, "many.yaml")
        with open(many, "w") as f:
            yaml.safe_dump(MANY, f)
        folder = os.path.join(tmp, "many_results")
        wall(lb("run", many, "--out", folder, "--quiet"), 1)
        s = wall(lb("plot", folder, "--out", os.path.join(tmp, "f150")), n)
        row("plot a results folder of 150 runs", s, "matplotlib import", mpl_s, "<= 15 s", s <= 15)
        s = wall(lb("report", folder, "--out", os.path.join(tmp, "report150")), n)
        row("report of the same folder", s, "matplotlib import", mpl_s, "<= 15 s", s <= 15)
        times = watch_refresh(tmp, n)
        if times is not None:
            nan = float("nan")
            row("watch: save to the first live point", times[0], "-", 1.0, "<= 1 s", times[0] <= 1, nan, nan)
            row("watch: save to refreshed figures", times[1], "-", 1.0, "<= 2 s", times[1] <= 2, nan, nan)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nfloors: torch import {torch_s:.2f} s, matplotlib import {mpl_s:.2f} s (best of {n})")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print("| what | wall time | floor | ratio | CPU s | floor CPU s | CPU ratio | target (wall) | met |")
    print("|---|---|---|---|---|---|---|---|---|")
    for what, s, floor_name, floor, target, ok, cpu, floor_cpu in rows:
        met = "-" if ok is None else ("yes" if ok else "**no**")
        ratio = f"{s / floor:.2f}" if floor_name != "-" else "-"
        print(
            f"| {what} | {s:.2f} s | {floor_name} {floor:.2f} s | {ratio} | {cpu:.2f} | {floor_cpu:.2f} "
            f"| {cpu / floor_cpu:.2f} | {target} | {met} |"
        )


if __name__ == "__main__":
    main()
