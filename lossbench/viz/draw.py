"""Figures drawn in parallel worker processes (plot, compare, report, watch).

Every figure job (`figures.figure_jobs`) is a pure call, groups in and a Figure out, so each can
be drawn and rendered to bytes in any process. Where the operating system can fork
(Linux), the workers are forked after matplotlib is loaded and a first figure rendered here, so
they start in milliseconds with the fonts already read, and only the finished bytes travel back.
Elsewhere, with one core, or for a single figure, they are drawn here one after the other: the
same function calls, the same bytes.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # tqdm loads when a bar is made
    from tqdm import tqdm

from .. import workers as worker_pool
from .canvas import _figure, render

_JOBS: list = []
"""The jobs of the current `draw` call: forked workers read them from their copy of memory."""


def _draw_one(job: int, k: int, fmt: str) -> bytes | None:
    return _draw_sent(_JOBS[job][k], fmt)


def _warm_up() -> None:
    """Load matplotlib and render one small figure, so forked workers inherit fonts and caches."""
    fig = _figure(1, 1)
    ax = fig.subplots()
    ax.set_xlabel("$x$ layer")
    ax.set_yscale("log")
    fig.savefig(io.BytesIO(), format="png")


def can_fork() -> bool:
    """Forking is safe here: Linux (macOS's system libraries are not fork-safe; Windows has none).

    The workers only run matplotlib and numpy, never torch, so a parent that loaded torch is no
    hazard to them (a forked copy that runs torch ops can hang in its thread pools).
    """
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def pool(workers: int | None = None) -> ProcessPoolExecutor | None:
    """A lasting pool of forked drawing workers (watch; end it with `workers.stop`): started now,
    before torch runs and before other threads start, and each `draw(..., pool=)` sends them its
    figure jobs. None when forking is not safe here or there is one core."""
    workers = workers or os.cpu_count() or 1
    if workers <= 1 or not can_fork():
        return None
    _warm_up()
    executor = worker_pool.start(workers, "fork")
    worker_pool.submit(executor, int).result()  # a fork pool starts all its workers at the first task
    return executor


def _draw_sent(job: tuple, fmt: str) -> bytes | None:
    _, fn, groups, options = job
    fig = fn(groups, **options)
    return None if fig is None else render(fig, fmt)


def draw(
    jobs: list[list[tuple]],
    fmt: str = "png",
    workers: int | None = None,
    bar: tqdm | None = None,
    pool: ProcessPoolExecutor | None = None,
) -> list[dict]:
    """Every figure of every list of figure jobs (`figure_jobs(groups)`): {file name: bytes} each.

    Figures with no data to draw are left out; the names keep the jobs' order. `bar`, a tqdm bar,
    advances once per job. Without a `pool`, workers (default: one per core) are forked for this
    call when `can_fork()`, else the figures are drawn here.
    """
    global _JOBS
    tasks = [(i, k) for i, figure_jobs in enumerate(jobs) for k in range(len(figure_jobs))]
    workers = min(workers or os.cpu_count() or 1, len(tasks))
    done: dict[tuple, bytes | None] = {}
    _JOBS = jobs
    try:
        if pool is not None:
            _collect(
                {worker_pool.submit(pool, _draw_sent, jobs[i][k], fmt): (i, k) for i, k in tasks},
                done,
                bar,
            )
        elif workers <= 1 or not can_fork():
            for i, k in tasks:
                done[i, k] = _draw_one(i, k, fmt)
                bar and bar.update(1)
        else:
            _warm_up()
            with worker_pool.pool(workers, "fork") as forked:
                _collect(
                    {worker_pool.submit(forked, _draw_one, i, k, fmt): (i, k) for i, k in tasks},
                    done,
                    bar,
                )
    finally:
        _JOBS = []
    return [
        {job[0]: done[i, k] for k, job in enumerate(figure_jobs) if done[i, k] is not None}
        for i, figure_jobs in enumerate(jobs)
    ]


def _collect(futures: dict, done: dict, bar) -> None:
    try:
        for key, future in worker_pool.finished(futures):
            done[key] = future.result()
            bar and bar.update(1)
    except BaseException:
        for future in futures:
            future.cancel()
        raise
