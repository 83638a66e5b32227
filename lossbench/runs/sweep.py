"""Sweeps: a grid of configs from one file, trained stacked, in parallel, resumably.

The grid (`config.grid.expand`) gives every member as a validated config. All members share the
config's `name`, so a sweep writes `results/<name>/<run_id>/` per member (exactly as a single run
does), `sweep.yaml` (the sweep's config), `sweep.csv` (the table, one row per grid point with each result's
mean and 95% interval over the seeds, `runs.table`) and `runs.csv` (a row per run). Members whose
finished runs are already there are reused, so rerunning an interrupted sweep computes only what
is missing.

How members are computed (`runs.members`): those that differ only in seed, learning rate, init
and target loss are stacked into one model; each stack (or plain run) is one task for a pool of
worker processes with one torch thread each (`lossbench.workers`), or for a Ray cluster with
`--backend ray` (`runs.cluster`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import yaml

from .. import workers as worker_pool
from ..config.grid import fixed_part, swept_keys
from ..config.schema import Config
from ..errors import UserError
from .members import failed, on_plain_loop, plan_groups, run_group
from .table import answer, csv_text, format_table, run_table, table


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


def _compute(groups, root, workers, backend, address, bar) -> list:
    """Run every group; returns [(group, records)] in completion order.

    On an interrupt (Ctrl-C, SIGTERM) every worker is told to stop and waited for, so none is left
    running; queued groups are cancelled (`lossbench.workers`).
    """
    if backend == "ray":
        from . import cluster

        return cluster.compute(groups, root, workers, address, bar)
    done = []
    if workers <= 1 or len(groups) == 1:
        for g in groups:
            done.append((g, run_group(g, root, None)))
            bar.update(len(g))
        return done
    with worker_pool.pool(min(workers, len(groups))) as executor:
        futures = {worker_pool.submit(executor, run_group, g, root, 1): g for g in groups}
        for g, fut in worker_pool.finished(futures):
            try:
                records = fut.result()
            except Exception as e:  # a worker died (killed, out of memory): record, go on
                records = [failed(c, root, f"worker process failed: {e!r}") for c in g]
            done.append((g, records))
            bar.update(len(g))
    return done


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
    configs = configs if batch else on_plain_loop(configs)
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
        # only the missing members: a member's bits do not depend on its stack-mates
        groups = plan_groups(todo, workers)
        root = os.path.abspath(out)
        bar = tqdm(
            total=len(todo),
            desc=configs[0].name,
            unit="run",
            mininterval=0.5,
            disable=not (progress and sys.stderr.isatty()),
        )
        try:
            for g, recs in _compute(groups, root, workers, backend, address, bar):
                for cfg, (summary, _, error) in zip(g, recs):
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


@dataclass
class Sweep:
    """What `run_sweep` did: the members, their records (see `execute_all`), the table (one row per
    grid point, `runs.table`), its answer in words, the files (sweep.csv: the table, runs.csv: a
    row per run)."""

    configs: list[Config]
    records: list[dict]
    header: list[str]
    rows: list[list]
    answer: list[str]
    csv_path: str

    def __str__(self) -> str:
        """The table as the terminal shows it, its answer, how many runs were reused and computed,
        the files."""
        runs_csv = os.path.join(os.path.dirname(self.csv_path), "runs.csv")
        return "\n".join(
            [format_table(self.header, self.rows), *self.answer, self.counts()]
            + [f"sweep table: {self.csv_path}", f"a row per run: {runs_csv}"]
        )

    def counts(self) -> str:
        """One line: how many runs were reused, computed, diverged, failed."""
        n, n_reused = len(self.records), sum(r["reused"] for r in self.records)
        n_failed = sum(bool(r["error"]) for r in self.records)
        n_diverged = sum((r["summary"] or {}).get("status") == "diverged" for r in self.records)
        line = f"{n} runs: {n_reused} reused, {n - n_reused} computed"
        if n_diverged:
            line += f", {n_diverged} diverged"
        if n_failed:
            line += f", {n_failed} failed (their summary.json holds the error)"
        return line

    def failures(self) -> list[str]:
        """Each failed member's folder and the last line of its error (the whole: its summary.json)."""
        return [
            f"{r['folder'] or cfg.name}: {(str(r['error']).strip().splitlines() or ['?'])[-1]}"
            for cfg, r in zip(self.configs, self.records)
            if r["error"]
        ]


def run_sweep(
    raw: dict,
    configs: list[Config],
    out: str = "results",
    *,
    source: str = "config",
    force: bool = False,
    workers: int | None = None,
    batch: bool = True,
    progress: bool = True,
    backend: str = "local",
    address: str | None = None,
) -> Sweep:
    """Run the members `configs` (`expand(raw)`) of a config with a `sweep:` block: check the
    folder, write sweep.yaml, run, write sweep.csv (the table) and runs.csv (a row per run)."""
    from .store import atomic_write

    configs = configs if batch else on_plain_loop(configs)
    swept = swept_keys(raw["sweep"])
    folder = os.path.join(out, configs[0].name)
    if not force:
        check_folder(folder, configs, swept, source)
    write_sweep_yaml(folder, raw, configs, swept)
    records = execute_all(
        configs,
        out,
        workers=workers,
        progress=progress,
        force=force,
        backend=backend,
        address=address,
    )  # (configs are on the plain loop already where batch is off)
    run_header, run_rows = run_table(configs, records, swept)
    atomic_write(os.path.join(folder, "runs.csv"), csv_text(run_header, run_rows).encode())
    summaries = [r["summary"] or {} for r in records]
    header, rows = table([c.to_dict() for c in configs], summaries, swept)
    csv_path = os.path.join(folder, "sweep.csv")
    atomic_write(csv_path, csv_text(header, rows).encode())
    words = answer(header, rows, len([k for k in swept if k != "seed"]))
    return Sweep(configs, records, header, rows, words, csv_path)
