"""The command line: `python -m lossbench COMMAND ...` (also the `lossbench` console script).

Exit codes: 0 success, 1 an internal error (a bug: please report it with the traceback), 2 bad
input (config, command line, paths), 130 interrupted by Ctrl-C. Nothing heavy is imported before a
command runs, so `--help` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import textwrap
from typing import Any

EPILOG = """examples:
  python -m lossbench run configs/quickstart.yaml
  python -m lossbench run configs/quickstart.yaml model.depth=6 --force loss.name=mse
  python -m lossbench validate configs/quickstart.yaml --print-config
  python -m lossbench list data
  python -m lossbench plot results/quickstart
  python -m lossbench compare results/a results/b --by loss.name
  python -m lossbench compare results/mae results/huber --metric val_mae
  python -m lossbench report results
  python -m lossbench landscape results/outliers
  python -m lossbench watch configs/quickstart.yaml
  python -m lossbench reproduce --fast --only outliers

the lessons, step by step: docs/lessons.md; every command: python -m lossbench COMMAND --help
"""

# command -> (module, function): the function takes the parsed arguments and returns an exit code
COMMANDS = {
    "run": ("lossbench.cli", "cmd_run"),
    "validate": ("lossbench.cli", "cmd_validate"),
    "list": ("lossbench.cli", "cmd_list"),
    "plot": ("lossbench.cli", "cmd_plot"),
    "compare": ("lossbench.cli", "cmd_compare"),
    "report": ("lossbench.cli", "cmd_report"),
    "export": ("lossbench.cli", "cmd_export"),
    "reproduce": ("lossbench.cli", "cmd_reproduce"),
    "watch": ("lossbench.cli", "cmd_watch"),
    "landscape": ("lossbench.cli", "cmd_landscape"),
}
LIST_KINDS = ("loss", "activation", "init", "optimizer", "schedule", "data")
PATH_HELP = "a run folder, a sweep folder or a results folder (run folders are found up to 4 levels down)"


def experiment_names() -> list[str]:
    """The experiments `reproduce` can run (the folders of experiments/), found without importing them."""
    from .errors import UserError
    from .reproduce import discover

    try:
        return list(discover())
    except UserError:
        return []


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Help laid out for a 100-column terminal, whatever the terminal says."""

    def __init__(self, prog):
        super().__init__(prog, width=min(100, shutil.get_terminal_size().columns), max_help_position=28)


def _wrap(head: str, names: list[str]) -> str:
    return textwrap.fill(", ".join(names), 100, initial_indent=head, subsequent_indent="  ") if names else ""


def _add_config_args(sp) -> None:
    sp.add_argument("config", help="a YAML config file, e.g. configs/quickstart.yaml")
    sp.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="override config keys (values are YAML), anywhere after the config path: model.depth=6 "
        "optim.lr=1e-3 loss=bce; changing a component's name (loss.name=bce) drops the keys the new "
        "one does not take and says which",
    )
    sp.add_argument("--print-config", action="store_true", help="print the resolved config (every default)")


class _Parser(argparse.ArgumentParser):
    """The lossbench parser, holding each command's own parser (whose usage its errors show)."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.commands: dict[str, argparse.ArgumentParser] = {}


# ----- flag values, validated like config values -------------------------------------------------


def _limit() -> int:
    """The most threads or workers a flag accepts: 4 per core (torch crashes at absurd counts)."""
    return max(8, 4 * (os.cpu_count() or 1))


def count(text: str) -> int:
    """A thread or worker count: an integer from 1 to 4 per core."""
    hi = _limit()
    where = f"4 per core, at least 8; this machine has {os.cpu_count() or 1} cores"
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 1 <= value <= hi:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to {hi} ({where}), got {text!r}")
    return value


def path(text: str) -> str:
    """A file or folder path: not empty, no NUL byte, within the system's length limits."""
    if not text or not text.strip():
        raise argparse.ArgumentTypeError("must be a path, got an empty string")
    if "\0" in text:
        raise argparse.ArgumentTypeError(f"must be a path without NUL bytes, got {text!r}")
    longest = max(len(part.encode(errors="replace")) for part in text.split(os.sep))
    if len(text.encode(errors="replace")) > 4000 or longest > 255:
        raise argparse.ArgumentTypeError(
            f"must be a path of at most 4000 bytes, each name at most 255, got {len(text)} characters"
        )
    return text


