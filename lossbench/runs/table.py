"""The sweep table: one row per grid point, each result the mean over its seeds with a 95% interval.

`sweep.csv` and the printed table answer the sweep's question: per point of the grid (the swept
values but the seed), the final validation metric, the metric every loss shares when the members
train different losses, the gradient ratio and, for every `train.target`, the steps to it and how
many seeds reached it; each a mean over the seeds with its 95% Student-t interval
(`verdicts.seed_interval`). The printed table ends with the answer in words: which point ends best
and which reaches a target fastest, and which points cannot be told apart from it at this number
of seeds (overlapping intervals). `runs.csv` keeps one row per run (run id, values, each target's
steps), in grid order.
"""

from __future__ import annotations

import csv
import io
import math
import os
import textwrap
from dataclasses import dataclass

from ..config.grid import lookup
from ..config.schema import Config, higher_is_better
from ..verdicts import INTERVAL, ONE_SEED, Interval, seed_interval
from .store import DONE


@dataclass
class Cell:
    """One result at one grid point: its interval over the seeds that have a value, of `n_seeds`."""

    interval: Interval
    n_seeds: int
    counts: bool = False  # say "k/n" even when every seed has a value (steps to a target)

    def __str__(self) -> str:
        mean, lo, hi, n = self.interval
        if n == 0:  # no seed reached the target (or diverged), or no run records the metric
            return f"- (0/{self.n_seeds})" if self.counts else "-"
        text = f"{mean:.3g}" if math.isnan(hi) else _plus_minus(mean, hi - mean)
        return f"{text} ({n}/{self.n_seeds})" if self.counts or n < self.n_seeds else text


def _plus_minus(mean: float, half: float) -> str:
    """`0.97 +-0.19`: the mean to the decimal of the half-width's second significant digit."""
    if half > 0 and 1e-3 <= abs(mean) < 1e5:
        decimals = max(0, 1 - math.floor(math.log10(half)))
        return f"{mean:.{decimals}f} +-{half:.{decimals}f}"
    return f"{mean:.3g} +-{half:.2g}"


def _split(summaries: list[dict]) -> str:
    return "val" if any(s.get("final_val_loss") is not None for s in summaries) else "train"


def _columns(resolved: list[dict], summaries: list[dict]) -> list[tuple[str, object]]:
    """(name, summary key or target (metric, value)) of each result: the final metric(s), the
    shared metric when the losses differ, the gradient ratio, every target. (No wall time: stacked
    members share their stack's, so it has no spread over seeds; runs.csv has it.)"""
    split = _split(summaries)
    same_loss = len({repr(c.get("loss")) for c in resolved}) == 1
    classes = any(s.get("task") not in (None, "regression") for s in summaries)
    names = ["loss"] if same_loss else []
    names += ["acc"] if classes else []
    shared = "nll" if classes else "mse"  # the metric the figures compare different losses on
    finished = [s for s in summaries if s.get("status") == "finished"]
    if not same_loss and all(s.get(f"final_{split}_{shared}") is not None for s in finished):
        names.append(shared)  # (a hinge run has no probabilities, so no nll: accuracy is shared)
    out: list[tuple[str, object]] = [(f"{split}_{m}", f"final_{split}_{m}") for m in names]
    out.append(("grad_ratio", "grad_ratio_first_last"))
    targets = {(t["metric"], t["value"]): None for s in summaries for t in s.get("targets") or []}
    out += [(f"steps to {m}{_sign(m)}{v:g}", (m, v)) for m, v in targets]
    return [
        (n, k) for n, k in out if any(_value(s, k) is not None for s in summaries) or isinstance(k, tuple)
    ]


def _sign(metric: str) -> str:
    return ">=" if higher_is_better(metric) else "<="


