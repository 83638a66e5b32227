"""Sweeps: a grid of configs from one file, trained stacked, in parallel, resumably.

A config's `sweep:` block maps dotted config keys to lists of values, plus `seeds: N` (seeds
seed..seed+N-1) or `seeds: [..]`; the grid is their product, seeds innermost:

    sweep: {model.activation: [sigmoid, tanh, relu], model.depth: [2, 5], seeds: 5}

Every grid point is validated before anything trains. All members share the config's `name`, so a
sweep writes `results/<name>/<run_id>/` per member (exactly as a single run does), `sweep.yaml` (the
sweep's config) and `sweep.csv` (the table). Members whose finished runs are already there are
reused, so rerunning an interrupted sweep computes only what is missing.

How members are computed: those that differ only in seed, learning rate, init and target loss are
stacked into one model (`lossbench.batched`); each stack (or plain run, when it cannot be stacked or
`--no-batch`) is one task for a pool of worker processes with one torch thread each, or for a Ray
cluster with `--backend ray`.
"""

from __future__ import annotations

import copy
import csv
import io
import itertools
import json
import math
import os
import re
import sys
import traceback
from typing import Any

import yaml

from ..config.overrides import COMPONENT_KEYS
from ..config.schema import Config, Seed
from ..config.validate import build, check_value
from ..config.yaml_io import flatten
from ..errors import UserError

SWEEP_LIMIT = 5000
"""Largest grid run without `--allow-large`: a bigger one is more likely a typo than a plan."""
MAX_STACK = 64  # members per stacked model; past this a stack is arithmetic-bound anyway
MIN_SPLIT = 4  # a stack is split across idle workers only while both halves keep this many
MAX_PROBLEMS = 20


# ----- the grid -------------------------------------------------------------------------------


def _fmt(value) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(", ", ": "))
    return str(value)


def _point_text(point) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in point)


def _set(raw: dict, key: str, value) -> None:
    """Set dotted `key` in `raw` (a fresh copy), turning `loss: huber` into `{name: huber}` on the way."""
    node, parts = raw, key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if isinstance(child, str) and tuple(parts[: i + 1]) in COMPONENT_KEYS:
            child = {"name": child}
        elif child is None:
            child = {}
        elif not isinstance(child, dict):
            raise UserError([(f"sweep.{key}", f"{'.'.join(parts[: i + 1])} is {child!r}, not a mapping")])
        else:
            child = dict(child)
        node[part] = child
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def _related(path: str, key: str) -> bool:
    return path == key or path.startswith(key + ".") or key.startswith(path + ".")


def _axes(sweep: dict, base: dict, problems: list) -> tuple[list, list | None]:
    """The sweep block as [(key, values)] and the seed list (None: each member keeps the config's seed)."""
    axes, seeds = [], None
    for key, values in sweep.items():
        path = f"sweep.{key}"
        if key == "seeds":
            base_seed = base.get("seed", 0)
            if isinstance(values, int) and not isinstance(values, bool):
                if values < 1:
                    problems.append((path, f"must be at least 1, got {values}"))
                elif isinstance(base_seed, int) and not isinstance(base_seed, bool):
                    seeds = [base_seed + i for i in range(values)]
            elif isinstance(values, list) and values:
                seeds = []
                for v in values:
                    seeds.append(check_value(path, v, Seed, problems))
                if len(set(map(repr, seeds))) != len(seeds):
                    problems.append((path, f"lists a seed twice: {values}"))
            else:
                problems.append(
                    (
                        path,
                        f"must be a number of seeds N (seeds seed..seed+N-1) or a non-empty list of "
                        f"integer seeds, got {values!r}",
                    )
                )
            continue
        if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
            problems.append(("sweep", f"{key!r} is not a dotted config key like model.depth"))
            continue
        if key.split(".")[0] in ("name", "sweep"):
            problems.append((path, "cannot be swept: every member of a sweep shares its name and folder"))
            continue
        if key == "seed" and "seeds" in sweep:
            problems.append((path, "give either seed or seeds, not both"))
            continue
        if not isinstance(values, list):
            problems.append(
                (
                    path,
                    f"must be a list of values to try, got {values!r}; a single value belongs in the config",
                )
            )
            continue
        if not values:
            problems.append((path, "is an empty list; give at least one value"))
            continue
        texts = [json.dumps(v, sort_keys=True, default=str) for v in values]
        twice = sorted({t for t in texts if texts.count(t) > 1})
        if twice:
            problems.append((path, f"lists {', '.join(twice)} more than once"))
            continue
        axes.append((key, values))
    for (a, _), (b, _) in itertools.combinations(axes, 2):
        if _related(a, b):
            problems.append((f"sweep.{b}", f"overlaps sweep.{a}; sweep one of them"))
    return axes, seeds


