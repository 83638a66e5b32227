"""The command handlers: each takes the parsed arguments, calls the library, prints what it
returns, and gives the exit code."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap

from ..config.schema import higher_is_better, shared_metrics

LIST_KINDS = ("loss", "activation", "init", "optimizer", "schedule", "data")


def _load(args):
    from ..config.validate import load

    cfg, sweep, raw = load(args.config, args.overrides)
    return cfg, sweep, raw


def cmd_validate(args: argparse.Namespace) -> int:
    cfg, sweep, raw = _load(args)
    if sweep:
        from ..config.grid import expand

        notes: list[str] = []
        members = expand(raw, args.config, allow_large=args.allow_large, progress=not args.quiet, notes=notes)
        _print_notes(notes)
        print(f"{args.config}: valid sweep of {len(members)} runs")
    else:
        print(f"{args.config}: valid ({cfg!r})")
    if args.print_config:
        _print_config(cfg, sweep)
    return 0


def _print_notes(notes: list[str]) -> None:
    for note in notes:  # e.g. the keys `loss.name=bce` dropped from `loss: {name: mse, half: true}`
        print(f"lossbench: note: {note}", file=sys.stderr)


def _run_sweep(args: argparse.Namespace, raw: dict) -> int:
    from ..config.grid import expand
    from ..runs.sweep import run_sweep

    notes: list[str] = []
    configs = expand(raw, args.config, allow_large=args.allow_large, progress=not args.quiet, notes=notes)
    _print_notes(notes)
    sweep = run_sweep(
        raw,
        configs,
        args.out,
        source=args.config,
        force=args.force,
        workers=args.workers,
        batch=not args.no_batch,
        progress=not args.quiet,
        backend=args.backend,
        address=args.address,
    )
    print(sweep)
    for line in sweep.failures():  # so a failed member is never a mystery
        print(f"failed: {line}", file=sys.stderr)
    return 1 if any(r["error"] for r in sweep.records) else 0


def _print_config(cfg, sweep) -> None:
    import yaml

    resolved = cfg.to_dict()
    resolved["train"] = dict(vars(cfg.train))  # every default, also those the run id leaves out
    if sweep:
        resolved["sweep"] = sweep
    print(yaml.safe_dump(resolved, sort_keys=False), end="")


def cmd_run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..runs.runner import execute
    from ..runs.store import check_writable, is_finished, run_dir

    if args.address and args.backend != "ray":
        raise UserError(
            [("--address", "is the address of a Ray cluster; it needs --backend ray")], "command line"
        )
    cfg, sweep, raw = _load(args)
    if args.no_batch:  # the lesson loop: its own run id (a sweep sets it per member)
        cfg.train.engine = "plain"
    if args.print_config:
        _print_config(cfg, sweep)
    if sweep or args.force or not is_finished(run_dir(args.out, cfg), cfg):
        check_writable(args.out)  # (a finished run on a read-only mount, a teacher's, is still reused)
    if sweep:
        return _run_sweep(args, raw)
    import torch

    torch.set_num_threads(args.threads)  # checked by `count`: 1 to 4 per core
    summary, folder, reused = execute(cfg, args.out, force=args.force, progress=not args.quiet)
    if reused:
        status = summary.get("status")
        which = "finished run in {}" if status == "finished" else "run in {}, which " + str(status)
        print(f"reused the {which.format(folder)} (same config; --force to train again)")
    print_summary(summary, folder, cfg.to_dict())
    return 0


def print_summary(summary: dict, folder: str, config: dict | None = None) -> None:
    """The run's result as a short table: status, the trained loss, the metrics every loss shares
    (regression: MSE and MAE; classification: accuracy and, with a probability output, NLL), each
    target, the gradient ratio and, for a depth-0 model, the fitted weights and bias (and, on a
    one-example data set such as Nielsen's neuron, the model's output there)."""
    rows = [
        (
            "status",
            summary["status"]
            + (f" at step {summary['diverged_step']}" if summary.get("diverged_step") is not None else ""),
        ),
        ("steps", f"{summary['steps_done']} of {summary['steps']} ({_fmt(summary['epochs'])} epochs)"),
    ]
    loss_name = _component_name((config or {}).get("loss"))
    loss = f" ({loss_name})" if loss_name else ""
    for split in ("train", "val"):
        if split == "train" or summary.get("final_val_loss") is not None:  # no validation set: no row
            rows.append((f"{split} loss{loss}", _fmt(summary.get(f"final_{split}_loss"))))
    shared = shared_metrics(summary.get("task", ""))  # those recorded (not: null) are shown
    for split in ("train", "val"):
        values = [(m, summary.get(f"final_{split}_{m}")) for m in shared]
        values = [(m, v) for m, v in values if v is not None]
        if values:
            rows.append(
                (
                    f"{split} {' / '.join(m for m, _ in values)}",
                    " / ".join(_fmt(v, ".3f" if m == "acc" else ".4g") for m, v in values),
                )
            )
    rows += _target_rows(summary, loss_name)
    rows += _linear_rows(summary, config or {})
    if summary.get("grad_ratio_first_last") is not None:  # (needs two hidden layers)
        rows.append(("grad first/last", _fmt(summary["grad_ratio_first_last"], ".3g")))
    rows += [
        ("wall time", f"{summary['wall_time']:.2f} s"),
        ("folder", folder),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")


def _fmt(v: object, spec: str = ".4g") -> str:
    return "-" if v is None else format(v, spec) if isinstance(v, (int, float)) else str(v)


def _component_name(node: object) -> str | None:
    return node if isinstance(node, str) else node.get("name") if isinstance(node, dict) else None


def _target_rows(summary: dict, loss_name: str | None) -> list[tuple[str, str]]:
    """One row per target: the step and seconds it was first reached, or that it was not. A target
    on the loss names the loss's units; when those are not a shared metric's (measured: the final
    train loss differs from every shared metric), a last row points to a target on a shared one."""
    rows = []
    shared = sorted(shared_metrics(summary.get("task", "")), key=higher_is_better)  # nll before acc
    for t in summary.get("targets") or []:
        sign = ">=" if higher_is_better(t["metric"]) else "<="
        reached = t["steps_to"]
        text = f"step {reached} ({_fmt(t['seconds_to'], '.2f')} s)" if reached is not None else "not reached"
        units = f" ({loss_name} units)" if t["metric"].endswith("loss") and loss_name else ""
        rows.append((f"to {t['metric']} {sign} {_fmt(t['value'])}{units}", text))
    loss = summary.get("final_train_loss")
    on_loss = any(t["metric"].endswith("loss") for t in summary.get("targets") or [])
    recorded = [m for m in shared if summary.get(f"final_train_{m}") is not None]
    if on_loss and loss_name and loss is not None and recorded:
        if not any(_close(summary[f"final_train_{m}"], loss) for m in recorded):
            rows.append(("note", f"a loss target is in {loss_name}'s own units; to compare losses,"))
            rows.append(("", f"set train.target: {{metric: val_{recorded[0]}, value: ...}}"))
    return rows


def _close(a: object, b: float) -> bool:
    return isinstance(a, (int, float)) and abs(a - b) <= 1e-5 * max(abs(a), abs(b), 1e-12)


def _linear_rows(summary: dict, config: dict) -> list[tuple[str, str]]:
    """A depth-0 model's fitted weights and bias, and its output on a one-example data set."""
    import math

    lin = summary.get("linear")
    if not isinstance(lin, dict):
        return []
    weight, bias = lin.get("weight") or [], lin.get("bias") or []
    rows = [
        ("weight", "; ".join(", ".join(_fmt(w) for w in row) for row in weight)),
        ("bias", ", ".join(_fmt(b) for b in bias)),
    ]
    data = config.get("data") or {}
    output = (config.get("model") or {}).get("output", "identity")
    if output == "identity" and len(weight) == 1 and len(weight[0]) == 1 and len(bias) == 1:
        sign = "-" if bias[0] < 0 else "+"
        rows.append(("fitted line", f"y = {_fmt(weight[0][0])} x {sign} {_fmt(abs(bias[0]))}"))
    x = data.get("x") if isinstance(data, dict) and data.get("name") == "single" else None
    if isinstance(x, (int, float)) and len(weight) == 1 and len(weight[0]) == 1 and len(bias) == 1:
        z = weight[0][0] * x + bias[0]
        a = 1 / (1 + math.exp(-z)) if output == "sigmoid" else z
        rows.append(
            (
                f"output at x = {_fmt(x)}",
                f"{_fmt(a)}" + (f" (sigmoid of z = {_fmt(z)})" if output == "sigmoid" else ""),
            )
        )
    return rows