def address(text: str) -> str:
    """A Ray cluster address: auto, HOST:PORT or ray://HOST:PORT (PORT 1-65535)."""
    import re

    match = re.fullmatch(r"(ray://)?([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})", text)
    if text != "auto" and not (match and 1 <= int(match.group(3)) <= 65535):
        raise argparse.ArgumentTypeError(
            f"must be auto, HOST:PORT or ray://HOST:PORT with a port from 1 to 65535, got {text!r}"
        )
    return text


def port(text: str) -> int:
    """A TCP port: 0 (any free one) to 65535."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 (any free one) to 65535, got {text!r}")
    return value


def resolution(text: str) -> int:
    """A landscape grid's side: an integer from 3 to 1001 points."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 3 <= value <= 1001:
        raise argparse.ArgumentTypeError(f"must be an integer from 3 to 1001, got {text!r}")
    return value


def positive(text: str) -> float:
    """A finite number above 0 (a landscape's span)."""
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text!r}")
    return value


def natural(text: str) -> int:
    """A seed or an example count: an integer from 0 to 2**63 - 1."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 2**63 - 1, got {text!r}")
    return value


def name(text: str) -> str:
    """An experiment name, a list kind or a dotted config key: letters, digits, '_', '-', '.'."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,100}", text):
        raise argparse.ArgumentTypeError(f"must be 1-100 letters, digits, '_', '-' or '.', got {text!r}")
    return text


FLAG_TYPES = {
    "threads": count,
    "workers": count,
    "config": path,
    "out": path,
    "path": path,
    "paths": path,
    "address": address,
    "only": name,
    "by": name,
    "kind": name,
    "metric": name,
    "port": port,
    "resolution": resolution,
    "span": positive,
    "seed": natural,
    "examples": natural,
}
"""How every value a command takes is checked, by its argparse `dest` (`overrides` are checked as
config values). `_typed` installs them, so a flag added without an entry here fails its test."""


def _typed(p: _Parser) -> None:
    """Give every value-taking argument of every command its checking type from FLAG_TYPES."""
    for sp in [p, *p.commands.values()]:
        for action in sp._actions:
            if action.dest in FLAG_TYPES and action.choices is None:
                action.type = FLAG_TYPES[action.dest]


