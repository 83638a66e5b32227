"""Computing a sweep's members: which are stacked into one model, and one task (a stack or a plain
run) as a worker, a Ray task or the main process computes it.

Members that differ only in seed, learning rate, init and target loss are stacked into one model
(`engine.stacked`); a stack, or a plain run when it cannot be stacked or `--no-batch`, is one task.
"""

from __future__ import annotations

import copy
import json
import math
import os
import traceback
from typing import Any

from ..config.schema import RUN_FORMAT, Config

MAX_STACK = 64  # members per stacked model; past this a stack is arithmetic-bound anyway
MIN_SPLIT = 4  # a stack is split across idle workers only while both halves keep this many


def on_plain_loop(configs: list[Config]) -> list[Config]:
    """`--no-batch`: copies of the configs on the lesson loop (`train.engine: plain`), which agrees
    with the default engine to rounding only, so its runs have their own ids and folders."""
    plain = [copy.deepcopy(c) for c in configs]
    for c in plain:
        c.train.engine = "plain"
    return plain


def plan_groups(configs: list[Config], workers: int) -> list[list[Config]]:
    """Tasks for the workers: stacks of members sharing a `group_key`; a member on the plain loop
    (`train.engine: plain`) is a task of its own.

    Whether a stack's optimizer can really be stacked is asked by the worker (`run_group`).
    """
    from ..engine.stacked import group_key

    by_key: dict[str, list] = {}
    groups = [[c] for c in configs if c.train.engine == "plain"]
    for c in configs:
        if c.train.engine != "plain":
            by_key.setdefault(group_key(c), []).append(c)
    for g in by_key.values():
        limit = MAX_STACK if len(g) == 1 else min(MAX_STACK, _stack_limit(g[0], workers))
        n_chunks = math.ceil(len(g) / limit)
        size = math.ceil(len(g) / n_chunks)
        groups += [g[i : i + size] for i in range(0, len(g), size)]
    while len(groups) < workers:  # leave no worker idle while a stack could be shared
        big = max(groups, key=len)
        if len(big) < 2 * MIN_SPLIT:
            break
        groups.remove(big)
        groups += [big[: len(big) // 2], big[len(big) // 2 :]]
    return sorted(groups, key=len, reverse=True)


def _stack_limit(cfg: Config, workers: int) -> int:
    """The most members a stack of `cfg`'s shape may hold: a stack needs each member's memory, and
    `workers` stacks train at once, so together they stay within the memory budget."""
    from ..components.data import make
    from ..config.memory import memory_budget, memory_estimate

    try:
        per_member = memory_estimate(cfg, make(cfg.data.name, cfg.data.kwargs, cfg.seed))
    except Exception:  # noqa: BLE001 (the run reports its own trouble; here only a size is wanted)
        return MAX_STACK
    return max(1, memory_budget() // max(1, per_member * max(1, workers)))


def failed(cfg: Config, root: str, error: BaseException | str) -> tuple[dict, str, str | None]:
    """Record a member that raised: its folder's summary.json says `failed` with the error.

    Written only under the run's lock and only into a folder that is free or lossbench's own run:
    never into a run another process is writing, nor over a user's folder.
    """
    from .journal import RunBusy, hold, release
    from .store import atomic_write, is_own_run_folder, run_dir

    folder = run_dir(root, cfg)
    text = error if isinstance(error, str) else "".join(traceback.format_exception_only(type(error), error))
    summary: dict[str, Any] = {
        "format": RUN_FORMAT,
        "status": "failed",
        "error": text.strip(),
        "seed": cfg.seed,
        "name": cfg.name,
        "run_id": os.path.basename(folder),
    }
    if isinstance(error, RunBusy):
        summary["error"] = error.problems[0][1]
        return summary, folder, summary["error"]
    try:
        os.makedirs(os.path.dirname(folder), exist_ok=True)
        lock = hold(folder)
    except (OSError, RunBusy):
        return summary, folder, summary["error"]
    try:
        if (
            not os.path.exists(folder)
            or not os.listdir(folder)
            or is_own_run_folder(folder, summary["run_id"])
        ):
            os.makedirs(folder, exist_ok=True)
            atomic_write(os.path.join(folder, "summary.json"), json.dumps(summary, indent=2).encode())
    except OSError:
        pass
    finally:
        release(lock)
    return summary, folder, summary["error"]


def run_group(cfgs: list[Config], root: str, threads: int | None = 1) -> list[tuple[dict, str, str | None]]:
    """Compute one task: a stack (members sharing a `group_key`) or a plain run. Runs in a worker
    or a Ray task. Returns (summary, folder, error or None) per member.

    Every member is locked first; one that another process is writing is left to it (recorded with
    an error, its folder untouched) and the others are stacked without it: a member's numbers do not
    depend on its stack-mates. Members the stacked engine cannot train (`can_stack`), or whose stack
    raises, run one by one (`runner.execute`: a stack of one, the same computation, or the plain
    loop where the config asks for it or its optimizer cannot be stacked); a member that still
    raises is recorded as failed.
    """
    import torch

    from ..engine.stacked import can_stack
    from .journal import RunBusy, hold, release
    from .runner import execute, run_stacked
    from .store import run_dir

    if threads:
        torch.set_num_threads(threads)
    records: dict[int, tuple[dict, str, str | None]] = {}
    locks, mine = [], []
    try:
        for i, cfg in enumerate(cfgs):
            try:
                os.makedirs(os.path.dirname(run_dir(root, cfg)), exist_ok=True)
                locks.append(hold(run_dir(root, cfg)))
                mine.append(i)
            except (RunBusy, OSError) as e:
                records[i] = failed(cfg, root, e)
        if mine and can_stack(cfgs):
            try:
                for i, (summary, folder) in zip(mine, run_stacked([cfgs[i] for i in mine], root)):
                    records[i] = (summary, folder, None)
                mine = []
            except KeyboardInterrupt:
                raise
            except Exception:  # one member's trouble must not take the stack down: retry them plainly
                pass
        for i in mine:
            try:
                summary, folder, _ = execute(cfgs[i], root, force=True)
                records[i] = (summary, folder, None)
            except KeyboardInterrupt:
                raise
            except Exception as e:
                records[i] = failed(cfgs[i], root, e)
    finally:
        for lock in locks:
            release(lock)
    return [records[i] for i in range(len(cfgs))]