def _value(summary: dict, key) -> float | None:
    """A summary's result: a summary key, or the steps to its target (metric, value)."""
    if isinstance(key, tuple):
        t = next((t for t in summary.get("targets") or [] if (t["metric"], t["value"]) == key), None)
        return None if t is None else t["steps_to"]
    v = summary.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def table(
    resolved: list[dict], summaries: list[dict], swept: list[str], values: list[tuple] | None = None
) -> tuple[list[str], list[list]]:
    """The sweep table of the runs with these resolved configs and summaries, one row per grid point
    (the `swept` keys but the seed, in the runs' order): the swept values, the number of seeds, how
    many diverged or failed (when any did), then a `Cell` per result; (header, rows). `values`: each
    run's swept values as they are to be shown (default: looked up in its config)."""
    keys = [k for k in swept if k != "seed"]
    points: dict[tuple, list[int]] = {}
    for i, config in enumerate(resolved):
        point = values[i] if values else tuple(lookup(config, k) for k in keys)
        points.setdefault(point, []).append(i)
    columns = _columns(resolved, summaries)
    trouble = [
        s for s in ("diverged", "interrupted", "failed") if any(x.get("status") == s for x in summaries)
    ]
    header = [*keys, "seeds", *trouble, *(name for name, _ in columns)]
    rows = []
    for point, members in points.items():
        mine = [summaries[i] for i in members]
        counts = [sum(s.get("status") == t for s in mine) for t in trouble]
        cells = [
            Cell(
                # an interrupted run's last values are no result: counted, never averaged
                seed_interval(
                    [v for s in mine if s.get("status") in DONE and (v := _value(s, key)) is not None]
                ),
                len(mine),
                isinstance(key, tuple),
            )
            for _, key in columns
        ]
        rows.append([*point, len(mine), *counts, *cells])
    return header, rows


def run_table(configs: list[Config], records: list[dict], swept: list[str]) -> tuple[list[str], list[list]]:
    """`runs.csv`: one row per run in grid order: run id, swept values, seed, status, each result,
    each target's steps (empty where not reached), a note (reused, redone, the error's last line)."""
    keys = [k for k in swept if k != "seed"] + ["seed"]
    summaries = [r["summary"] or {} for r in records]
    columns = [("status", "status"), *_columns([c.to_dict() for c in configs], summaries)]
    columns[1:1] = [(f"train_{m}", f"final_train_{m}") for m in ("loss", "acc")]
    columns = [(n, k) for n, k in dict([*columns, ("wall_time", "wall_time")]).items()]
    columns = [c for c in columns if c[0] == "status" or any(_value(s, c[1]) is not None for s in summaries)]
    header = ["run_id", *keys, *[name for name, _ in columns], "note"]
    rows = []
    for cfg, rec, s in zip(configs, records, summaries):
        resolved = cfg.to_dict()
        note = "reused" if rec["reused"] else "redone: did not verify" if rec.get("note") else ""
        if rec.get("error"):
            note = rec["error"].splitlines()[-1][:80]
        elif s.get("status") == "diverged":
            note = f"diverged at step {s.get('diverged_step')}"
        values = [s.get("status") if key == "status" else _value(s, key) for _, key in columns]
        rows.append([os.path.basename(rec["folder"]), *[lookup(resolved, k) for k in keys], *values, note])
    return header, rows


def csv_text(header: list[str], rows: list[list]) -> str:
    """CSV of a table; a `Cell` becomes its mean, the interval's ends and its seed count (columns
    NAME, NAME_lo95, NAME_hi95, NAME_n)."""
    cells = {j for j in range(len(header)) if any(isinstance(r[j], Cell) for r in rows)}
    names = []
    for j, name in enumerate(header):
        names += [name, f"{name}_lo95", f"{name}_hi95", f"{name}_n"] if j in cells else [name]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    for row in rows:
        out = []
        for v in row:
            if isinstance(v, Cell):
                out += [_number(x) for x in v.interval[:3]] + [v.interval.n]
            else:
                out.append("" if v is None else v)
        writer.writerow(out)
    return buf.getvalue()


def _number(x: float) -> object:
    return "" if math.isnan(x) else x


# columns the terminal table leaves out first when it would be wider than the terminal (the CSVs keep all)
DROP_FIRST = ("wall_time", "train_loss", "train_acc", "note", "status", "val_loss", "grad_ratio")
CELL_WIDTH = 28  # a longer value (a component with its arguments) is cut, with "..."


