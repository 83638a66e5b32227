"""A sweep of 1000 tiny runs: peak memory while it runs, and the time to load its folder for plots.

1. Runs `python -m lossbench run SWEEP --out TMP --workers W` (the user's command) for a 100-run
   and a 1000-run grid of tiny configs (activation x learning rate x seeds), sampling the memory
   (RSS) of the command and its worker processes from /proc every 20 ms. Prints the peak of the
   sum, the peak of the main process, and the ratio 1000-run / 100-run: near 1 means memory does
   not grow with the number of runs (bounded).
2. In this process, loads the 1000-run sweep folder the way `lossbench plot` does before drawing
   (`plots.load_runs` + `plots.group_runs`): wall seconds and the memory it added.

    python bench/bench_load.py                 # about a minute or two on 2 cores
    python bench/bench_load.py --runs 300      # smaller
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

ACTIVATIONS = [
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "elu",
    "gelu",
    "silu",
    "softsign",
    "softplus",
    "identity",
]
LRS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]
SWEEP = {
    "name": "load",
    "data": {"name": "moons", "n_samples": 64},
    "model": {"depth": 2, "width": 4},
    "loss": "bce",
    "optim": {"name": "sgd"},
    "train": {"epochs": 2, "batch_size": 16, "log_every": 2},
    "sweep": {"model.activation": ACTIVATIONS, "optim.lr": LRS, "seeds": 10},
}


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, from /proc/<pid>/task/*/children."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return found


def run_sweep(n_runs: int, workers: int, out: str) -> dict:
    """Run an n_runs grid with the CLI; its wall time and peak memory (MiB)."""
    raw = copy.deepcopy(SWEEP)
    raw["sweep"]["seeds"] = n_runs // (len(ACTIVATIONS) * len(LRS))
    path = os.path.join(out, f"sweep{n_runs}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(raw, f)
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "lossbench", "run", path, "--out", os.path.join(out, f"r{n_runs}")]
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out_file:  # a file, not a pipe: the table is long
        proc = subprocess.Popen(
            [*cmd, "--workers", str(workers), "--quiet"], env=env, stdout=out_file, stderr=subprocess.STDOUT
        )
        peak_total = peak_main = 0
        while proc.poll() is None:
            peak_main = max(peak_main, rss_kib(proc.pid))
            peak_total = max(peak_total, sum(rss_kib(p) for p in descendants(proc.pid)))
            time.sleep(0.02)
        wall = time.perf_counter() - start
        out_file.seek(0)
        text = out_file.read()
    if proc.returncode != 0:
        sys.exit(f"the sweep failed ({proc.returncode}):\n{text[-2000:]}")
    last = text.strip().splitlines()[-2]
    return {"wall": wall, "peak_total": peak_total / 1024, "peak_main": peak_main / 1024, "line": last}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=1000, help="runs in the big sweep (a multiple of 100)")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as out:
        print(f"sweeps of tiny runs ({SWEEP['model']} on {SWEEP['data']}), {args.workers} workers:")
        sizes = [100, args.runs] if args.runs > 100 else [args.runs]
        results = {}
        for n in sizes:
            r = results[n] = run_sweep(n, args.workers, out)
            print(
                f"  {n:5d} runs: {r['wall']:6.1f} s wall, peak memory {r['peak_total']:7.1f} MiB "
                f"(main process {r['peak_main']:6.1f} MiB)   [{r['line']}]"
            )
        if len(sizes) == 2:
            ratio = results[args.runs]["peak_total"] / results[100]["peak_total"]
            print(f"  peak memory ratio {args.runs} runs / 100 runs: {ratio:.2f}")

        # loading the big sweep's folder the way `lossbench plot` does before drawing
        import torch  # noqa: F401  (imported before measuring, as plotting has it loaded anyway)

        from lossbench.viz.load import group_runs, load_runs

        folder = os.path.join(out, f"r{args.runs}", "load")
        n_files = sum(len(files) for _, _, files in os.walk(folder))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        runs = load_runs([folder])
        loaded = time.perf_counter() - start
        groups = group_runs(runs)
        grouped = time.perf_counter() - start
        added = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        print(
            f"loading {folder} ({len(runs)} runs, {n_files} files) for plotting: "
            f"load_runs {loaded:.2f} s, + group_runs {grouped:.2f} s ({len(groups)} groups), "
            f"peak memory +{added:.0f} MiB"
        )


if __name__ == "__main__":
    main()
