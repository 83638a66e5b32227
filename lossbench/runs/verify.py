"""Reuse only what verifies: the checks a finished run folder must pass before it is reused.

A folder whose `summary.json` says `finished` or `diverged` may still be unfit: a metrics file cut
short or garbled by hand, a summary edited or written by a tool that left fields out, a config that
is not this run's, weights missing or not loadable. Reusing it would pass the damage on to every
table and figure (or crash them on every later run), so such a run is trained again, with a note
saying why.

Finished means complete: every step done (`steps_done == steps`), the last row at the last step,
and exactly the rows the config's `log_every` records (derived from the config when the summary
does not say). The numbers inside rows that look whole are not checked (no hash is kept).
"""

from __future__ import annotations

import os

from ..config.schema import NUMBER, SUMMARY, SUMMARY_OPTIONAL, TARGET, Config
from ..errors import UserError
from .store import RunFolderError, format_problem, read_json, read_rows, read_run_yaml


def _type_problem(key: str, value, types: tuple, optional: bool) -> str | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, types):
        names = " or ".join(t.__name__ for t in types) + (" or null" if optional else "")
        return f"summary.json: {key} is {value!r}, not {names}"
    if isinstance(value, (int, float)) and value != value:  # NaN never reads back from strict JSON
        return f"summary.json: {key} is not a number"
    return None


def summary_problem(summary: dict, run_id: str) -> str | None:
    """Why a finished-looking summary cannot be trusted, or None."""
    if format_problem(summary):
        return format_problem(summary)
    for key, types in SUMMARY.items():  # the one shape (`config.schema`); bool is no number
        if key not in summary:
            return f"summary.json has no {key}"
        problem = _type_problem(key, summary[key], types, False)
        if problem:
            return problem
    for key, value in summary.items():
        if key.startswith("final_"):
            problem = _type_problem(key, value, NUMBER, True)
        elif key in SUMMARY_OPTIONAL:
            problem = _type_problem(key, value, SUMMARY_OPTIONAL[key], True)
        else:
            continue
        if problem:
            return problem
    problem = _targets_problem(summary.get("targets", []))
    if problem:
        return problem
    if summary["run_id"] != run_id:
        return f"summary.json names run {summary['run_id']!r}, not {run_id}"
    if not 0 <= summary["steps_done"] <= summary["steps"]:
        return (
            f"summary.json: steps_done {summary['steps_done']} is not between 0 and steps {summary['steps']}"
        )
    if summary["status"] == "diverged" and summary.get("diverged_step") is None:
        return "summary.json says diverged without a diverged_step"
    if summary["status"] == "finished" and summary["steps_done"] != summary["steps"]:
        return f"summary.json says finished after {summary['steps_done']} of {summary['steps']} steps"
    return None


def _targets_problem(targets) -> str | None:
    """Why `targets` is not a list of {metric, value, steps_to, seconds_to}, the one shape of a
    summary's targets (`engine.recording`), or None."""
    if not isinstance(targets, list) or not all(isinstance(t, dict) for t in targets):
        return "summary.json: targets is not a list of mappings"
    for i, t in enumerate(targets):
        for key, types in TARGET.items():
            if key not in t:
                return f"summary.json: targets[{i}] has no {key}"
            problem = _type_problem(f"targets[{i}].{key}", t[key], types, key.endswith("_to"))
            if problem:
                return problem
    return None