def format_table(header: list[str], rows: list[list], width: int = 100) -> str:
    """The table as aligned text at most `width` columns wide: a header wider than its column's
    values goes on two lines (`steps to` above `val_acc>=0.9`), long cells are cut and, if still too
    wide, the columns of DROP_FIRST are left out, in that order, with a line naming them."""

    def cell(v):
        if v is None:
            return "-"
        text = format(v, ".4g") if isinstance(v, float) else str(v)
        return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 3] + "..."

    body = [[cell(v) for v in row] for row in rows]
    heads = []
    for j, name in enumerate(header):
        values = max((len(r[j]) for r in body), default=0)
        top, _, bottom = name.rpartition(" ") if len(name) > values and " " in name else ("", "", name)
        heads.append((top, bottom))
    cells = [[t for t, _ in heads], [b for _, b in heads], *body]
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
    if not lines[0]:
        lines = lines[1:]  # no header needed two lines
    if left_out:
        lines.append(f"(not shown, to fit {width} columns: {', '.join(left_out)}; all in sweep.csv)")
    return "\n".join(lines)


def answer(header: list[str], rows: list[list], n_keys: int, width: int = 100) -> list[str]:
    """The table's answer in words: the point that ends best on the final metric (accuracy, else the
    shared metric, else the loss) and the one that reaches each target fastest, and the points that
    cannot be told apart from it (overlapping 95% intervals: a conservative reading, since intervals
    of two different means may overlap a little). With one seed: that it may be chance. A table of
    one point (only seeds swept) gets only the line saying what `+-` is."""
    if not rows:
        return []
    names = [h for h in header if isinstance(rows[0][header.index(h)], Cell)]
    if n_keys == 0 or len(rows) < 2:
        names = []  # nothing to compare
    final = (
        next((n for n in names if n.endswith("_acc")), None)
        or next((n for n in names if n.endswith(("_mse", "_nll"))), None)
        or next((n for n in names if n.endswith("_loss")), None)
    )
    questions = [(f"ends best on {final}", final, higher_is_better(final))] if final else []
    questions += [(f"reaches {n[9:]} fastest", n, False) for n in names if n.startswith("steps to ")]
    one_seed = max(r[n_keys] for r in rows) == 1
    lines = []
    for words, name, higher in questions:
        lines.append(
            _verdict(
                words, [(_point(header, r, n_keys), r[header.index(name)]) for r in rows], higher, one_seed
            )
        )
    if names and not any(n.startswith("steps to ") for n in names):
        lines.append("(to compare speeds, set a target: train.target: {metric: ..., value: ...})")
    n = sorted({r[n_keys] for r in rows})
    seeds = f"{n[0]}-{n[-1]}" if len(n) > 1 else f"{n[0]}"
    lines.append(
        ONE_SEED if one_seed else f"(+-: {INTERVAL}, {seeds} seeds; overlapping intervals: not told apart)"
    )
    return [w for line in lines for w in textwrap.wrap(line, width, subsequent_indent="  ")]


def _point(header: list[str], row: list, n_keys: int) -> str:
    """A grid point in words: `activation=relu depth=10` (the last part of each swept key, a
    component's name by its own: `loss=mae`)."""
    return " ".join(f"{k.removesuffix('.name').rsplit('.', 1)[-1]}={v}" for k, v in zip(header, row[:n_keys]))


def _verdict(words: str, cells: list[tuple[str, Cell]], higher: bool, one_seed: bool) -> str:
    """One answer: the best point among those where every seed has a value (else among all), the
    points whose intervals overlap its own ("k/n" where only k of n seeds have a value), and those
    where no seed has one."""
    found = [(p, c) for p, c in cells if c.interval.n]
    full = [(p, c) for p, c in found if c.interval.n == c.n_seeds] or found
    if not full:
        return f"{words}: no point has a value"
    best_p, best = max(full, key=lambda pc: pc[1].interval.mean * (1 if higher else -1))
    equal = [p for p, c in full if p != best_p and c.interval.mean == best.interval.mean]
    text = f"{words}: {' and '.join([best_p, *equal])} at {best}" + (" (a tie)" if equal else "")
    if not one_seed:
        tied = [
            p + (f" ({c.interval.n}/{c.n_seeds})" if c.interval.n < c.n_seeds else "")
            for p, c in found
            if p != best_p and p not in equal and not _apart(best.interval, c.interval)
        ]
        text += f"; not told apart from it: {', '.join(tied)}" if tied else "; apart from every other point"
    never = [p for p, c in cells if not c.interval.n]
    return text + (f"; no seed at {', '.join(never)}" if never else "")


def _apart(a: Interval, b: Interval) -> bool:
    """Whether two 95% intervals do not overlap (a NaN end, from one seed, never tells apart)."""
    return a.hi < b.lo or b.hi < a.lo
