"""Run folders: `results/<name>/<run_id>/` holding what a run did, readable without the trainer.

- `config.yaml`: the resolved config (every default filled in), written first;
- `metrics.jsonl`: one JSON row per recorded step, appended as the run goes;
- `model.pt`: the trained weights (a state_dict), and `view.npz`: the data and the model's
  predictions on a grid, for the task pictures; `snapshots.npz` with `train.snapshots`: the
  weights at evenly spaced steps in float32 (`steps` and each state_dict key), for `landscape`;
- `summary.json`: final metrics, status and versions, written atomically, last.

A run is finished when `summary.json` holds status `finished` or `diverged`; any other folder is
incomplete (killed, interrupted) and is redone. `run_id` is a short hash of the resolved config, so
running the same config again finds the finished run and reuses it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import secrets
import shutil
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import yaml

from ..config.schema import RUN_FORMAT, Config
from ..errors import UserError
from . import journal

if TYPE_CHECKING:  # torch loads when a run is written, not when run folders are read
    import torch

DONE = ("finished", "diverged")
# libyaml's safe loader when PyYAML has it: same result, ~10x faster on a 1000-run sweep folder
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
FILES = ("config.yaml", "metrics.jsonl", "summary.json")


def config_hash(resolved: dict) -> str:
    """A 10-hex-digit hash of the resolved config: the run's id."""
    text = json.dumps(resolved, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def run_dir(root: str, cfg: Config) -> str:
    return os.path.join(root, check_name(cfg.name, "name", "config"), config_hash(cfg.to_dict()))


def check_name(name: object, key: str, source: str) -> str:
    """`name` if it is a valid run name (as a config's `name` is checked), else UserError.

    Used on every name read from a file that becomes part of a path: 1-100 letters, digits, '_',
    '-', '.', '+', starting with a letter or digit, never '..'.
    """
    from ..config.schema import name_problem

    problem = name_problem(name)
    if problem or not isinstance(name, str):
        raise UserError([(key, str(problem))], source)
    return name


def inside(root: str, *parts: str, source: str = "results") -> str:
    """`root` joined with `parts`, each a single plain name, the result checked to stay inside
    `root` (symbolic links resolved): the one way a path is built from a file's contents."""
    for part in parts:
        if (
            not isinstance(part, str)
            or part in ("", ".", "..")
            or "/" in part
            or os.sep in part
            or "\0" in part
        ):
            raise UserError([("", f"{part!r} is not a plain file or folder name")], source)
    path = os.path.join(root, *parts)
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
        raise UserError([("", f"{path} would lie outside {root}")], source)
    return path


def atomic_write(path: str, data: bytes) -> None:
    """Write `data` to `path` so that a reader sees either the old file or the whole new one.

    The temporary file is listed in a journal first (`lossbench.runs.journal`), so that if this
    process is killed, the next writer into the folder knows the file is lossbench's and removes it.
    """
    folder = os.path.dirname(path) or "."
    journal.clean(folder)
    log = journal.Journal(folder)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{secrets.token_hex(6)}")
    try:
        log.made(os.path.basename(tmp))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None:  # a write to the file: name it
            raise OSError(e.errno, e.strerror, path) from None
        raise
    finally:
        log.close()


MAX_SUMMARY_BYTES = 16 << 20  # a summary is a few KB (a depth-0 model's weights included)
MAX_METRICS_BYTES = 1 << 30  # ~ a million rows of a 10-layer net; more is not a run lossbench wrote


def read_bounded(path: str, limit: int) -> bytes:
    """The bytes of `path`, or RunFolderError when it holds more than `limit` (or is no plain file).

    Opened without blocking and checked before it is read: a FIFO or a device in a run folder is an
    error, not a wait forever.
    """
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise RunFolderError([("", "is not a plain file")], path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with open(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise RunFolderError([("", "is not a plain file")], path)
        if info.st_size > limit:
            raise RunFolderError([("", f"is larger than {limit >> 20} MiB, more than any run writes")], path)
        data = f.read(limit + 1)
    if len(data) > limit:
        raise RunFolderError([("", f"is larger than {limit >> 20} MiB, more than any run writes")], path)
    return data


def read_json(path: str, limit: int = MAX_SUMMARY_BYTES) -> Any:
    """A JSON file of a run folder; ValueError when it is not JSON (or nests absurdly deep)."""
    try:
        return json.loads(read_bounded(path, limit))
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_run_yaml(path: str) -> Any:
    """A YAML file of a run folder (config.yaml, sweep.yaml), with a config file's bounds."""
    from ..config.yaml_io import MAX_CONFIG_BYTES, parse_yaml

    return parse_yaml(read_bounded(path, MAX_CONFIG_BYTES).decode("utf-8", "replace"), path, fast=True)


def read_swept(folder: str) -> list[str]:
    """The keys the sweep in `folder` varied (its sweep.yaml's `swept`), read within a config's
    bounds; [] when there is no readable one (a label preference only: labels are right without)."""
    try:
        swept = read_run_yaml(os.path.join(folder, "sweep.yaml")).get("swept")
    except (OSError, UserError, AttributeError):
        return []
    return [k for k in swept if isinstance(k, str)] if isinstance(swept, list) else []


def format_problem(summary: dict) -> str | None:
    """Why a run's summary is not of this lossbench's run format (`RUN_FORMAT`), or None."""
    if summary.get("format") == RUN_FORMAT:
        return None
    versions = summary["versions"] if isinstance(summary.get("versions"), dict) else {}
    return (
        f"made by lossbench {versions.get('lossbench', '?')} (run format {summary.get('format', 'none')}; "
        f"this lossbench reads format {RUN_FORMAT}); rerun with --force"
    )


def read_summary(folder: str) -> dict | None:
    """The summary of a finished run, or None when the folder holds no complete, valid one."""
    try:
        summary = read_json(os.path.join(folder, "summary.json"))
    except (OSError, ValueError, UserError):
        return None
    if not isinstance(summary, dict) or summary.get("status") not in DONE or format_problem(summary):
        return None
    return summary


def is_finished(folder: str, cfg: Config | None = None) -> bool:
    """True when `folder` holds a finished run (of `cfg`, when given: its config.yaml is `cfg`).

    Whether such a run may be reused (its files whole and consistent) is `runs.verify.reuse_check`.
    """
    if read_summary(folder) is None:
        return False
    if cfg is None:
        return True
    try:
        return read_run_yaml(os.path.join(folder, "config.yaml")) == cfg.to_dict()
    except (OSError, UserError):
        return False


def versions() -> dict:
    import torch

    from .. import __version__

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lossbench": __version__,
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
    }


def strict_json(value: Any) -> Any:
    """`value` as strict JSON takes it: every NaN and infinity None (JSON has no such numbers, so
    run files and verdicts.json write them as null, which `load_metrics` reads back as NaN), numpy
    and torch scalars and arrays plain Python, keys text, anything else its text. The one writer's
    rule for every JSON file lossbench writes."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return strict_json(value.tolist()) if hasattr(value, "tolist") else str(value)


class RunWriter:
    """Writes one run folder: config first, metrics rows as they come, summary last.

    It holds the run's lock (`journal.hold`) from start to `close`: a second writer of the same
    run, in another process, stops with `RunBusy` instead of deleting or mixing into this one.
    Replacing a finished run (`--force`, or one that does not verify), it writes into a hidden
    sibling folder and swaps it in only when the new run ends: an interrupted or failed
    replacement leaves the old run as it was.
    """

    def __init__(self, folder: str, cfg: Config):
        self.folder = folder
        self.metrics: TextIO | None = None
        self.n_rows = 0
        self.replacing, self.path, self.made = False, folder, False
        parent, name = os.path.split(folder)
        os.makedirs(parent or ".", exist_ok=True)
        self.lock: journal.Journal | None = journal.hold(
            folder
        )  # RunBusy when another process is writing this run
        try:
            journal.clean(parent or ".")
            self.replacing = read_summary(folder) is not None
            self.path = os.path.join(parent, f".{name}.new-{os.getpid()}") if self.replacing else folder
            if self.replacing:
                self.lock.made(os.path.basename(self.path))
            elif os.path.lexists(folder):
                _remove_incomplete_run(folder, name)
            os.makedirs(self.path)
            self.made = True
            resolved = cfg.to_dict()
            atomic_write(
                os.path.join(self.path, "config.yaml"), yaml.safe_dump(resolved, sort_keys=False).encode()
            )
            self.metrics = open(os.path.join(self.path, "metrics.jsonl"), "a")
        except BaseException:
            self.discard()
            raise

    def log(self, row: dict) -> None:
        assert self.metrics is not None, "the writer is closed"
        self.metrics.write(json.dumps(strict_json(row), allow_nan=False) + "\n")
        self.metrics.flush()
        self.n_rows += 1

    def finish(
        self,
        summary: dict,
        model: torch.nn.Module | None = None,
        view: dict | None = None,
        snapshots: dict | None = None,
    ) -> None:
        """Close the metrics, save the weights, the picture data and the weight snapshots
        (`train.snapshots`), then the summary (last)."""
        import io

        import numpy as np
        import torch

        if self.metrics is not None:
            self.metrics.close()
        if self.replacing and summary.get("status") == "interrupted":
            self.discard()  # the finished run being replaced stays
            return
        summary["n_rows"] = self.n_rows  # what a reuse checks the metrics file against
        if model is not None:
            buf = io.BytesIO()
            torch.save(model.state_dict(), buf)
            atomic_write(os.path.join(self.path, "model.pt"), buf.getvalue())
        for name, arrays in (("view.npz", view), ("snapshots.npz", snapshots)):
            if arrays is not None:
                buf = io.BytesIO()
                np.savez_compressed(buf, allow_pickle=False, **{k: np.asarray(v) for k, v in arrays.items()})
                atomic_write(os.path.join(self.path, name), buf.getvalue())
        atomic_write(
            os.path.join(self.path, "summary.json"),
            json.dumps(strict_json(summary), indent=2, allow_nan=False).encode(),
        )
        if self.replacing:  # swap the whole new run in, then drop the old one
            parent, name = os.path.split(self.folder)
            old = f".{name}.old-{os.getpid()}"
            assert self.lock is not None, "the writer holds its run's lock until close"
            self.lock.moved(old, name)  # a kill between the renames: the next writer puts it back
            os.rename(self.folder, os.path.join(parent, old))
            os.rename(self.path, self.folder)
            self.path = self.folder
            shutil.rmtree(os.path.join(parent, old), ignore_errors=True)

    def discard(self) -> None:
        """Delete what this writer wrote: the whole folder, or only the replacement in progress."""
        if self.made and not (self.replacing and self.path == self.folder):
            shutil.rmtree(self.path, ignore_errors=True)
        self.close()

    def close(self) -> None:
        """Close the metrics file after a failure (a failing flush was already reported) and release
        the run's lock. An unfinished replacement is deleted: the finished run it was to replace stays.
        """
        if self.metrics is not None and not self.metrics.closed:
            try:
                self.metrics.close()
            except OSError:
                pass
        if self.replacing and self.made and self.path != self.folder:
            shutil.rmtree(self.path, ignore_errors=True)
        if self.lock is not None:
            journal.release(self.lock)
            self.lock = None


def is_own_run_folder(folder: str, run_id: str) -> bool:
    """Whether `folder` is a run folder lossbench wrote for run `run_id`: its config.yaml hashes to
    that id (the name is the hash of the config it holds), or its summary names it (a failed member)."""
    try:
        config = read_run_yaml(os.path.join(folder, "config.yaml"))
        if isinstance(config, dict) and config_hash(config) == run_id:
            return True
    except (OSError, UserError, UnicodeError):
        pass
    try:
        summary = read_json(os.path.join(folder, "summary.json"))
        return isinstance(summary, dict) and summary.get("run_id") == run_id
    except (OSError, ValueError, UserError):
        return False


def _remove_incomplete_run(folder: str, run_id: str) -> None:
    """Remove an earlier, unfinished attempt at this run (the caller holds the run's lock), after
    checking it is one: anything else at that path is the user's, and stays."""
    if os.path.isdir(folder) and not os.path.islink(folder):
        journal.clean(folder)  # the temporary files of a writer killed in it
        if not os.listdir(folder) or is_own_run_folder(folder, run_id):
            shutil.rmtree(folder)
            return
    raise UserError(
        [("", "exists but is not a lossbench run folder; move it away or choose another --out")], folder
    )


def _missing_folders(folder: str) -> list[str]:
    """The folders on the way to `folder` that do not exist yet, deepest first."""
    missing = []
    path = os.path.abspath(folder)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        missing.append(path)
        path = os.path.dirname(path)
    return missing


def check_writable(root: str) -> None:
    """Raise UserError when results cannot be written under `root` (read-only, not a folder)."""
    probe_dir = root
    while not os.path.exists(probe_dir):
        parent = os.path.dirname(os.path.abspath(probe_dir))
        if parent == probe_dir:
            break
        probe_dir = parent
    if not os.path.isdir(probe_dir):
        raise UserError([("--out", f"{probe_dir} is not a folder")], "results")
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise UserError(
            [
                (
                    "--out",
                    f"cannot write to {probe_dir} (read-only or no permission); "
                    "choose another results folder with --out",
                )
            ],
            "results",
        )


@dataclass
class Run:
    """A run folder read back: `config` and `summary` dicts, `metrics` as columns."""

    path: str
    config: dict
    summary: dict | None
    metrics: dict

    def __repr__(self) -> str:
        status = (self.summary or {}).get("status", "incomplete")
        n = len(self.metrics.get("step", []))
        return f"Run({self.path!r}, {status}, {n} rows)"


class RunFolderError(UserError):
    pass


SCALAR_KEYS = ("step", "epoch", "loss", "acc", "val_loss", "val_acc", "lr", "time")
"""Metrics every reader takes as one number per row (per-layer metrics are lists)."""


def read_rows(path: str, whole: bool = False) -> list[dict]:
    """The rows of a metrics.jsonl, one JSON object a line: the one parser of the file.

    A last line cut short by a kill is left out (with `whole`, refused); any other line that is
    not a JSON object is a RunFolderError.
    """
    text = read_bounded(path, MAX_METRICS_BYTES).decode("utf-8", "replace")
    if whole and text.split("\n")[-1].strip():
        raise RunFolderError([("", "ends in a line cut short")], path)
    lines = [line for line in text.split("\n") if line.strip()]
    try:  # one parse for the whole file: much faster than a parse per line
        rows = json.loads("[" + ",".join(lines) + "]")
    except (ValueError, RecursionError):
        rows = []
        for i, line in enumerate(lines):
            try:
                rows.append(json.loads(line))
            except (ValueError, RecursionError):
                if i == len(lines) - 1 and not whole:  # a torn last line, cut short by a kill
                    break
                raise RunFolderError([("", f"line {i + 1} is not valid JSON")], path) from None
    if not all(isinstance(row, dict) for row in rows):
        raise RunFolderError([("", "holds a line that is not a JSON object")], path)
    return rows


def load_metrics(path: str) -> dict:
    """metrics.jsonl as columns: scalars [n_rows], per-layer [n_rows, n_layers] numpy arrays.

    A last line cut short by a kill is ignored; any other unreadable line is an error.
    """
    import numpy as np

    rows = read_rows(path)
    keys = dict.fromkeys(k for row in rows for k in row)
    columns = {}
    for key in keys:
        values = [row.get(key) for row in rows]
        try:
            width = max((len(v) for v in values if isinstance(v, list)), default=None)
            if width is not None:
                nan = [float("nan")] * width
                values = [v if isinstance(v, list) else nan for v in values]
            column = np.array([float("nan") if v is None else v for v in values], dtype=float)
            if column.ndim > 2 or (width is not None and (column.ndim != 2 or key in SCALAR_KEYS)):
                raise ValueError
        except (ValueError, TypeError):
            what = "a number per row" if width is None else f"{width} numbers per row"
            raise RunFolderError([(str(key), f"must hold {what} (null for none)")], path) from None
        if width is not None:
            column = column.reshape(len(values), width)
        columns[key] = column
    return columns


def load_run(path: str) -> Run:
    """Read a run folder: the config and summary as dicts, the metrics as columns (per layer).

    Raises RunFolderError naming the path when the folder is not a run or its files are damaged.
    """
    if not os.path.isdir(path):
        raise RunFolderError([("", "not a folder")], path)
    missing = [f for f in ("config.yaml", "metrics.jsonl") if not os.path.isfile(os.path.join(path, f))]
    if missing:
        raise RunFolderError([("", f"not a run folder: {', '.join(missing)} missing")], path)
    try:
        config = read_run_yaml(os.path.join(path, "config.yaml"))
    except OSError as e:
        raise RunFolderError([("config.yaml", f"unreadable: {e.strerror or e}")], path) from None
    except UserError as e:
        raise RunFolderError([("config.yaml", e.problems[0][1])], path) from None
    if not isinstance(config, dict):
        raise RunFolderError([("config.yaml", "does not hold a config mapping")], path)
    summary = None
    summary_path = os.path.join(path, "summary.json")
    if os.path.exists(summary_path):
        try:
            summary = read_json(summary_path)
        except (OSError, ValueError):
            raise RunFolderError([("summary.json", "is truncated or not JSON")], path) from None
        except UserError as e:
            raise RunFolderError([("summary.json", e.problems[0][1])], path) from None
        if not isinstance(summary, dict):
            raise RunFolderError([("summary.json", "does not hold a mapping")], path)
        if format_problem(summary):
            raise RunFolderError([("", format_problem(summary) or "")], path)
    return Run(path, config, summary, load_metrics(os.path.join(path, "metrics.jsonl")))
