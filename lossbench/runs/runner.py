"""Running configs into their folders: `execute` (reuse or train, then write), `run_stacked` (a
stack of configs trained as one model) and the notebook `run`."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

from ..config.schema import Config
from ..errors import UserError
from .store import (
    Run,
    RunWriter,
    _missing_folders,
    check_writable,
    is_finished,
    load_run,
    read_summary,
    run_dir,
    versions,
)
from .verify import reuse_check


def execute(
    cfg: Config, root: str = "results", force: bool = False, progress: bool = False, folder: str | None = None
) -> tuple[dict, str, bool]:
    """Run `cfg` into its folder under `root` unless a finished run that verifies is there.

    Returns (summary, folder, reused). A finished run that does not verify is trained again, with a
    note on stderr. Raises RunBusy (a UserError) when another process is writing the same run. A
    KeyboardInterrupt is raised again after the folder records the run as interrupted.
    """
    from ..engine.train import predict_view

    folder = folder or run_dir(root, cfg)
    if not force:
        reusable, note = reuse_check(folder, cfg)
        summary = read_summary(folder) if reusable else None  # None: it vanished meanwhile
        if summary is not None:
            return summary, folder, True
        if note:
            print(f"lossbench: note: {note}", file=sys.stderr)
    created = _missing_folders(os.path.dirname(folder))
    writer = None
    try:
        writer = RunWriter(folder, cfg)
        finished = read_summary(folder) if not force and reuse_check(folder, cfg)[0] else None
        if finished is not None:  # another process finished it meanwhile
            writer.discard()
            return finished, folder, True
        summary, model, d, device = train_one(cfg, writer.log, progress)
        _stamp(summary, cfg, folder, device)
        view = predict_view(model, d) if model is not None else None
        writer.finish(summary, model, view, d["snapshots"])
    except OSError as e:
        # a full disk or a read-only folder: leave nothing half-written behind (a finished run
        # that was being replaced stays)
        if writer is not None:
            writer.discard()
        _remove_empty(created)
        raise UserError(
            [("results", f"cannot write {folder}: {e.strerror or e}; nothing was kept")], "results"
        ) from None
    except UserError:  # another process owns the run, or its path holds something else
        _remove_empty(created)
        raise
    finally:
        if writer is not None:
            writer.close()
    if summary["status"] == "interrupted":
        raise KeyboardInterrupt
    return summary, folder, False


def train_one(
    cfg: Config, log: Callable[[dict], object] | None, progress: bool = False
) -> tuple[dict, Any, dict, str]:
    """Train one config on its engine: (summary, model or None if diverged, data dict, device).

    `train.engine: stacked` (the default) is a stack of one, the very computation the config gets
    as a member of any sweep; `plain` is the lesson loop (`engine.train`). An optimizer the stack
    cannot step member by member (`stacked.can_stack`) takes the plain loop whatever the engine,
    alone and in a sweep alike.
    """
    from ..engine import stacked, train

    if stacked.can_stack([cfg]):
        summaries, net, ds = stacked.train_stacked([cfg], [log], progress)
        summary, d = summaries[0], ds[0]
        model = net.member_model(0, cfg) if summary["status"] != "diverged" else None
        return summary, model, d, str(net.params[0].device)
    summary, plain, d = train.train(cfg, log=log, progress=progress)
    model = plain if summary["status"] != "diverged" else None
    return summary, model, d, str(next(plain.parameters()).device)


def _stamp(summary: dict, cfg: Config, folder: str, device: str) -> None:
    """What a summary says about where it ran: seed, name, run id, device and versions."""
    summary.update(
        seed=cfg.seed, name=cfg.name, run_id=os.path.basename(folder), device=device, versions=versions()
    )


def run_stacked(cfgs: list[Config], root: str) -> list[tuple[dict, str]]:
    """Train a stack (`engine.stacked`) and write each member's folder exactly as `execute` writes
    it for the member alone (the same bits). Returns (summary, folder) per member. A
    KeyboardInterrupt is raised again after every folder records its member as interrupted.
    """
    from ..engine import stacked
    from ..engine.train import predict_view

    folders = [run_dir(root, c) for c in cfgs]
    writers: list[RunWriter] = []
    try:
        for folder, c in zip(folders, cfgs):
            writers.append(RunWriter(folder, c))
        summaries, net, ds = stacked.train_stacked(cfgs, logs=[w.log for w in writers])
        for m, (c, w, folder, summary) in enumerate(zip(cfgs, writers, folders, summaries)):
            _stamp(summary, c, folder, str(net.params[0].device))
            model = net.member_model(m, c) if summary["status"] != "diverged" else None
            view = predict_view(model, ds[m]) if model is not None else None
            w.finish(summary, model, view, ds[m]["snapshots"])
    finally:
        for w in writers:
            w.close()
    if any(s["status"] == "interrupted" for s in summaries):
        raise KeyboardInterrupt
    return list(zip(summaries, folders))


def _remove_empty(created: list[str]) -> None:
    """Remove the folders this call created (deepest first), each only when it is empty."""
    for path in created:
        try:
            os.rmdir(path)
        except OSError:
            pass


def run(
    config_or_path: str | dict | Config,
    out: str = "results",
    force: bool = False,
    threads: int | None = 1,
    **overrides: Any,
) -> Run:
    """Notebook API: run a config (a path, a mapping or a Config) and return the loaded `Run`.

    Overrides are given as keyword arguments with `__` for dots: `run("x.yaml", model__depth=4)`.
    `threads` sets torch's thread count for the process (1 by default, as the CLI: small nets
    train fastest on one thread; None leaves it as it is). Everything is checked as `lossbench run`
    checks it (a Config too, which may have been changed by hand) before anything is written.
    """
    from ..config.validate import count_problem

    if threads is not None and count_problem(threads):
        raise UserError([("threads", str(count_problem(threads)))], "lossbench.run")
    cfg = checked(config_or_path, overrides, "lossbench.run")
    folder = run_dir(out, cfg)
    if force or not is_finished(folder, cfg):  # a finished run on a read-only mount is still read
        check_writable(out)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    _, folder, _ = execute(cfg, out, force=force)
    return load_run(folder)


def checked(config_or_path: str | dict | Config, overrides: dict | None = None, what: str = "") -> Config:
    """The validated Config of a path, a mapping or a Config (a Config is checked again: its fields
    may have been set by hand), with `key__sub=value` overrides; UserError as the command line gives."""
    from .. import config as config_module

    items = [f"{k.replace('__', '.')}={json.dumps(v)}" for k, v in (overrides or {}).items()]
    if isinstance(config_or_path, Config):
        cfg, sweep, _ = config_module.load(raw=config_or_path.to_dict(), overrides=items)
    elif isinstance(config_or_path, dict):
        cfg, sweep, _ = config_module.load(raw=config_or_path, overrides=items)
    else:
        cfg, sweep, _ = config_module.load(str(config_or_path), overrides=items)
    if sweep:
        raise UserError(
            [("sweep", f"{what or 'this'} takes a single run; run a sweep with lossbench.run_many")], "config"
        )
    return cfg