def cmd_list(args: argparse.Namespace) -> int:
    """Every registered component, one entry per name, wrapped to 100 columns."""
    from ..config.overrides import COMPONENT_KEYS, registry_at

    found: dict[str, tuple] = {}  # kind -> (registry, the config keys that name one)
    for path in COMPONENT_KEYS:
        registry = registry_at(path)
        kind = registry.kind.removesuffix(" set")  # "data set" is listed as data
        key = ".".join(path) + (".name" if len(path) == 1 else "")  # a section names it by `name`
        found[kind] = (registry, [*found.get(kind, (None, []))[1], key])
    kinds = {kind: found[kind] for kind in LIST_KINDS}
    plural = {"losses": "loss", "activations": "activation", "inits": "init", "optimizers": "optimizer"}
    plural |= {"schedules": "schedule", "datasets": "data", "dataset": "data"}
    if args.kind:
        key = plural.get(args.kind, args.kind)
        if key not in kinds:
            from ..components.registry import did_you_mean
            from ..errors import UserError

            hint = did_you_mean(args.kind, [*kinds, *plural])
            raise UserError(
                [("kind", f"unknown kind {args.kind!r}{hint}; valid: {', '.join(kinds)}")], "list"
            )
        kinds = {key: kinds[key]}
    for kind, (registry, keys) in kinds.items():
        print(f"{kind} ({', '.join(keys)}):")
        for name in registry:
            print(_list_entry(kind, registry, name))
    return 0


