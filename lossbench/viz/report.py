"""`python -m lossbench report PATH`: one static HTML page for a run, a sweep or a results folder.

The page shows every figure (PNG files in the `figures/` folder beside it: the
folder opens anywhere, offline, with no server), a table of the runs (the config values
that differ, status, final losses, steps to target, divergence) and the config all runs share. It is built from the run folders alone, like the
figures (`lossbench.plots`).
"""

from __future__ import annotations

import html
import os
import time

from .. import progress
from ..config import flatten
from ..config.schema import higher_is_better
from ..runs.store import atomic_write, check_writable
from ..runs.table import answer, table
from . import figures as plots
from . import load
from .curves import run_targets
from .draw import draw

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ccc; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th { background: #f3f3f3; cursor: pointer; position: sticky; top: 0; }
td.text, th.text { text-align: left; }
tr.diverged td { background: #fde8e0; } tr.incomplete td { background: #f4f4f4; color: #777; }
pre { background: #f7f7f7; padding: 0.75em; overflow-x: auto; font-size: 0.85em; }
.note { color: #555; }
"""

# Click a column header to sort by it (numbers numerically, "-" last). Small, no library.
SORT_SCRIPT = """
document.querySelectorAll("table.runs th").forEach(function (th, col) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var up = th.dataset.order !== "up";
    th.dataset.order = up ? "up" : "down";
    function key(row) {
      var t = row.cells[col].textContent.trim(), v = parseFloat(t);
      return t === "-" ? [2, 0] : isNaN(v) ? [1, t] : [0, v];
    }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      var c = x[0] - y[0] || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0);
      return up ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""

CAPTIONS = {
    "loss_curves": "Training and validation curves against step: the loss, or a metric every run shares when "
    "they train different losses (the title says which; mean over seeds, band: its 95% Student-t interval; X: diverged).",
    "convergence": "Steps and wall time to reach each run's target: mean of the seeds that reached it with its "
    "95% Student-t interval, and how many did (no target set: not a failure).",
    "sweep_summary": "What the sweep found: the final validation metric, the gradient ratio and the steps to "
    "target against each swept key, one line per value of the other (mean over seeds, bars: its 95% Student-t interval).",
    "grad_heatmap_w": "Weight-gradient norm per layer over training (log colour scale, input layer at the bottom).",
    "grad_heatmap_out": "Back-propagated gradient norm (into each layer's pre-activation) per layer over training.",
    "grad_profile": "Gradient norm against layer index at the start, middle and end of training.",
    "activation_health": "Saturated fraction, mean derivative relative to its peak, dead fraction and the "
    "update-to-weight ratio per layer (1e-3 guide); the output layer dashed.",
    "task": "The task picture: decision boundary or fitted function with the data.",
    "linear": "Depth-0 models over training: output, output derivative, weight norm and gradients; final "
    "weights and bias in the legend.",
}

COLUMNS = [
    ("status", "status"),
    ("steps_done", "steps"),
    ("final_train_loss", "train loss"),
    ("final_val_loss", "val loss"),
    ("final_val_acc", "val acc"),
    ("final_val_nll", "val nll"),
    ("final_val_mse", "val mse"),
    ("final_val_mae", "val mae"),
    ("diverged_step", "diverged at step"),
    ("grad_ratio_first_last", "grad first/last hidden (start)"),
    ("wall_time", "wall time (s)"),
]


def write_report(path: str, out: str, quiet: bool = False) -> str:
    """Build the report of the runs under `path` into `out/index.html`; returns that file's path.

    A progress bar counts the figures on a terminal, unless `quiet`.
    """
    runs = load.load_runs([path])  # every input checked before anything is written
    check_writable(out)
    page, images = build_page(path, runs, out, quiet)
    os.makedirs(os.path.join(out, IMAGES), exist_ok=True)
    for name, png in images.items():
        atomic_write(os.path.join(out, name), png)
        os.chmod(os.path.join(out, name), 0o644)
    for stale in set(os.listdir(os.path.join(out, IMAGES))) - {os.path.basename(n) for n in images}:
        if stale.endswith(".png"):  # an earlier report's figure: the folder is this page's
            os.remove(os.path.join(out, IMAGES, stale))
    target = os.path.join(out, "index.html")
    atomic_write(target, page.encode())
    os.chmod(target, 0o644)  # atomic_write's temporary file is private (0600); a report is for sharing
    return target


IMAGES = "figures"
"""The page's figures, PNG files beside it (out/figures/s0_loss_curves.png): the page itself stays
small (a few hundred kB for 150 runs) and the browser loads the figures as files, in parallel."""


def build_page(path: str, runs: list, out: str, quiet: bool = True) -> tuple[str, dict[str, bytes]]:
    """The HTML text, one section per folder that holds runs (a sweep or a run name), and its
    figures: {path relative to `out`: PNG bytes}."""
    sections = load.by_folder(runs)
    n_diverged = sum(1 for r in runs if _summary(r).get("status") == "diverged")
    n_open = sum(1 for r in runs if _summary(r).get("status") not in ("finished", "diverged"))
    head = [
        f"<h1>lossbench report: {_e(os.path.abspath(path))}</h1>",
        f'<p class="note">{len(runs)} run{"s" if len(runs) != 1 else ""} in {len(sections)} folder'
        f"{'s' if len(sections) != 1 else ''}; {n_diverged} diverged; {n_open} incomplete (interrupted, failed or never finished). "
        f"Written {_e(time.strftime('%Y-%m-%d %H:%M'))} from the run folders alone.</p>",
    ]
    if len(sections) > 1:
        head.append(
            "<ul>"
            + "".join(f'<li><a href="#s{i}">{_e(_rel(s, path))}</a></li>' for i, s in enumerate(sections))
            + "</ul>"
        )
    groups = [load.group_runs(members) for members in sections.values()]
    jobs = [plots.figure_jobs(g) for g in groups]
    with progress.bar(sum(map(len, jobs)), "report", "figure", not quiet) as bar:
        drawn = draw(jobs, "png", bar=bar)  # in parallel worker processes where that is safe
    images = {
        f"{IMAGES}/s{i}_{name}.png": png for i, figures in enumerate(drawn) for name, png in figures.items()
    }
    body = [
        _section(i, folder, members, path, out, g, figures)
        for i, ((folder, members), g, figures) in enumerate(zip(sections.items(), groups, drawn))
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>lossbench report: {_e(os.path.basename(os.path.abspath(path)))}</title>"
        f"<style>{STYLE}</style></head><body>\n"
        + "\n".join(head + body)
        + f"\n<script>{SORT_SCRIPT}</script>\n</body></html>\n"
    )
    return page, images


def _section(i: int, folder: str, runs: list, root: str, out: str, groups: list, figures: dict) -> str:
    parts = [f'<h2 id="s{i}">{_e(_rel(folder, root))}</h2>']
    for name, png in figures.items():
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")  # PNG header
        parts.append(
            f'<figure><img alt="{_e(name)}" src="{IMAGES}/s{i}_{_e(name)}.png" '
            f'width="{width}" height="{height}">'
            f"<figcaption>{_e(CAPTIONS.get(name.rstrip('_0123456789'), name))}</figcaption></figure>"
        )
    parts.append(_landscape(folder, runs, out))
    parts.append(_seed_table(groups))
    parts.append(_table(groups, out))
    common = _common(runs)
    if common:
        lines = "\n".join(f"{k}: {load._text(v)}" for k, v in common.items())
        parts.append(
            f"<details><summary>Config shared by all runs here</summary><pre>{_e(lines)}</pre></details>"
        )
    return "\n".join(parts)


def _landscape(folder: str, runs: list, out: str) -> str:
    """The loss landscape `lossbench landscape` drew here (the folder's, else each run's), or how to draw it."""
    found = [os.path.join(folder, "figures", "landscape.png")]
    found = [f for f in found if os.path.isfile(f)] or [
        f for r in runs if os.path.isfile(f := os.path.join(r.path, "figures", "landscape.png"))
    ]
    if not found:
        return f'<p class="note">Loss landscape: not drawn; <code>python -m lossbench landscape {_e(folder)}</code></p>'
    parts = []
    for path in found:
        link = os.path.relpath(path, out)  # the file where landscape drew it, as the page's own figures
        parts.append(
            f'<figure><img alt="landscape" src="{_e(link)}"><figcaption>loss landscape '
            f"(drawn by lossbench landscape: {_e(os.path.relpath(path, folder))})</figcaption></figure>"
        )
    return "\n".join(parts)


def _table(groups: list, out: str) -> str:
    """Runs as rows, in the groups' order (the sweep's grid order): the config values that differ
    between them (a component as one column), then the summary's numbers."""
    runs = [r for g in groups for r in sorted(g.runs, key=lambda r: str(r.config.get("seed")))]
    keys = load.differing_keys([r.config for r in runs], drop=())
    summaries = [_summary(r) for r in runs]

    def present(cols: list) -> list:
        return [
            (k, t)
            for k, t in cols
            if k in ("status", "steps_done") or any(s.get(k) is not None for s in summaries)
        ]

    columns = present(COLUMNS[:-3]) + _target_columns(runs) + present(COLUMNS[-3:])
    head = (
        '<th class="text">run</th>'
        + "".join(f'<th class="text">{_e(k)}</th>' for k in keys)
        + "".join(f"<th>{_e(t)}</th>" for _, t in columns)
    )
    rows = []
    for r, s in zip(runs, summaries):
        status = s.get("status") or "incomplete"
        link = os.path.relpath(os.path.join(r.path, "config.yaml"), out)
        cells = [
            f'<td class="text"><a href="{_e(link)}">{_e(os.path.basename(os.path.normpath(r.path)))}</a></td>'
        ]
        cells += [f'<td class="text">{_e(load.value_text(r.config, k))}</td>' for k in keys]
        reached = {
            (*key, k): t.get(k) for key, t in _numbered(run_targets(r)) for k in ("steps_to", "seconds_to")
        }
        for key, _ in columns:
            value = status if key == "status" else reached.get(key) if isinstance(key, tuple) else s.get(key)
            if isinstance(key, tuple) and key[-1] == "seconds_to" and s.get("stack_size", 1) > 1:
                value = "(stack's)"  # trained with stack-mates: the clock is the stack's, not this run's
            cells.append(f"<td>{_e(_fmt(value))}</td>")
        css = "diverged" if status == "diverged" else "" if status == "finished" else "incomplete"
        rows.append(f'<tr class="{css}">' + "".join(cells) + "</tr>")
    note = (
        f'<p class="note">Columns after "run": the config keys whose values differ between these runs '
        f"({len(keys)}); rows in the sweep's grid order; click a header to sort.</p>"
        if keys
        else ""
    )
    return f'{note}<table class="runs"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _numbered(targets: list[dict]) -> list[tuple[tuple[str, int], dict]]:
    """Each target keyed by (metric, how many earlier targets are on that metric): two targets on
    one metric (val_loss <= 0.5, then <= 0.1) are two columns, not one."""
    seen: dict[str, int] = {}
    keyed = []
    for t in targets:
        n = seen[t["metric"]] = seen.get(t["metric"], -1) + 1
        keyed.append(((t["metric"], n), t))
    return keyed


def _seed_table(groups: list) -> str:
    """The configs' results over their seeds, as the sweep table gives them (`runs.table`: the mean
    with its 95% Student-t interval, how many seeds reached each target), and its answer in words;
    nothing for one config of one run."""
    runs = [r for g in groups for r in g.runs]
    if len(runs) < 2:
        return ""
    keys = list(groups[0].values)
    values = [tuple(g.values.values()) for g in groups for _ in g.runs]  # as the labels write them
    header, rows = table([r.config for r in runs], [_summary(r) for r in runs], keys, values)
    head = "".join(
        f'<th class="{"text" if j < len(keys) else ""}">{_e(h)}</th>' for j, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"text" if j < len(keys) else ""}">{_e(v)}</td>' for j, v in enumerate(r))
        + "</tr>"
        for r in rows
    )
    words = "<br>".join(_e(line) for line in answer(header, rows, len(keys), width=10_000))
    return (
        '<p class="note">Each config over its seeds: mean +- the 95% Student-t interval of the mean; (k/n): '
        f'k of its n seeds have the value (reached the target).</p><table class="seeds"><thead><tr>{head}'
        f"</tr></thead><tbody>{body}</tbody></table><p>{words}</p>"
    )


def _target_columns(runs: list) -> list[tuple]:
    """((metric, n, "steps_to" | "seconds_to"), header) for each target any run has (`_numbered`)."""
    values: dict[tuple[str, int], set] = {}
    for r in runs:
        for key, t in _numbered(run_targets(r)):
            values.setdefault(key, set()).add(t.get("value"))
    columns = []
    for (metric, n), vs in values.items():
        sign = ">=" if higher_is_better(metric) else "<="
        what = f"{metric} {sign} {_fmt(next(iter(vs)))}" if len(vs) == 1 else f"{metric} target {n + 1}"
        columns += [
            ((metric, n, "steps_to"), f"steps to {what}"),
            ((metric, n, "seconds_to"), f"s to {what}"),
        ]
    return columns


def _common(runs: list) -> dict:
    flats = [flatten(r.config) for r in runs]
    differ = load.differing_keys([r.config for r in runs], drop=())
    return {
        k: v
        for k, v in flats[0].items()
        if not any(k == d or k.startswith(d + ".") for d in differ) and all(k in f for f in flats)
    }


def _summary(run) -> dict:
    return run.summary or {}


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _rel(folder: str, root: str) -> str:
    rel = os.path.relpath(folder, root)
    return os.path.basename(os.path.abspath(root)) if rel == "." else rel


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