def grid_size(raw: dict) -> int:
    """Number of runs a raw config's sweep block asks for (1 without a sweep)."""
    sweep = raw.get("sweep") or {}
    n = 1
    for key, values in sweep.items():
        if key == "seeds":
            n *= values if isinstance(values, int) else len(values) if isinstance(values, list) else 1
        elif isinstance(values, list):
            n *= len(values)
    return n


def expand(
    raw: dict, source: str = "config", allow_large: bool = False, progress: bool = False
) -> list[Config]:
    """Every member of a raw config's sweep as a validated `Config`, in grid order (seeds innermost).

    Raises UserError naming the key path and the offending grid point for: a sweep that is not a
    mapping of lists, an empty list, an unknown key, a wrong type, a combination no valid config
    allows, two grid points giving one config, or a grid above `SWEEP_LIMIT` runs (unless
    `allow_large`). With `progress`, a bar counts the grid points on a terminal.
    """
    from .. import progress as progress_bar
    from .store import config_hash

    if not isinstance(raw, dict):
        raise UserError([("", f"a config must be a mapping of keys, got {type(raw).__name__}")], source)
    sweep = raw.get("sweep")
    if not isinstance(sweep, dict) or not sweep:
        raise UserError(
            [
                (
                    "sweep",
                    f"must be a mapping of dotted config keys to lists, e.g. "
                    f"{{model.depth: [2, 5], seeds: 3}}; got {sweep!r}",
                )
            ],
            source,
        )
    base = {k: v for k, v in raw.items() if k != "sweep"}
    problems: list[tuple[str, str]] = []
    axes, seeds = _axes(sweep, base, problems)
    if problems:
        raise UserError(problems, source)
    n = math.prod(len(v) for _, v in axes) * len(seeds or [None])
    if n > SWEEP_LIMIT and not allow_large:
        sizes = " x ".join([str(len(v)) for _, v in axes] + ([f"{len(seeds)} seeds"] if seeds else []))
        raise UserError(
            [
                (
                    "sweep",
                    f"the grid has {n} runs ({sizes}), more than the limit of {SWEEP_LIMIT}; "
                    "check it for a mistake, or pass --allow-large to run it",
                )
            ],
            source,
        )

    default_name = "run"
    if os.path.isfile(source):  # as config.load names a run after its file
        default_name = (
            re.sub(r"[^A-Za-z0-9_.+-]", "_", os.path.splitext(os.path.basename(source))[0]) or "run"
        )
    configs: list[Config] = []
    seen: dict[str, list] = {}  # run id -> the grid point that gave it
    found: dict[tuple[str, str], list] = {}  # (key path, message) -> the first grid point with it
    grid = list(itertools.product(*[v for _, v in axes]))
    for values in progress_bar.iterate(grid, "validate", "point", progress):
        point = list(zip([k for k, _ in axes], values))
        point_raw = copy.deepcopy(base)
        try:
            for key, value in point:
                _set(point_raw, key, value)
            cfg = build(point_raw, source, default_name)
        except UserError as e:
            for path, msg in e.problems:
                keys = [k for k, _ in point if _related(path, k)]
                where = f"sweep.{path}" if keys and path == keys[0] else path
                found.setdefault((where, msg), point)
            continue
        members = []
        for seed in seeds or [cfg.seed]:
            member = copy.deepcopy(cfg)
            member.seed = seed
            members.append(member)
        for member in members:
            run_id = config_hash(member.to_dict())
            if run_id in seen:
                problems.append(
                    (
                        "sweep",
                        f"grid points {_point_text(seen[run_id])} and {_point_text(point)} give the "
                        f"same config (seed {member.seed}); remove one of the values",
                    )
                )
            seen[run_id] = point
        configs += members
    for (where, msg), point in list(found.items())[:MAX_PROBLEMS]:
        problems.append((where, f"{msg} (grid point {_point_text(point) or 'the base config'})"))
    if len(found) > MAX_PROBLEMS:
        problems.append(("sweep", f"... and {len(found) - MAX_PROBLEMS} more problems"))
    if problems:
        raise UserError(problems, source)
    return configs