def _list_entry(kind: str, registry, name: str) -> str:
    """One `list` entry: the name and summary, then what it fits, its keys and its other names."""
    entry = registry[name]
    facts = []
    if kind == "loss":
        facts.append(f"tasks: {', '.join(entry.meta['tasks'])}")
    if kind == "data":
        facts.append(_data_facts(name))
    if entry.defaults():
        facts.append(f"keys: {entry.keywords_text()}")
    if registry.others(name):
        facts.append(f"also called: {', '.join(registry.others(name))}")
    indent = " " * 19
    lines = textwrap.wrap(
        entry.summary, 100, initial_indent=f"  {name:<16} ", subsequent_indent=indent, break_on_hyphens=False
    )
    for fact in facts:
        lines += textwrap.wrap(
            fact, 100, initial_indent=indent, subsequent_indent=indent + "  ", break_on_hyphens=False
        )
    return "\n".join(lines)


def _data_facts(name: str) -> str:
    """The task and sizes of data set `name` with its defaults, measured by building it (seed 0)."""
    from ..components.data import DataError, make

    try:
        d = make(name, {}, 0)
    except (DataError, ImportError, OSError, ValueError) as e:
        lines = str(e).splitlines()  # a UserError's first line only counts its problems
        why = lines[1].strip() if len(lines) > 1 and lines[0].endswith(("problem", "problems")) else lines[0]
        return f"not available here: {why[:120]}"
    n_in, n_out = d.x.shape[1], d.n_outputs
    return (
        f"task: {d.task}; {len(d.x)} example{'s' * (len(d.x) != 1)}, {n_in} input{'s' * (n_in != 1)} -> "
        f"{n_out} output{'s' * (n_out != 1)} (with the defaults)"
    )


# ----- pictures, reports, exports, reproductions -------------------------------------------------


