"""The command line's parser: every command, its flags, and each flag's checking type.

A value a command takes is checked where its flag is made (`type=count`, `type=path`, ...), like a
config value: a bad one is refused with the valid range, exit 2. tests/test_hardening.py checks
that every value-taking flag has one of this module's checking types.
"""

from __future__ import annotations

import argparse
import os
import shutil
import textwrap
from typing import Any

from . import commands
from .commands import LIST_KINDS

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

PATH_HELP = "a run folder, a sweep folder or a results folder (run folders are found up to 4 levels down)"


def experiment_names() -> list[str]:
    """The experiments `reproduce` can run (the folders of experiments/), found without importing them."""
    from ..errors import UserError
    from ..reproduce import discover

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
    sp.add_argument("config", type=path, help="a YAML config file, e.g. configs/quickstart.yaml")
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


def count(text: str) -> int:
    """A thread or worker count: an integer from 1 to 4 per core (`config.validate.count_problem`,
    the rule `lossbench.run(threads=)` follows too)."""
    from ..config.validate import count_problem

    try:
        value: object = int(text)
    except ValueError:
        value = text
    problem = count_problem(value)
    if problem or not isinstance(value, int):
        raise argparse.ArgumentTypeError(str(problem))
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


def _integer(text: str, low: int, high: int, words: str) -> int:
    """`text` as an integer from `low` to `high`, else the message "must be WORDS, got TEXT"."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be {words}, got {text!r}")
    return value


def port(text: str) -> int:
    """A TCP port: 0 (any free one) to 65535."""
    return _integer(text, 0, 65535, "a port from 0 (any free one) to 65535")


def resolution(text: str) -> int:
    """A landscape grid's side: an integer from 3 to 1001 points."""
    return _integer(text, 3, 1001, "an integer from 3 to 1001")


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


def natural(text: str, low: int = 0) -> int:
    """A seed: an integer from `low` (0) to 2**63 - 1."""
    return _integer(text, low, 2**63 - 1, f"an integer from {low} to 2**63 - 1")


def n_examples(text: str) -> int:
    """An example count: an integer from 1 (an empty set has no loss to draw) to 2**63 - 1."""
    return natural(text, low=1)