def swept_keys(sweep: dict) -> list[str]:
    """The dotted keys a sweep varies (`seed` for `seeds`)."""
    return ["seed" if k == "seeds" else k for k in sweep]


def lookup(resolved: dict, key: str) -> Any:
    """The value at dotted `key` in a resolved config (`model.activation.name` of `relu` is relu)."""
    node = resolved
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, str) and part == "name":
            return node
        else:
            return None
    if isinstance(node, dict) and "name" in node:
        extra = ", ".join(f"{k}={_fmt(v)}" for k, v in node.items() if k != "name")
        return f"{node['name']}({extra})" if extra else node["name"]
    return node


def fixed_part(resolved: dict, swept: list[str]) -> dict:
    """The resolved config's keys that the sweep does not vary (name and seed aside), flattened."""
    flat = flatten(resolved)
    skip = [*swept, "name", "seed"]
    fixed = {k: v for k, v in flat.items() if not any(_related(k, s) for s in skip)}
    return yaml.safe_load(yaml.safe_dump(fixed))  # as it reads back from sweep.yaml


# ----- the results folder -----------------------------------------------------------------------


def check_folder(folder: str, configs: list[Config], swept: list[str], source: str) -> None:
    """Refuse a results folder holding a sweep (or runs) of a different base config under this name."""
    from .store import read_run_yaml

    new = fixed_part(configs[0].to_dict(), swept)
    fix = (
        f"{folder} holds {{what}}; give this sweep another name (a `name:` key, or name=NEW on the "
        f"command line), another --out, or pass --force to run into it anyway"
    )
    path = os.path.join(folder, "sweep.yaml")
    olds = []
    if os.path.exists(path):
        try:
            saved = read_run_yaml(path)
            olds.append(("a sweep of a different base config", saved["fixed"]))
        except (OSError, UserError, TypeError, KeyError):
            raise UserError(
                [("", f"{path} is unreadable; delete it, or pass --force to replace it")], source
            ) from None
    elif os.path.isdir(folder):
        for entry in sorted(os.listdir(folder)):
            cfg_path = os.path.join(folder, entry, "config.yaml")
            try:
                old = read_run_yaml(cfg_path)
            except (OSError, UserError):
                continue
            if isinstance(old, dict):
                olds.append((f"runs of a different config (e.g. {entry})", fixed_part(old, swept)))
    for what, old in olds:
        diffs = sorted(k for k in set(old) & set(new) if old[k] != new[k])
        if diffs:
            problems = [(k, f"is {new[k]!r} here but {old[k]!r} in {folder}") for k in diffs[:10]]
            raise UserError([*problems, ("", fix.format(what=what))], source)


def write_sweep_yaml(folder: str, raw: dict, configs: list[Config], swept: list[str]) -> None:
    from .store import atomic_write

    os.makedirs(folder, exist_ok=True)
    text = yaml.safe_dump(
        {
            "name": configs[0].name,
            "n_runs": len(configs),
            "swept": swept,
            "config": raw,
            "fixed": fixed_part(configs[0].to_dict(), swept),
        },
        sort_keys=False,
    )
    atomic_write(os.path.join(folder, "sweep.yaml"), text.encode())


# ----- computing members ------------------------------------------------------------------------


