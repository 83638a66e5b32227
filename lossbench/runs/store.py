"""Run folders: `results/<name>/<run_id>/` holding what a run did, readable without the trainer.

- `config.yaml`: the resolved config (every default filled in), written first;
- `metrics.jsonl`: one JSON row per recorded step, appended as the run goes;
- `model.pt`: the trained weights (a state_dict), and `view.npz`: the data and the model's
  predictions on a grid, for the task pictures;
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
import shutil
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from ..config.schema import Config
from ..errors import UserError

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
    return os.path.join(root, cfg.name, config_hash(cfg.to_dict()))


def atomic_write(path: str, data: bytes) -> None:
    """Write `data` to `path` so that a reader sees either the old file or the whole new one."""
    folder = os.path.dirname(path) or "."
    remove_dead_leftovers(folder)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".tmp-{os.getpid()}-")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a results folder is shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_dead_leftovers(folder: str) -> None:
    """Clean up after writers that were killed: each leftover is named after its process id.

    - `.tmp-<pid>-*`: an `atomic_write`'s temporary file, deleted;
    - `.<run_id>.new-<pid>`: a forced rerun's replacement folder, deleted;
    - `.<run_id>.old-<pid>`: a finished run caught between the two renames of a swap, put back
      (deleted when the swap had finished).

    Those of live processes (a concurrent writer's) stay.
    """
    try:
        names = [n for n in os.listdir(folder) if n.startswith(".tmp-") or ".new-" in n or ".old-" in n]
    except OSError:
        return
    for name in names:
        if not name.startswith("."):
            continue
        temporary = name.startswith(".tmp-")
        pid = name[len(".tmp-") :].split("-", 1)[0] if temporary else name.rsplit("-", 1)[-1]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        path, final = os.path.join(folder, name), os.path.join(folder, name[1:].rpartition(".")[0])
        try:
            if temporary:
                os.unlink(path)
            elif ".old-" in name and not os.path.exists(final):
                os.replace(path, final)
            else:
                shutil.rmtree(path)
        except OSError:
            pass  # another process cleaned it first, or the folder is read-only


def _alive(pid: int) -> bool:
    if os.name == "nt":
        return True  # (signal 0 is CTRL_C_EVENT there): leave the file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_summary(folder: str) -> dict | None:
    """The summary of a finished run, or None when the folder holds no complete, valid one."""
    try:
        with open(os.path.join(folder, "summary.json")) as f:
            summary = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("status") not in DONE:
        return None
    return summary


def is_finished(folder: str, cfg: Config | None = None) -> bool:
    """True when `folder` holds a finished run (of `cfg`, when given)."""
    if read_summary(folder) is None:
        return False
    if cfg is None:
        return True
    try:
        with open(os.path.join(folder, "config.yaml")) as f:
            return yaml.load(f, Loader=SAFE_LOADER) == cfg.to_dict()
    except (OSError, yaml.YAMLError):
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
    """`value` with every NaN and infinity replaced by None: JSON has no such numbers, so the run
    files write them as null (which `load_metrics` reads back as NaN) and strict parsers read them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


class RunWriter:
    """Writes one run folder: config first, metrics rows as they come, summary last.

    Replacing a finished run (`--force`), it writes into a hidden sibling folder and swaps it in
    only when the new run ends: an interrupted or failed replacement leaves the old run as it was.
    """

    def __init__(self, folder: str, cfg: Config):
        self.folder = folder
        parent, name = os.path.split(folder)
        remove_dead_leftovers(parent)
        self.replacing = is_finished(folder)
        self.path = os.path.join(parent, f".{name}.new-{os.getpid()}") if self.replacing else folder
        if os.path.exists(self.path):
            shutil.rmtree(self.path)  # an incomplete earlier attempt
        os.makedirs(self.path)
        resolved = cfg.to_dict()
        atomic_write(
            os.path.join(self.path, "config.yaml"), yaml.safe_dump(resolved, sort_keys=False).encode()
        )
        self.metrics = open(os.path.join(self.path, "metrics.jsonl"), "a")

    def log(self, row: dict) -> None:
        self.metrics.write(json.dumps(strict_json(row), allow_nan=False) + "\n")
        self.metrics.flush()

    def finish(self, summary: dict, model: torch.nn.Module | None = None, view: dict | None = None) -> None:
        """Close the metrics, save the weights and the picture data, then the summary (last)."""
        import io

        import numpy as np
        import torch

        self.metrics.close()
        if self.replacing and summary.get("status") == "interrupted":
            self.discard()  # the finished run being replaced stays
            return
        if model is not None:
            buf = io.BytesIO()
            torch.save(model.state_dict(), buf)
            atomic_write(os.path.join(self.path, "model.pt"), buf.getvalue())
        if view is not None:
            buf = io.BytesIO()
            np.savez_compressed(buf, allow_pickle=False, **{k: np.asarray(v) for k, v in view.items()})
            atomic_write(os.path.join(self.path, "view.npz"), buf.getvalue())
        atomic_write(
            os.path.join(self.path, "summary.json"),
            json.dumps(strict_json(summary), indent=2, allow_nan=False).encode(),
        )
        if self.replacing:  # swap the whole new run in, then drop the old one
            parent, name = os.path.split(self.folder)
            old = os.path.join(parent, f".{name}.old-{os.getpid()}")
            os.rename(self.folder, old)
            os.rename(self.path, self.folder)
            self.path = self.folder
            shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        """Delete what this writer wrote: the whole folder, or only the replacement in progress."""
        self.close()
        if not (self.replacing and self.path == self.folder):
            shutil.rmtree(self.path, ignore_errors=True)

    def close(self) -> None:
        """Close the metrics file after a failure; a failing flush was already reported.

        An unfinished replacement is deleted: the finished run it was to replace stays.
        """
        if not self.metrics.closed:
            try:
                self.metrics.close()
            except OSError:
                pass
        if self.replacing and self.path != self.folder:
            shutil.rmtree(self.path, ignore_errors=True)


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


def load_metrics(path: str) -> dict:
    """metrics.jsonl as columns: scalars [n_rows], per-layer [n_rows, n_layers] numpy arrays.

    A last line cut short by a kill is ignored; any other unreadable line is an error.
    """
    import numpy as np

    with open(path) as f:
        lines = [line for line in f.read().split("\n") if line.strip()]
    try:  # one parse for the whole file: much faster than a parse per line
        rows = json.loads("[" + ",".join(lines) + "]")
    except ValueError:
        rows = []
        for i, line in enumerate(lines):
            try:
                rows.append(json.loads(line))
            except ValueError:
                if i == len(lines) - 1:  # a torn last line, cut short by a kill
                    break
                raise RunFolderError([("", f"line {i + 1} is not valid JSON")], path) from None
    if not all(isinstance(row, dict) for row in rows):
        raise RunFolderError([("", "holds a line that is not a JSON object")], path)
    keys = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    columns = {}
    for key in keys:
        values = [row.get(key) for row in rows]
        width = max((len(v) for v in values if isinstance(v, list)), default=None)
        if width is not None:
            nan = [float("nan")] * width
            columns[key] = np.array([v if isinstance(v, list) else nan for v in values], dtype=float)
        else:
            columns[key] = np.array([float("nan") if v is None else v for v in values], dtype=float)
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
        with open(os.path.join(path, "config.yaml")) as f:
            config = yaml.load(f, Loader=SAFE_LOADER)
    except (OSError, yaml.YAMLError) as e:
        raise RunFolderError([("config.yaml", f"unreadable: {e}")], path) from None
    if not isinstance(config, dict):
        raise RunFolderError([("config.yaml", "does not hold a config mapping")], path)
    summary = None
    summary_path = os.path.join(path, "summary.json")
    if os.path.exists(summary_path):
        try:
            with open(summary_path) as f:
                summary = json.load(f)
        except (OSError, ValueError):
            raise RunFolderError([("summary.json", "is truncated or not JSON")], path) from None
    return Run(path, config, summary, load_metrics(os.path.join(path, "metrics.jsonl")))