def name(text: str) -> str:
    """An experiment name, a list kind or a dotted config key: letters, digits, '_', '-', '.'."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,100}", text):
        raise argparse.ArgumentTypeError(f"must be 1-100 letters, digits, '_', '-' or '.', got {text!r}")
    return text


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
    for word, help_, handler, add in [
        ("run", "train a config (or a sweep) into a results folder", commands.cmd_run, _run_args),
        ("validate", "check a config (every grid point of a sweep) without training", commands.cmd_validate,
         _validate_args),
        ("list", "list the registered losses, activations, inits, optimizers, schedules, data sets",
         commands.cmd_list, _list_args),
        ("plot", "draw the figures of run or sweep folders", commands.cmd_plot, _plot_args),
        ("compare", "overlay the runs of several folders in one set of figures", commands.cmd_compare,
         _compare_args),
        ("report", "a static HTML page for a run, a sweep or a results folder", commands.cmd_report,
         _report_args),
        ("export", "export runs to another tool (TensorBoard)", commands.cmd_export, _export_args),
        ("reproduce", "rerun the article's experiments and judge each claim", commands.cmd_reproduce,
         lambda sp: _reproduce_args(sp, experiments)),
        ("watch", "train a config, show its figures on a local page, and again whenever the file is saved",
         commands.cmd_watch, _watch_args),
        ("landscape", "draw the loss landscape around each run: line, 2-D slice, training path",
         commands.cmd_landscape, _landscape_args),
    ]:  # fmt: skip
        epilog = _wrap("experiments: ", experiments) if word == "reproduce" else ""
        sp = sub.add_parser(
            word, help=help_, description=help_, formatter_class=_Formatter, epilog=epilog or None
        )
        sp.set_defaults(handler=handler)
        add(sp)
        if word not in ("run", "watch"):  # run's own --quiet says more
            sp.add_argument(
                "--quiet", action="store_true", help="no progress bar (none is drawn unless on a terminal)"
            )
        p.commands[word] = sp
    return p


def _run_args(sp: argparse.ArgumentParser) -> None:
    _add_config_args(sp)
    sp.add_argument("--out", type=path, default="results", help="results root (default: results)")
    sp.add_argument("--force", action="store_true", help="train again even when a finished run exists")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.add_argument(
        "--threads",
        type=count,
        default=1,
        help="torch threads for a single run (default 1: small nets train fastest on one thread)",
    )
    sp.add_argument(
        "--workers", type=count, default=None, help="sweep worker processes (default: the number of cores)"
    )
    sp.add_argument(
        "--backend",
        choices=["local", "ray"],
        default="local",
        help="where a sweep runs: local processes (default) or a Ray cluster",
    )
    sp.add_argument(
        "--address", type=address, default=None, help="Ray cluster address (default: start a local one)"
    )
    sp.add_argument(
        "--no-batch",
        action="store_true",
        help="train on the plain lesson loop (train.engine=plain), sweep members one by one",
    )
    _validate_args(sp, config=False)


def _validate_args(sp: argparse.ArgumentParser, config: bool = True) -> None:
    if config:
        _add_config_args(sp)
    sp.add_argument(
        "--allow-large", action="store_true", help="allow a sweep grid above 5000 runs (up to 100000)"
    )


def _list_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("kind", type=name, nargs="?", help=f"only this kind: {', '.join(LIST_KINDS)}")


def _figure_args(sp: argparse.ArgumentParser, out_help: str, metric: bool = True) -> None:
    """--out, --format and (for figures that compare runs) --metric."""
    sp.add_argument("--out", type=path, default=None, help=out_help)
    sp.add_argument(
        "--format", default="png", choices=["png", "svg", "pdf"], help="image format (default png)"
    )
    if metric:
        sp.add_argument(
            "--metric",
            type=name,
            default=None,
            help="what loss curves, convergence and the sweep summary compare (e.g. val_mse, acc, "
            "loss); default: the loss when every run trains the same one, else a metric all share",
        )


def _plot_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("paths", type=path, nargs="+", metavar="PATH", help=PATH_HELP)
    _figure_args(sp, "folder for the figures (default: PATH/figures)")


def _compare_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("paths", type=path, nargs="+", metavar="PATH", help=PATH_HELP)
    sp.add_argument(
        "--by",
        type=name,
        nargs="+",
        default=None,
        metavar="KEY",
        help="config keys for the legend, e.g. loss.name (default: the keys that differ)",
    )
    _figure_args(sp, "folder for the figures (default: results/compare)")


def _report_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("path", type=path, metavar="PATH", help=PATH_HELP)
    sp.add_argument("--out", type=path, default=None, help="where to write the report (default: PATH/report)")


def _export_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("target", choices=["tensorboard"], help="the tool: tensorboard")
    sp.add_argument("path", type=path, metavar="PATH", help=PATH_HELP)
    sp.add_argument("--out", type=path, default=None, help="log folder (default: PATH/tensorboard)")


def _reproduce_args(sp: argparse.ArgumentParser, experiments: list[str]) -> None:
    sp.add_argument(
        "--only",
        type=name,
        nargs="+",
        default=None,
        metavar="NAME",
        help="run only these experiments" + (f": {', '.join(experiments)}" if experiments else ""),
    )
    sp.add_argument("--fast", action="store_true", help="smaller sizes, same claims (what the tests run)")
    sp.add_argument(
        "--out", type=path, default="results/reproduce", help="output folder (default: results/reproduce)"
    )
    sp.add_argument(
        "--workers",
        type=count,
        default=None,
        help="experiments run at once, each in its own process (default 1: the least CPU time; "
        "2 on 2 cores: a quarter less wall time, a fifth more CPU time)",
    )
    sp.add_argument(
        "--seed",
        type=natural,
        default=0,
        help="add this to every seed the experiments use (default 0: the seeds the verdicts were written "
        "with); any seed should give the same verdicts",
    )


def _watch_args(sp: argparse.ArgumentParser) -> None:
    _add_config_args(sp)
    sp.add_argument("--out", type=path, default="results", help="results root (default: results)")
    sp.add_argument("--port", type=port, default=0, help="port on 127.0.0.1 (default: a free one)")


def _landscape_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("paths", type=path, nargs="+", metavar="PATH", help=PATH_HELP)
    sp.add_argument(
        "--resolution", type=resolution, default=41, help="points per side of a 2-D grid (default 41)"
    )
    sp.add_argument(
        "--span",
        type=positive,
        default=1.0,
        help="the slice's half-width in filter-normalised units (default 1)",
    )
    sp.add_argument("--seed", type=natural, default=0, help="seed of the two random directions (default 0)")
    sp.add_argument(
        "--bias",
        choices=["row", "zero"],
        default="row",
        help="a direction's bias: one more entry of its unit's row (default), or 0 (Li et al.)",
    )
    sp.add_argument(
        "--examples",
        type=n_examples,
        default=None,
        help="evaluate on the first N examples of each set (default all)",
    )
    sp.add_argument(
        "--format", default="png", choices=["png", "svg", "pdf"], help="image format (default png)"
    )


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