def plan_groups(configs: list[Config], workers: int, batch: bool = True) -> list[list[Config]]:
    """Tasks for the workers: stacks of members sharing a `group_key`, or single plain runs.

    Whether a stack's optimizer can really be stacked is asked by the worker (`run_group`).
    """
    from ..engine.stacked import group_key

    if not batch:
        return [[c] for c in configs]
    by_key: dict[str, list] = {}
    for c in configs:
        by_key.setdefault(group_key(c), []).append(c)
    groups = []
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
    from ..config.validate import memory_budget, memory_estimate

    try:
        per_member = memory_estimate(cfg, make(cfg.data.name, cfg.data.kwargs, cfg.seed))
    except Exception:  # noqa: BLE001 (the run reports its own trouble; here only a size is wanted)
        return MAX_STACK
    return max(1, memory_budget() // max(1, per_member * max(1, workers)))


def _failed(cfg: Config, root: str, error: BaseException | str) -> tuple[dict, str, str | None]:
    """Record a member that raised: its folder's summary.json says `failed` with the error.

    Written only under the run's lock and only into a folder that is free or lossbench's own run:
    never into a run another process is writing, nor over a user's folder.
    """
    from .journal import RunBusy, hold, release
    from .store import atomic_write, is_own_run_folder, run_dir

    folder = run_dir(root, cfg)
    text = error if isinstance(error, str) else "".join(traceback.format_exception_only(type(error), error))
    summary: dict[str, Any] = {
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


def run_group(
    cfgs: list[Config],
    root: str,
    threads: int | None = 1,
    stack: bool = True,
    write: list[bool] | None = None,
) -> list[tuple[dict, str, str | None] | None]:
    """Compute one task: a stack (members sharing a `group_key`) or a plain run. Runs in a worker
    or a Ray task. Returns (summary, folder, error or None) per member written, None for the others.

    A stack is always computed whole, as the sweep planned it over all its members, and only the
    members in `write` (default: all) are written: the stacked engine steps every member at the
    stack's largest learning rate and scales each member's move to its own, so a member's last bits
    depend on its stack-mates, and a resumed sweep that trained only the missing members would not
    give the bits of an uninterrupted one. A stack costs little more than one member of it.
    Every member to write is locked first; one that another process is writing is left to it
    (recorded with an error, its folder untouched) and computed as one of the stack. Members the
    stacked engine cannot train exactly (`can_stack`), or whose stack raises, run one by one with
    the plain loop; a member that still raises is recorded as failed.
    """
    import torch

    from ..engine.stacked import can_stack
    from .journal import RunBusy, hold, release
    from .runner import execute, run_stacked
    from .store import run_dir

    if threads:
        torch.set_num_threads(threads)
    write = list(write) if write is not None else [True] * len(cfgs)
    records: dict[int, tuple[dict, str, str | None] | None] = {i: None for i, w in enumerate(write) if not w}
    locks, mine = [], []
    try:
        for i, cfg in enumerate(cfgs):
            if not write[i]:
                continue
            try:
                os.makedirs(os.path.dirname(run_dir(root, cfg)), exist_ok=True)
                locks.append(hold(run_dir(root, cfg)))
                mine.append(i)
            except (RunBusy, OSError) as e:
                records[i] = _failed(cfg, root, e)
        if mine and stack and can_stack(cfgs):
            try:
                mask = [i in mine for i in range(len(cfgs))]
                for i, pair in enumerate(run_stacked(cfgs, root, mask)):
                    if pair is not None:
                        records[i] = (pair[0], pair[1], None)
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
                records[i] = _failed(cfgs[i], root, e)
    finally:
        for lock in locks:
            release(lock)
    return [records[i] for i in range(len(cfgs))]


_busy = False  # whether this worker process is computing a task (see _on_sigterm)


def _init_worker(parent: int) -> None:
    """Set up a pool worker: one torch thread, and it ends with the sweep's main process.

    On Linux the kernel kills the worker when its parent dies, however it dies (prctl's parent-death
    signal); elsewhere a thread watches the parent. The main process stops a sweep by sending each
    worker SIGTERM (on Ctrl-C, SIGTERM or an error), so the terminal's SIGINT is ignored here.
    """
    import signal

    import torch

    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    _die_with_parent(parent)


def _die_with_parent(parent: int) -> None:
    import signal

    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    else:
        import threading
        import time

        def watch():
            while os.getppid() == parent:
                time.sleep(1)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # the parent died before the signal was set
        os._exit(1)


def _on_sigterm(signum, frame) -> None:
    """In a worker: stop the task in hand like Ctrl-C (its runs are marked interrupted), once."""
    import signal

    if not _busy:
        os._exit(0)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def _worker_task(cfgs: list[Config], root: str, stack: bool, write: list[bool]):
    """run_group in a pool worker; after an interrupt the worker ends instead of taking more work."""
    global _busy
    _busy = True
    try:
        return run_group(cfgs, root, 1, stack, write)
    except KeyboardInterrupt:
        os._exit(130)
    finally:
        _busy = False


def _compute(groups, root, workers, backend, address, bar, stack=True) -> list:
    """Run every group; returns [(group, records)] in completion order.

    On an interrupt (Ctrl-C, SIGTERM) every worker is told to stop and waited for, so none is left
    running; queued groups are cancelled.
    """
    done = []
    if backend == "ray":
        return _compute_ray(groups, root, workers, address, bar, stack)
    if workers <= 1 or len(groups) == 1:  # groups: (configs, which of them to write)
        for g, write in groups:
            done.append((g, run_group(g, root, None, stack, write)))
            bar.update(sum(write))
        return done
    import multiprocessing
    import signal
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(groups)),
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(os.getpid(),),
    )
    try:
        futures = {pool.submit(_worker_task, g, root, stack, w): (g, w) for g, w in groups}
        for fut in as_completed(futures):
            g, write = futures[fut]
            try:
                records = fut.result()
            except Exception as e:  # a worker died (killed, out of memory): record, go on
                records = [
                    _failed(c, root, f"worker process failed: {e!r}") if w else None for c, w in zip(g, write)
                ]
            done.append((g, records))
            bar.update(sum(write))
    except BaseException:
        for process in list(getattr(pool, "_processes", {}).values()):
            try:
                os.kill(process.pid, signal.SIGTERM)
            except OSError:
                pass
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return done