def expected_rows(summary: dict, log_every: int) -> tuple[int, int]:
    """(number of rows, step of the last row) a run with this summary recorded: a row every
    `log_every` steps and at the last step (`engine.recording.Recorder.records`); a diverged run
    stops with one row at the step it diverged."""
    if summary["status"] == "diverged":
        last = summary["diverged_step"]
        return -(-last // log_every) + 1, last  # the recorded steps before it, then its own row
    last = summary["steps"] - 1
    return -(-summary["steps"] // log_every) + (last % log_every != 0), last


def metrics_problem(folder: str, summary: dict, log_every: int) -> str | None:
    """Why metrics.jsonl does not hold the run the summary describes, or None."""
    try:
        parsed = read_rows(os.path.join(folder, "metrics.jsonl"), whole=True)
    except RunFolderError as e:
        return f"metrics.jsonl {e.problems[0][1]}"
    raw_steps = [row.get("step") for row in parsed]
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in raw_steps):
        return "metrics.jsonl holds a row without an integer step"
    steps = [int(s) for s in raw_steps if s is not None]
    if any(b <= a for a, b in zip(steps, steps[1:])):
        return "metrics.jsonl steps do not increase"
    recorded = summary.get("n_rows")
    n_rows, last = expected_rows(summary, log_every)
    if recorded is not None and recorded != n_rows:
        return f"summary.json says {recorded} rows, its steps and log_every {log_every} make {n_rows}"
    if len(parsed) != n_rows:
        return f"metrics.jsonl holds {len(parsed)} rows, a complete run holds {n_rows}"
    if steps[-1] != last:
        return f"metrics.jsonl ends at step {steps[-1]}, the run's last step is {last}"
    return None


def weights_problem(folder: str) -> str | None:
    """Why model.pt (a state_dict of tensors) or view.npz (a numpy archive) cannot be loaded, or None."""
    import torch

    for name in ("model.pt", "view.npz"):
        path = os.path.join(folder, name)
        if not os.path.isfile(path) or os.path.getsize(path) == 0:
            return f"{name} is missing or empty"
    path = os.path.join(folder, "model.pt")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds (pickle, zip, runtime) for a damaged file
        return f"model.pt does not load ({type(e).__name__})"
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(t, torch.Tensor) for t in state.values())
    ):
        return "model.pt does not hold a state_dict of tensors"
    return archive_problem(folder, "view.npz")


def archive_problem(folder: str, name: str) -> str | None:
    """Why the numpy archive `name` in `folder` is missing or cannot be read, or None."""
    import zipfile

    try:
        with zipfile.ZipFile(os.path.join(folder, name)) as z:
            if z.testzip() is not None:
                return f"{name} is damaged"
    except FileNotFoundError:
        return f"{name} is missing"
    except (zipfile.BadZipFile, OSError, EOFError):
        return f"{name} is not a numpy archive"
    return None


def problem(folder: str, cfg: Config) -> str | None:
    """Why the finished run in `folder` must not be reused for `cfg`, or None when it verifies.

    Checks the summary's fields and types, that config.yaml is `cfg`, the metrics rows against the
    summary and the config (every line whole, steps increasing, the rows a complete run records, the
    last at its last step), and that a finished run's weights, picture data and snapshots load.
    """
    run_id = os.path.basename(os.path.normpath(folder))
    try:
        summary = read_json(os.path.join(folder, "summary.json"))
        if not isinstance(summary, dict):
            return "summary.json does not hold a mapping"
        why = summary_problem(summary, run_id)
        if why:
            return why
        config = read_run_yaml(os.path.join(folder, "config.yaml"))
        if config != cfg.to_dict():
            return "config.yaml is not this run's config"
        why = metrics_problem(folder, summary, cfg.train.log_every)
        if why:
            return why
    except FileNotFoundError as e:
        return f"{os.path.basename(e.filename or '?')} is missing"
    except UserError as e:  # a file too large, or no plain file (a FIFO)
        return f"{os.path.basename(e.source)} {e.problems[0][1]}"
    except (OSError, ValueError) as e:
        return f"a file is unreadable ({e})"
    if summary["status"] != "finished":
        return None
    why = weights_problem(folder)
    if why is None and cfg.train.snapshots:  # what `landscape` draws the training path from
        why = archive_problem(folder, "snapshots.npz")
    return why


def reuse_check(folder: str, cfg: Config) -> tuple[bool, str | None]:
    """(reusable, note): reusable when a finished run of `cfg` verifies; the note says why a
    finished-looking run is redone (None when there simply is no finished run)."""
    from .store import DONE

    try:
        summary = read_json(os.path.join(folder, "summary.json"))
    except FileNotFoundError:
        return False, None  # never finished (or never started)
    except UserError as e:
        why: str | None = f"summary.json {e.problems[0][1]}"
    except (OSError, ValueError) as e:
        why = f"summary.json is unreadable: {e}"
    else:
        if not isinstance(summary, dict) or summary.get("status") not in DONE:
            return False, None  # interrupted, failed: redone as usual
        why = problem(folder, cfg)
    if why is None:
        return True, None
    return False, f"the finished run in {folder} does not verify ({why}); training it again"