def cmd_plot(args: argparse.Namespace) -> int:
    """Figures of each PATH, written to PATH/figures (or --out, one subfolder per PATH when several);
    a results folder is drawn per folder of runs (each sweep, each run name), as `report` does."""
    from .. import progress
    from ..viz.figures import figure_jobs, save_all
    from ..viz.load import by_folder, group_runs, load_runs

    drawings = []
    for path in args.paths:  # all inputs checked before anything is drawn
        parts = by_folder(load_runs([path]))
        if len(parts) == 1:
            parts = {path: next(iter(parts.values()))}
        elif not args.quiet:
            print(f"{path}: {len(parts)} folders of runs, each drawn into its own figures/", file=sys.stderr)
        for folder, runs in parts.items():
            if args.out is None:
                out = os.path.join(folder, "figures")
            elif len(parts) > 1:
                out = os.path.join(args.out, os.path.relpath(folder, path))
            elif len(args.paths) > 1:
                out = os.path.join(args.out, os.path.basename(os.path.normpath(path)) or "results")
            else:
                out = args.out
            drawings.append((out, group_runs(runs)))
    n_figures = sum(len(figure_jobs(groups, args.metric)) for _, groups in drawings)  # a bad --metric: now
    with progress.bar(n_figures, "plot", "figure", not args.quiet) as bar:
        for p in save_all(drawings, args.format, args.metric, bar):
            print(p)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """The runs of all PATHs overlaid in one set of figures, labelled by the keys that differ (or --by)."""
    from .. import progress
    from ..viz.figures import figure_jobs, remove_figures, save_all
    from ..viz.load import group_runs, load_runs
    from ..viz.metrics import by_task

    runs = load_runs(args.paths)
    group_runs(runs, by=args.by)  # a --by key no run has is refused before anything is drawn
    out = args.out or os.path.join("results", "compare")
    tasks = by_task(runs)  # a regression and a classifier share no metric: drawn apart
    drawings = [
        (out if len(tasks) == 1 else os.path.join(out, task), group_runs(members, by=args.by))
        for task, members in tasks.items()
    ]
    if len(tasks) > 1:
        remove_figures(out, args.format)  # an earlier compare's, now in the folder per task
        print(f"runs of {len(tasks)} tasks, drawn apart (they share no metric): " + ", ".join(
            f"{task} ({len(members)} run{'s' if len(members) > 1 else ''}) in {folder}"
            for (task, members), (folder, _) in zip(tasks.items(), drawings)
        ))  # fmt: skip
    n_jobs = sum(len(figure_jobs(groups, args.metric)) for _, groups in drawings)
    with progress.bar(n_jobs, "compare", "figure", not args.quiet) as bar:
        paths = save_all(drawings, args.format, args.metric, bar)
    for p in paths:
        print(p)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..viz.report import write_report

    out = args.out or os.path.join(args.path, "report")
    path = write_report(args.path, out, quiet=args.quiet)
    print(path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..viz.export import export_tensorboard

    if args.target != "tensorboard":  # argparse only offers tensorboard; a guard for direct callers
        raise UserError([("target", f"unknown export target {args.target!r}; valid: tensorboard")], "export")
    out = args.out or os.path.join(args.path, "tensorboard")
    for folder in export_tensorboard(args.path, out, quiet=args.quiet):
        print(folder)
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    """Train, draw and serve CONFIG until Ctrl-C (exit 130); see `lossbench.watch`."""
    from ..runs.store import check_writable
    from ..watch import watch

    check_writable(args.out)
    try:
        watch(args.config, args.overrides, args.out, args.port, echo=lambda m: print(m, flush=True))
    except KeyboardInterrupt:
        print("\nlossbench watch: stopped", file=sys.stderr)
        return 130
    return 0


def cmd_landscape(args: argparse.Namespace) -> int:
    """Each run's loss landscape (`lossbench.loss_landscape`): files under its figures/, one path a line."""
    from ..loss_landscape import landscape

    for p in landscape(
        args.paths,
        args.resolution,
        args.span,
        args.seed,
        args.bias,
        args.examples,
        args.format,
        echo=lambda m: print(m, file=sys.stderr),
    ):
        print(p)
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    """The `reproduce` command: 0 when every check passes (or is PARTIAL), 1 when any FAILs."""
    from .. import progress
    from ..reproduce import print_table, reproduce
    from ..verdicts import VERDICTS

    def echo(message: str) -> None:  # a line per experiment started and judged, on a terminal only
        if progress.wanted(args.quiet):
            print(message, file=sys.stderr)

    report = reproduce(args.only, args.fast, args.out, echo=echo, workers=args.workers, seed=args.seed)
    print_table(report)
    n = [sum(c["verdict"] == v for e in report["experiments"] for c in e["checks"]) for v in VERDICTS]
    print(
        f"\n{len(report['experiments'])} experiments; checks: {n[0]} PASS, {n[1]} PARTIAL, {n[2]} FAIL; "
        f"wall time {report['wall_time']:.1f} s ({report['cpu_time']:.0f} s CPU, {report['workers']} "
        f"worker(s)); verdicts in {os.path.join(args.out, 'verdicts.md')}"
    )
    for e in report["experiments"]:
        if e.get("error"):
            print(f"\n{e['slug']} raised an error:\n{e['error']}", file=sys.stderr)
    return 1 if n[2] else 0