def _compute_ray(groups, root, workers, address, bar, stack=True) -> list:
    try:
        import ray
    except ImportError:
        raise UserError(
            [("--backend", "ray is not installed: pip install 'lossbench[ray]', or use --backend local")],
            "sweep",
        ) from None
    started = not ray.is_initialized()
    if started:
        if address:
            _connect_ray(ray, address)
        else:
            package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            pythonpath = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
            ray.init(
                num_cpus=max(1, workers),
                include_dashboard=False,
                log_to_driver=False,
                runtime_env={"env_vars": {"PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1"}},
            )
    done = []
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(run_group)
        refs = {task.remote(g, root, 1, stack, w): (g, w) for g, w in groups}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                g, write = refs[ref]
                try:
                    records = ray.get(ref)
                except Exception as e:
                    records = [
                        _failed(c, root, f"ray task failed: {type(e).__name__}: {e}") if w else None
                        for c, w in zip(g, write)
                    ]
                done.append((g, records))
                bar.update(sum(write))
    finally:
        if started:
            ray.shutdown()
    return done


RAY_CONNECT_TIMEOUT = 60.0  # seconds: a cluster answers in a few; past this, nothing will


def _connect_ray(ray, address: str) -> None:
    """`ray.init(address=...)` that fails with a message instead of waiting without end.

    First a plain TCP connection to HOST:PORT (10 s), so an address where nothing listens is
    refused at once; then ray.init itself in a thread, given RAY_CONNECT_TIMEOUT seconds.
    """
    import socket
    import threading

    problem = None
    if address != "auto":
        host, _, port = address.removeprefix("ray://").rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
        except OSError as e:
            problem = f"nothing answers at {address} ({e.strerror or e}); is the cluster started? "
        except ValueError:
            problem = f"{address} does not end in a port number; "
    if problem is None:
        outcome: list = []

        def connect():
            try:
                ray.init(address=address, log_to_driver=False)
                outcome.append(None)
            except Exception as e:  # noqa: BLE001 (shown to the user)
                outcome.append(e)

        thread = threading.Thread(target=connect, daemon=True)
        thread.start()
        thread.join(RAY_CONNECT_TIMEOUT)
        if not outcome:
            problem = f"no Ray cluster answered at {address} within {RAY_CONNECT_TIMEOUT:.0f} s; "
        elif outcome[0] is not None:
            problem = f"cannot join the Ray cluster at {address}: {outcome[0]}; "
    if problem:
        raise UserError(
            [("--address", problem + "`ray start --head` prints the address to give (HOST:6379)")], "sweep"
        )


