"""The sweep table: run id, swept values, then results (sweep.csv, and the terminal's text)."""

from __future__ import annotations

import csv
import io
import os

from ..config.grid import lookup
from ..config.schema import Config

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