def parser() -> _Parser:
    experiments = experiment_names()
    p = _Parser(
        prog="lossbench",
        description="Train small nets from YAML configs and record what every layer's gradient does.",
        epilog=EPILOG + "\n" + _wrap("experiments (reproduce --only): ", experiments),
        formatter_class=_Formatter,
    )
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def command(name, help_, **kw):
        p.commands[name] = sub.add_parser(
            name, help=help_, description=help_, formatter_class=_Formatter, **kw
        )
        return p.commands[name]

    sp = command("run", "train a config (or a sweep) into a results folder")
    _add_config_args(sp)
    sp.add_argument("--out", default="results", help="results root (default: results)")
    sp.add_argument("--force", action="store_true", help="train again even when a finished run exists")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for a single run (default 1: small nets train fastest on one thread)",
    )
    sp.add_argument(
        "--workers", type=int, default=None, help="sweep worker processes (default: the number of cores)"
    )
    sp.add_argument(
        "--backend",
        choices=["local", "ray"],
        default="local",
        help="where a sweep runs: local processes (default) or a Ray cluster",
    )
    sp.add_argument("--address", default=None, help="Ray cluster address (default: start a local one)")
    sp.add_argument(
        "--no-batch", action="store_true", help="train sweep members one by one instead of stacked"
    )
    sp.add_argument("--allow-large", action="store_true", help="allow a sweep grid above 5000 runs")

    sp = command("validate", "check a config (every grid point of a sweep) without training")
    _add_config_args(sp)
    sp.add_argument("--allow-large", action="store_true", help="allow a sweep grid above 5000 runs")

    sp = command("list", "list the registered losses, activations, inits, optimizers, schedules, data sets")
    sp.add_argument("kind", nargs="?", help=f"only this kind: {', '.join(LIST_KINDS)}")

    sp = command("plot", "draw the figures of run or sweep folders")
    sp.add_argument("paths", nargs="+", metavar="PATH", help=PATH_HELP)
    sp.add_argument("--out", default=None, help="folder for the figures (default: PATH/figures)")
    sp.add_argument(
        "--format", default="png", choices=["png", "svg", "pdf"], help="image format (default png)"
    )
    sp.add_argument(
        "--metric",
        default=None,
        help="what loss curves, convergence and the sweep summary compare (e.g. val_mse, acc, loss); "
        "default: the loss when every run trains the same one, else a metric all share",
    )

    sp = command("compare", "overlay the runs of several folders in one set of figures")
    sp.add_argument("paths", nargs="+", metavar="PATH", help=PATH_HELP)
    sp.add_argument(
        "--by",
        nargs="+",
        default=None,
        metavar="KEY",
        help="config keys for the legend, e.g. loss.name (default: the keys that differ)",
    )
    sp.add_argument("--out", default=None, help="folder for the figures (default: results/compare)")
    sp.add_argument(
        "--format", default="png", choices=["png", "svg", "pdf"], help="image format (default png)"
    )
    sp.add_argument(
        "--metric",
        default=None,
        help="what loss curves, convergence and the sweep summary compare (e.g. val_mse, acc, loss); "
        "default: the loss when every run trains the same one, else a metric all share",
    )

    sp = command("report", "a static HTML page for a run, a sweep or a results folder")
    sp.add_argument("path", metavar="PATH", help=PATH_HELP)
    sp.add_argument("--out", default=None, help="where to write the report (default: PATH/report)")

    sp = command("export", "export runs to another tool (TensorBoard)")
    sp.add_argument("target", choices=["tensorboard"], help="the tool: tensorboard")
    sp.add_argument("path", metavar="PATH", help=PATH_HELP)
    sp.add_argument("--out", default=None, help="log folder (default: PATH/tensorboard)")

    sp = command(
        "reproduce",
        "rerun the article's experiments and judge each claim",
        epilog=_wrap("experiments: ", experiments) or None,
    )
    sp.add_argument(
        "--only",
        nargs="+",
        default=None,
        metavar="NAME",
        help="run only these experiments" + (f": {', '.join(experiments)}" if experiments else ""),
    )
    sp.add_argument("--fast", action="store_true", help="smaller sizes, same claims (what the tests run)")
    sp.add_argument("--out", default="results/reproduce", help="output folder (default: results/reproduce)")
    sp.add_argument(
        "--workers",
        type=int,
        default=None,
        help="experiments run at once, each in its own process (default 1)",
    )

    sp = command(
        "watch",
        "train a config, show its figures on a local page, and again whenever the file is saved",
    )
    _add_config_args(sp)
    sp.add_argument("--out", default="results", help="results root (default: results)")
    sp.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    sp = command("landscape", "draw the loss landscape around each run: line, 2-D slice, training path")
    sp.add_argument("paths", nargs="+", metavar="PATH", help=PATH_HELP)
    sp.add_argument("--resolution", type=int, default=41, help="points per side of a 2-D grid (default 41)")
    sp.add_argument(
        "--span",
        type=float,
        default=1.0,
        help="the slice's half-width in filter-normalised units (default 1)",
    )
    sp.add_argument("--seed", type=int, default=0, help="seed of the two random directions (default 0)")
    sp.add_argument(
        "--bias",
        choices=["row", "zero"],
        default="row",
        help="a direction's bias: one more entry of its unit's row (default), or 0 (Li et al.)",
    )
    sp.add_argument(
        "--examples",
        type=int,
        default=None,
        help="evaluate on the first N examples of each set (default all)",
    )
    sp.add_argument(
        "--format", default="png", choices=["png", "svg", "pdf"], help="image format (default png)"
    )
    for name in ("validate", "plot", "compare", "report", "export", "reproduce", "landscape"):
        p.commands[name].add_argument(
            "--quiet", action="store_true", help="no progress bar (none is drawn unless on a terminal)"
        )
    _typed(p)
    return p


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line; `KEY=VALUE` overrides may come anywhere after the config path.

    argparse ends a `nargs="*"` positional at the first flag, so `run x.yaml --force a=1` would leave
    `a=1` unrecognised: words with a `=` that are not flags are collected as overrides instead.
    """
    p = parser()
    args, extra = p.parse_known_args(argv)
    if getattr(args, "overrides", None) is not None:
        args.overrides += [w for w in extra if "=" in w and not w.startswith("-")]
        extra = [w for w in extra if not ("=" in w and not w.startswith("-"))]
    if extra:
        p.commands.get(args.command, p).error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.version:
        from . import __version__

        print(f"lossbench {__version__}")
        return 0
    if not args.command:
        parser().print_help()
        return 2
    module, function = COMMANDS[args.command]
    from .errors import UserError

    _sigterm_like_ctrl_c()
    try:
        return getattr(importlib.import_module(module), function)(args) or 0
    except UserError as e:
        print(f"lossbench: error: {e.render()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\nlossbench: interrupted; what was recorded is kept, the run is marked interrupted "
            "and will be redone next time (a finished run being replaced with --force stays as it was)",
            file=sys.stderr,
        )
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:  # a full disk, a path too long, a read-only folder met while writing figures
        where = f"{e.filename}: " if e.filename else ""
        print(f"lossbench: error: cannot write or read {where}{e.strerror or e}", file=sys.stderr)
        return 2


def _sigterm_like_ctrl_c() -> None:
    """SIGTERM (a `kill`, a job scheduler's stop) ends a command as Ctrl-C does: runs are marked
    interrupted, sweep workers are stopped, exit code 130."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (main() called from a thread): leave it as it is
        pass


def _load(args):
    from .config.validate import load

    cfg, sweep, raw = load(args.config, args.overrides)
    return cfg, sweep, raw


def cmd_validate(args: argparse.Namespace) -> int:
    cfg, sweep, raw = _load(args)
    if sweep:
        from .config.grid import expand

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
    from .config.grid import expand
    from .runs.sweep import run_sweep

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
    if sweep:
        resolved["sweep"] = sweep
    print(yaml.safe_dump(resolved, sort_keys=False), end="")


def cmd_run(args: argparse.Namespace) -> int:
    from .errors import UserError
    from .runs.runner import execute
    from .runs.store import check_writable

    if args.address and args.backend != "ray":
        raise UserError(
            [("--address", "is the address of a Ray cluster; it needs --backend ray")], "command line"
        )
    cfg, sweep, raw = _load(args)
    if args.print_config:
        _print_config(cfg, sweep)
    check_writable(args.out)
    if sweep:
        return _run_sweep(args, raw)
    import torch

    torch.set_num_threads(args.threads)  # checked by `count`: 1 to 4 per core
    summary, folder, reused = execute(cfg, args.out, force=args.force, progress=not args.quiet)
    if reused:
        print(f"reused the finished run in {folder} (same config; --force to train again)")
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
    shared = ["mse", "mae"] if summary.get("task") == "regression" else ["acc", "nll"]
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
    rows += _linear_rows(summary, config or {}, folder)
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
    shared = ["mse", "mae"] if summary.get("task") == "regression" else ["nll", "acc"]
    for t in summary.get("targets") or []:
        sign = ">=" if t["metric"].endswith("acc") else "<="
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


def _linear_from_weights(folder: str, config: dict) -> dict | None:
    """A depth-0 run's weight and bias read from its model.pt, for a summary written before the
    engine recorded them (`run` has torch loaded already); None for any other run."""
    path = os.path.join(folder, "model.pt")
    if (config.get("model") or {}).get("depth") != 0 or not os.path.exists(path):
        return None
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    weight, bias = state.get("layers.0.weight"), state.get("layers.0.bias")
    return None if weight is None or bias is None else {"weight": weight.tolist(), "bias": bias.tolist()}


def _linear_rows(summary: dict, config: dict, folder: str) -> list[tuple[str, str]]:
    """A depth-0 model's fitted weights and bias, and its output on a one-example data set."""
    import math

    lin = summary.get("linear")
    if not isinstance(lin, dict):
        lin = _linear_from_weights(folder, config)
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
    from .components.activations import activations
    from .components.data import datasets
    from .components.inits import inits
    from .components.losses import losses
    from .components.optim import optimizers, schedules

    kinds = dict(
        zip(LIST_KINDS, (losses, activations, init_registry := inits, optimizers, schedules, datasets))
    )
    del init_registry
    plural = {"losses": "loss", "activations": "activation", "inits": "init", "optimizers": "optimizer"}
    plural |= {"schedules": "schedule", "datasets": "data", "dataset": "data"}
    if args.kind:
        key = plural.get(args.kind, args.kind)
        if key not in kinds:
            from .components.registry import did_you_mean
            from .errors import UserError

            hint = did_you_mean(args.kind, [*kinds, *plural])
            raise UserError(
                [("kind", f"unknown kind {args.kind!r}{hint}; valid: {', '.join(kinds)}")], "list"
            )
        kinds = {key: kinds[key]}
    where = {"loss": "loss.name", "activation": "model.activation", "init": "model.init, model.bias_init"}
    where |= {"optimizer": "optim.name", "schedule": "optim.schedule", "data": "data.name"}
    for kind, registry in kinds.items():
        print(f"{kind} ({where[kind]}):")
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
    from .components.data import DataError, make

    try:
        d = make(name, {}, 0)
    except (DataError, ImportError, OSError, ValueError) as e:
        return f"not available here: {str(e).splitlines()[0][:120]}"
    n_in, n_out = d.x.shape[1], d.n_outputs
    return (
        f"task: {d.task}; {len(d.x)} example{'s' * (len(d.x) != 1)}, {n_in} input{'s' * (n_in != 1)} -> "
        f"{n_out} output{'s' * (n_out != 1)} (with the defaults)"
    )


# ----- pictures, reports, exports, reproductions -------------------------------------------------


def cmd_plot(args: argparse.Namespace) -> int:
    """Figures of each PATH, written to PATH/figures (or --out, one subfolder per PATH when several);
    a results folder is drawn per folder of runs (each sweep, each run name), as `report` does."""
    from . import progress
    from .viz.figures import figure_jobs, save_all
    from .viz.load import by_folder, group_runs, load_runs

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
    from . import progress
    from .viz.figures import figure_jobs, remove_figures, save_all
    from .viz.load import group_runs, load_runs
    from .viz.metrics import by_task

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
    from .viz.report import write_report

    out = args.out or os.path.join(args.path, "report")
    path = write_report(args.path, out, quiet=args.quiet)
    print(path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .errors import UserError
    from .viz.export import export_tensorboard

    if args.target != "tensorboard":  # argparse only offers tensorboard; a guard for direct callers
        raise UserError([("target", f"unknown export target {args.target!r}; valid: tensorboard")], "export")
    out = args.out or os.path.join(args.path, "tensorboard")
    for folder in export_tensorboard(args.path, out, quiet=args.quiet):
        print(folder)
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    """Train, draw and serve CONFIG until Ctrl-C (exit 130); see `lossbench.watch`."""
    from .runs.store import check_writable
    from .watch import watch

    check_writable(args.out)
    try:
        watch(args.config, args.overrides, args.out, args.port, echo=lambda m: print(m, flush=True))
    except KeyboardInterrupt:
        print("\nlossbench watch: stopped", file=sys.stderr)
        return 130
    return 0


def cmd_landscape(args: argparse.Namespace) -> int:
    """Each run's loss landscape (`lossbench.loss_landscape`): files under its figures/, one path a line."""
    from .loss_landscape import landscape

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
    from . import progress
    from .reproduce import VERDICTS, print_table, reproduce

    def echo(message: str) -> None:  # a line per experiment started and judged, on a terminal only
        if progress.wanted(args.quiet):
            print(message, file=sys.stderr)

    report = reproduce(args.only, args.fast, args.out, echo=echo, workers=args.workers)
    print_table(report)
    n = [sum(c["verdict"] == v for e in report["experiments"] for c in e["checks"]) for v in VERDICTS]
    print(
        f"\n{len(report['experiments'])} experiments; checks: {n[0]} PASS, {n[1]} PARTIAL, {n[2]} FAIL; "
        f"wall time {report['wall_time']:.1f} s; verdicts in {os.path.join(args.out, 'verdicts.md')}"
    )
    for e in report["experiments"]:
        if e.get("error"):
            print(f"\n{e['slug']} raised an error:\n{e['error']}", file=sys.stderr)
    return 1 if n[2] else 0


if __name__ == "__main__":
    sys.exit(main())