def execute_all(
    configs: list[Config],
    out: str,
    workers: int | None = None,
    batch: bool = True,
    progress: bool = False,
    force: bool = False,
    backend: str = "local",
    address: str | None = None,
) -> list[dict]:
    """Compute (or reuse) every member; one record per config, in order.

    A record: {"summary", "folder", "reused", "error"}. Nothing raises for a member's failure.
    """
    from tqdm import tqdm

    from .store import read_summary, run_dir
    from .verify import reuse_check

    workers = workers or os.cpu_count() or 1
    records: list[dict | None] = [None] * len(configs)
    todo, notes = [], {}
    for i, cfg in enumerate(configs):
        folder = run_dir(out, cfg)
        reusable, note = (False, None) if force else reuse_check(folder, cfg)
        if reusable:
            records[i] = {"summary": read_summary(folder), "folder": folder, "reused": True, "error": None}
        else:
            todo.append(cfg)
            if note:
                notes[i] = note
                print(f"lossbench: note: {note}", file=sys.stderr)
    if todo:
        index = {id(c): i for i, c in enumerate(configs)}
        # planned over every member, so each stack is the one an uninterrupted sweep trains
        missing = {id(c) for c in todo}
        groups = [
            (g, [id(c) in missing for c in g])
            for g in plan_groups(configs, workers, batch)
            if any(id(c) in missing for c in g)
        ]
        root = os.path.abspath(out)
        bar = tqdm(
            total=len(todo),
            desc=configs[0].name,
            unit="run",
            mininterval=0.5,
            disable=not (progress and sys.stderr.isatty()),
        )
        try:
            for g, recs in _compute(groups, root, workers, backend, address, bar, batch):
                for cfg, rec in zip(g, recs):
                    if rec is None:  # a member computed only as one of its stack
                        continue
                    summary, _, error = rec
                    folder = run_dir(out, cfg)
                    records[index[id(cfg)]] = {
                        "summary": summary,
                        "folder": folder,
                        "reused": False,
                        "error": error,
                        "note": notes.get(index[id(cfg)]),
                    }
        finally:
            bar.close()
    return [r for r in records if r is not None]  # every slot is filled by now


def run_configs(
    configs: list[Config],
    out: str,
    workers: int | None = None,
    batch: bool = True,
    progress: bool = False,
    force: bool = False,
    backend: str = "local",
    address: str | None = None,
) -> list[tuple[dict, str]]:
    """Train (or reuse) configs into ordinary run folders under `out`; (summary, folder) per config.

    Configs that differ only in seed, lr, init and target loss are stacked; each stack or plain run
    is one task for `workers` processes (default: the number of cores). A member that fails has a
    summary with status `failed` and its `error`; the others are unaffected.
    """
    records = execute_all(configs, out, workers, batch, progress, force, backend, address)
    return [(r["summary"], r["folder"]) for r in records]


# ----- the sweep table --------------------------------------------------------------------------

TABLE_VALUES = [
    ("status", "status"),
    ("train_loss", "final_train_loss"),
    ("val_loss", "final_val_loss"),
    ("train_acc", "final_train_acc"),
    ("val_acc", "final_val_acc"),
    ("steps_to_target", "steps_to_target"),
    ("grad_ratio", "grad_ratio_first_last"),
    ("wall_time", "wall_time"),
]


def table(configs: list[Config], records: list[dict], swept: list[str]) -> tuple[list[str], list[list]]:
    """The sweep table: run id, swept values, then results; (header, rows)."""
    keys = [k for k in swept if k != "seed"] + ["seed"]
    summaries = [r["summary"] or {} for r in records]
    values = [(name, key) for name, key in TABLE_VALUES if any(s.get(key) is not None for s in summaries)]
    header = ["run_id", *keys, *[name for name, _ in values], "note"]
    rows = []
    for cfg, rec, s in zip(configs, records, summaries):
        resolved = cfg.to_dict()
        note = "reused" if rec["reused"] else "redone: did not verify" if rec.get("note") else ""
        if rec.get("error"):
            note = rec["error"].splitlines()[-1][:80]
        elif s.get("status") == "diverged":
            note = f"diverged at step {s.get('diverged_step')}"
        rows.append(
            [
                os.path.basename(rec["folder"]),
                *[lookup(resolved, k) for k in keys],
                *[s.get(key) for _, key in values],
                note,
            ]
        )
    return header, rows


def csv_text(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return buf.getvalue()


# columns the terminal table leaves out first when it would be wider than the terminal (sweep.csv keeps all)
DROP_FIRST = ("wall_time", "train_loss", "train_acc", "note", "status")
CELL_WIDTH = 28  # a longer value (a component with its arguments) is cut, with "..."


def format_table(header: list[str], rows: list[list], width: int = 100) -> str:
    """The table as aligned text at most `width` columns wide: long cells are cut and, if still too
    wide, the columns of DROP_FIRST are left out, in that order, with a line naming them."""

    def cell(v):
        if v is None:
            return "-"
        text = format(v, ".4g") if isinstance(v, float) else str(v)
        return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 3] + "..."

    cells = [header] + [[cell(v) for v in row] for row in rows]
    keep = list(range(len(header)))
    left_out = []

    def total():
        return sum(max(len(r[j]) for r in cells) for j in keep) + 2 * (len(keep) - 1)

    for name in DROP_FIRST:
        if total() <= width:
            break
        if name in header:
            keep.remove(header.index(name))
            left_out.append(name)
    widths = {j: max(len(r[j]) for r in cells) for j in keep}
    lines = ["  ".join(r[j].ljust(widths[j]) for j in keep).rstrip() for r in cells]
    if left_out:
        lines.append(f"(not shown, to fit {width} columns: {', '.join(left_out)}; all in sweep.csv)")
    return "\n".join(lines)


def run_sweep(
    raw: dict,
    source: str = "config",
    out: str = "results",
    *,
    force: bool = False,
    workers: int | None = None,
    batch: bool = True,
    progress: bool = True,
    backend: str = "local",
    address: str | None = None,
    allow_large: bool = False,
) -> int:
    """Run a config with a `sweep:` block: validate, check the folder, run, tabulate; returns the exit code."""
    from .store import atomic_write

    configs = expand(raw, source, allow_large=allow_large, progress=progress)
    swept = swept_keys(raw["sweep"])
    folder = os.path.join(out, configs[0].name)
    if not force:
        check_folder(folder, configs, swept, source)
    write_sweep_yaml(folder, raw, configs, swept)
    records = execute_all(
        configs,
        out,
        workers=workers,
        batch=batch,
        progress=progress,
        force=force,
        backend=backend,
        address=address,
    )
    header, rows = table(configs, records, swept)
    atomic_write(os.path.join(folder, "sweep.csv"), csv_text(header, rows).encode())
    print(format_table(header, rows))
    n_reused = sum(r["reused"] for r in records)
    n_failed = sum(bool(r["error"]) for r in records)
    n_diverged = sum((r["summary"] or {}).get("status") == "diverged" for r in records)
    line = f"{len(records)} runs: {n_reused} reused, {len(records) - n_reused} computed"
    if n_diverged:
        line += f", {n_diverged} diverged"
    if n_failed:
        line += f", {n_failed} failed (their summary.json holds the error)"
    print(f"{line}\nsweep table: {os.path.join(folder, 'sweep.csv')}")
    # each failure's last line, so a failed member is never a mystery (the whole text: its summary.json)
    for cfg, r in zip(configs, records):
        if r["error"]:
            lines = str(r["error"]).strip().splitlines() or ["?"]
            print(f"failed: {r['folder'] or cfg.name}: {lines[-1]}", file=sys.stderr)
    return 1 if n_failed else 0
