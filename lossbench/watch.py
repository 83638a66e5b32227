"""`python -m lossbench watch CONFIG [KEY=VALUE ...]`: train, draw, show; again on every save.

One process keeps torch and matplotlib loaded, so after the first run a change to the config costs
its training and its figures, not the imports. The figures are served from memory on a local page
(127.0.0.1 only, the standard library's HTTP server) that updates by itself: it long-polls a small
JSON endpoint, and another for the rows the runs being trained record, drawn live. The figures are
inline in the page's HTML (printable), in a grid. A config that became invalid shows its error on the page and in the terminal while
the last good figures stay. A sweep config redraws the comparison figures of all its runs. Nothing
is written but the run folders, exactly as `run` writes them (a finished run is reused).
"""

from __future__ import annotations

import errno
import html
import json
import math
import os
import re
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

POLL_SECONDS = 0.05  # how often the config file is read for a change
WAIT_SECONDS = 20.0  # how long a page's request for news is held open before it asks again
LIVE_WAIT_SECONDS = 10.0  # the same for new rows of the runs being trained
LIVE_POLL_SECONDS = 0.05  # how often the metrics files of those runs are read for new rows


class State:
    """What the page shows, shared between the training loop and the server's threads.

    `version` counts the figure sets drawn; `changes` counts every change the page should see
    (new figures, an error, busy or not), so a waiting page wakes on any of them.
    """

    def __init__(self, config: str):
        self.config = config
        self.cond = threading.Condition()
        self.version = 0
        self.changes = 0
        self.figures: dict[str, bytes] = {}
        self.error: str | None = None
        self.busy = True
        self.status = "starting: loading torch and matplotlib"
        self.live_gen = 0  # counts the trainings started: the live view starts anew on each
        self.live: list[tuple[str, str]] = []  # (label, run folder) of each run being trained

    def update(self, **fields: object) -> None:
        with self.cond:
            for key, value in fields.items():
                setattr(self, key, value)
            self.changes += 1
            self.cond.notify_all()

    def snapshot(self, after: int | None = None) -> dict:
        """The page's view; with `after`, first wait (up to WAIT_SECONDS) for a change past it."""
        with self.cond:
            if after is not None:
                self.cond.wait_for(lambda: self.changes > after, timeout=WAIT_SECONDS)
            return {
                "config": self.config,
                "version": self.version,
                "changes": self.changes,
                "busy": self.busy,
                "error": self.error,
                "status": self.status,
                "figures": list(self.figures),
                "live_gen": self.live_gen,
            }

    def live_rows(self, gen: int, offsets: list[int], wait: float = LIVE_WAIT_SECONDS) -> dict:
        """The rows the runs of live view `gen` recorded past byte `offsets` of their metrics files
        (from the start for another view), waiting up to `wait` seconds for one."""
        deadline = time.monotonic() + wait
        while True:
            with self.cond:
                current, runs = self.live_gen, list(self.live)
            starts = offsets if gen == current and len(offsets) == len(runs) else [0] * len(runs)
            read = [live_rows(folder, at) for (_, folder), at in zip(runs, starts)]
            if gen != current or any(rows["step"] for rows, _ in read) or time.monotonic() > deadline:
                return {
                    "gen": current,
                    "runs": [
                        {"label": label, "rows": rows, "at": at} for (label, _), (rows, at) in zip(runs, read)
                    ],
                }
            time.sleep(LIVE_POLL_SECONDS)


LIVE_KEYS = ("step", "loss", "val_loss", "grad_w")
"""What the live view draws of each recorded row: the loss curves and the per-layer weight gradients."""


def live_rows(folder: str, offset: int, limit: int = 4 << 20) -> tuple[dict, int]:
    """The complete rows appended to `folder`/metrics.jsonl past byte `offset`, as columns of
    `LIVE_KEYS` (non-finite values as null), and the offset after them."""
    columns: dict[str, list] = {k: [] for k in LIVE_KEYS}
    try:
        with open(os.path.join(folder, "metrics.jsonl"), "rb") as f:
            f.seek(offset)
            data = f.read(limit)
    except OSError:  # not started yet
        return columns, offset
    end = data.rfind(b"\n") + 1  # a row still being written waits for the next ask
    for line in data[:end].splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        for k in LIVE_KEYS:
            columns[k].append(_finite(row.get(k)))
    return columns, offset + end


def _finite(value):
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value if not isinstance(value, float) or math.isfinite(value) else None


MAX_CONNECTIONS = 32  # a page holds one or two; more at once is not a browser of ours
REQUEST_TIMEOUT = 10.0  # seconds a connection may take to send its request (a long poll waits apart)
AFTER_RE = re.compile(r"-?[0-9]{1,18}")  # `?after=` is a change count: ASCII digits, no more than fit
LIVE_RE = re.compile(r"gen=(?P<gen>-?[0-9]{1,18})&at=(?P<at>(?:[0-9]{1,18}(?:,[0-9]{1,18}){0,9999})?)")
"""`/live.json?gen=G&at=O1,O2,...`: the live view the page shows and its byte offset in each run's rows."""


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    """The page's request handler: only GET of the page, its state and its figures, only for a page
    loaded from this server's own address (a page of another site that rebinds its name to
    127.0.0.1 sends its own name as `Host`, and is refused)."""

    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT  # a half-sent request does not hold its thread forever

        def do_GET(self):  # noqa: N802 (the standard library's name)
            host = self.headers.get_all("Host") or []
            if len(host) != 1:
                return self._send(400, "text/plain", b"one Host header is required")
            port = self.server.server_address[1]
            if host[0].lower() not in (f"127.0.0.1:{port}", f"localhost:{port}"):
                return self._send(403, "text/plain", b"only this page's own address is served")
            url = urlsplit(self.path)
            if url.path in ("/", "/index.html") and not url.query:
                return self._send(200, "text/html; charset=utf-8", page(state).encode())
            if url.path == "/figures.html":
                if url.query and not re.fullmatch(r"v=[0-9]{1,18}", url.query):
                    return self._send(400, "text/plain", b"the only query is ?v=<integer>")
                return self._send(200, "text/html; charset=utf-8", figures_html(state.figures).encode())
            if url.path == "/live.json":
                live = LIVE_RE.fullmatch(url.query)
                if not live:
                    return self._send(400, "text/plain", b"the query is ?gen=<integer>&at=<offset>,...")
                offsets = [int(a) for a in live["at"].split(",") if a]
                rows = state.live_rows(int(live["gen"]), offsets)
                return self._send(200, "application/json", json.dumps(rows, allow_nan=False).encode())
            if url.path == "/state.json":
                after = url.query[len("after=") :] if url.query.startswith("after=") else None
                if url.query and (after is None or not AFTER_RE.fullmatch(after)):
                    return self._send(400, "text/plain", b"the only query is ?after=<integer>")
                wait = int(after) if after is not None else None
                return self._send(200, "application/json", json.dumps(state.snapshot(wait)).encode())
            if url.path.startswith("/figure/") and url.path.endswith(".png"):
                if url.query and not re.fullmatch(r"v=[0-9]{1,18}", url.query):
                    return self._send(400, "text/plain", b"the only query is ?v=<integer>")
                data = state.figures.get(url.path[len("/figure/") : -len(".png")])
                if data is not None:
                    return self._send(200, "image/png", data)
            self._send(404, "text/plain", b"not found")

        def _send(self, code: int, kind: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                pass  # the page was closed or reloaded

        def log_message(self, *args):  # no line per request in the terminal
            pass

    return Handler


class Server(ThreadingHTTPServer):
    """The standard library's threading server with at most MAX_CONNECTIONS at once: one more is
    closed at once instead of holding a thread."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]):
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: socket.socket, client_address: Any) -> None:  # type: ignore[override]
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: socket.socket, client_address: Any) -> None:  # type: ignore[override]
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(
        self, request: Any, client_address: Any
    ) -> None:  # a client that vanished: nothing to print
        pass


def serve(state: State, port: int = 0) -> ThreadingHTTPServer:
    """Serve the page on 127.0.0.1 (`port` 0: a free one) from a background thread."""
    from .errors import UserError

    try:
        server = Server(("127.0.0.1", port), make_handler(state))
    except OSError as e:
        why = "is taken by another program (another watch?)" if e.errno == errno.EADDRINUSE else e.strerror
        raise UserError(
            [("--port", f"port {port} on 127.0.0.1 {why}; choose another --port, or 0 for any free one")],
            "watch",
        ) from None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _read(path: str) -> bytes | None:
    """The config's bytes, at most one past the limit of any config (`config.yaml_io`): a file
    that grew without end is read no further, and refused by the config's own check."""
    from .config.yaml_io import MAX_CONFIG_BYTES

    try:
        with open(path, "rb") as f:
            return f.read(MAX_CONFIG_BYTES + 1)
    except OSError:
        return None  # between an editor's delete and its rename: wait for the file


def _stamp(path: str) -> tuple | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def changes(path: str) -> Iterator[None]:
    """Yield each time the file's content differs from the last seen (at once for the first).

    The file is polled with `stat` (cheap) and read only when its size, times or inode change.
    """
    last, seen = None, None
    while True:
        stamp = _stamp(path)
        if stamp is not None and stamp != seen:
            text = _read(path)
            time.sleep(POLL_SECONDS)  # an editor may still be writing: take the settled content
            settled, stamp_now = _read(path), _stamp(path)
            if text is not None and settled == text and stamp_now == stamp:
                seen = stamp
                if text != last:
                    last = text
                    yield
                continue
        time.sleep(POLL_SECONDS)


def train_and_draw(
    path: str, overrides: list[str], out: str, pool: ProcessPoolExecutor | None, state: State | None = None
) -> tuple[dict, str]:
    """Validate the config, train it (or reuse its finished runs), draw: (figures, status line).

    With a `state`, the runs about to be trained are announced to its live view first."""
    from .config.grid import expand, swept_keys
    from .config.validate import load
    from .runs.store import check_writable, load_run, run_dir
    from .runs.sweep import execute_all
    from .viz.draw import draw
    from .viz.figures import figure_jobs
    from .viz.load import group_runs

    start = time.perf_counter()
    cfg, sweep, raw = load(path, overrides)
    configs = expand(raw, path) if sweep else [cfg]
    check_writable(out)
    if state is not None:
        live = list(zip(live_labels(configs), (run_dir(out, c) for c in configs)))
        state.update(live=live, live_gen=state.live_gen + 1)
    records = execute_all(configs, out, workers=1)  # here, where torch is already loaded
    trained = time.perf_counter()
    runs = [load_run(r["folder"]) for r in records if r["error"] is None]
    failed = len(records) - len(runs)
    swept = swept_keys(raw["sweep"]) if sweep else []  # the runs come in the grid's order
    figures = draw([figure_jobs(group_runs(runs, swept=swept))], pool=pool)[0] if runs else {}
    if len(runs) == 1 and cfg.train.snapshots and os.path.isfile(os.path.join(runs[0].path, "model.pt")):
        figures["landscape"] = _landscape(runs[0], cfg.loss.name)
    reused = sum(r["reused"] for r in records)
    what = f"{len(records)} runs" if sweep else cfg.name
    status = (
        f"{what}: trained in {trained - start:.2f} s ({reused} reused), "
        f"drawn in {time.perf_counter() - trained:.2f} s"
    )
    if failed:
        errors = [r["error"] for r in records if r["error"]]
        status += f"; {failed} failed: {errors[0].strip().splitlines()[-1]}"
    if len(runs) == 1 and runs[0].summary:
        s = runs[0].summary
        status += f"; {s['status']}, final val loss {s.get('final_val_loss')}"
    return figures, status


def _landscape(run, loss: str) -> bytes:
    """The loss landscape of a run that keeps snapshots, at a coarse 21 x 21 (a second or so)."""
    from .engine.landscape import compute
    from .viz.canvas import render
    from .viz.landscape import fig_landscape, own_metric

    data = compute(run.path, run.config, resolution=21)
    return render(
        fig_landscape([{"label": run.config["name"], "loss": loss, "data": data}], own_metric(data))
    )


def live_labels(configs: list) -> list[str]:
    """A short label per config for the live view: the keys that differ, and the seed."""
    from .viz.load import differing_keys, value_text

    dicts = [c.to_dict() for c in configs]
    keys = differing_keys(dicts)
    seeds = len({d["seed"] for d in dicts}) > 1
    labels = []
    for d in dicts:
        label = ", ".join(f"{k}={value_text(d, k)}" for k in keys) or str(d["name"])
        labels.append(f"{label}, seed {d['seed']}" if seeds else label)
    return labels


def watch(
    path: str,
    overrides: list[str],
    out: str = "results",
    port: int = 0,
    echo: Callable[[str], object] = print,
) -> None:
    """Watch `path` until Ctrl-C (KeyboardInterrupt, raised to the caller)."""
    from .errors import UserError
    from .viz.draw import pool as drawing_pool
    from .workers import stop

    if not os.path.isfile(path):  # a file to watch, not one that may appear some day
        raise UserError([("", "does not exist or is not a file")], path)
    pool = drawing_pool()  # forked before torch is loaded, where forking is safe
    state = State(path)
    try:
        server = serve(state, port)
    except UserError:  # the port is taken
        if pool is not None:
            stop(pool)
        raise
    echo(f"watching {path}: open http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C to stop)")
    try:
        import torch

        torch.set_num_threads(1)  # small nets train fastest on one thread (as `run`)
        for _ in changes(path):
            state.update(busy=True, status="training and drawing ...")
            try:
                try:
                    figures, status = train_and_draw(path, overrides, out, pool, state)
                except BrokenProcessPool:  # a worker was killed (out of memory, a signal): new ones
                    echo("lossbench watch: a drawing worker died; starting new ones and drawing again")
                    assert pool is not None, "only a pool breaks"
                    stop(pool)
                    pool = drawing_pool()
                    figures, status = train_and_draw(path, overrides, out, pool, state)  # the runs are reused
            except UserError as e:
                echo(f"lossbench: error: {e.render()}")
                state.update(busy=False, error=e.render(), status="the last good figures are shown")
                continue
            except Exception as e:  # a bug: say so and keep watching
                echo(traceback.format_exc())
                state.update(busy=False, error=f"internal error (a bug, please report it): {e!r}")
                continue
            echo(status)
            state.update(busy=False, error=None, figures=figures, version=state.version + 1, status=status)
    finally:
        server.shutdown()
        server.server_close()
        if pool is not None:
            stop(pool)


def figures_html(figures: dict[str, bytes]) -> str:
    """The figures as HTML, each image inline (a data: URL), so the page prints and screenshots
    whole without a script fetching anything. A wide figure (two panels side by side and more)
    spans two columns of the grid, so its text stays readable."""
    import base64

    out = []
    for name, data in figures.items():
        width = int.from_bytes(data[16:20], "big") if data[12:16] == b"IHDR" else 0  # PNG header
        wide = ' class="wide"' if width >= 1000 else ""
        out.append(
            f'<figure{wide}><img alt="{html.escape(name)}" src="data:image/png;base64,'
            f'{base64.b64encode(data).decode()}"><figcaption>{html.escape(name)}</figcaption></figure>'
        )
    return "".join(out)


def page(state: State) -> str:
    """The page as served: the figures drawn so far already in it, the script keeping it current."""
    title = html.escape(os.path.basename(state.config))
    with state.cond:
        figures, version = dict(state.figures), state.version
    return (
        PAGE.replace("{title}", title)
        .replace("{version}", str(version))
        .replace("{figures}", figures_html(figures))
    )


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}: lossbench watch</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1em auto; max-width: 1800px; padding: 0 1em; color: #222; }
#status { color: #555; } #busy { color: #b36b00; }
#error { background: #fde8e0; border: 1px solid #d55e00; padding: 0.75em; white-space: pre-wrap; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 560px), 1fr));
        gap: 1em; align-items: start; }
figure { margin: 0; } figure.wide { grid-column: span 2; } figcaption { color: #555; font-size: small; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
#live svg { width: 100%; height: auto; border: 1px solid #eee; background: #fff; }
#live text { font-size: 11px; fill: #333; }
@media (max-width: 1200px) { figure.wide { grid-column: auto; } }
@media print { body { max-width: none; } .grid { grid-template-columns: 1fr 1fr; }
               figure { break-inside: avoid; } }
</style></head><body>
<h1>lossbench watch: {title}</h1>
<p><span id="status">connecting ...</span> <span id="busy"></span></p>
<pre id="error" hidden></pre>
<section id="live" class="grid" hidden>
<figure><svg id="live-loss" viewBox="0 0 560 240"></svg><figcaption id="live-loss-caption">training loss</figcaption></figure>
<figure><svg id="live-grad" viewBox="0 0 560 240"></svg><figcaption id="live-grad-caption">weight gradient per layer</figcaption></figure>
</section>
<div id="figures" class="grid">{figures}</div>
<script>
// Two long polls. /state.json answers when anything changed (new figures, an error, busy or not);
// new figures are swapped in once every image has decoded, so the page never shows a half-drawn
// set. /live.json answers when the runs being trained recorded new rows: their loss and the
// per-layer weight gradient grow on the page as they train. The tab title says what is shown.
var changes = -1, shown = {version}, name = document.title.split(":")[0], last = null;
var live = {gen: -1, at: [], runs: []};
var COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"];
function update(s) {
  last = s;
  document.getElementById("status").textContent = s.status;
  document.getElementById("busy").textContent = s.busy ? "(working)" : "";
  var err = document.getElementById("error");
  err.hidden = !s.error;
  err.textContent = s.error || "";
  if (s.version !== shown) {
    var version = s.version;
    fetch("/figures.html?v=" + version).then(function (r) { return r.text(); }).then(function (text) {
      var box = document.createElement("div");
      box.id = "figures"; box.className = "grid"; box.innerHTML = text;
      var images = Array.prototype.slice.call(box.querySelectorAll("img"));
      return Promise.all(images.map(function (img) { return img.decode().catch(function () {}); }))
        .then(function () {
          document.getElementById("figures").replaceWith(box);
          shown = Math.max(shown, version); title();
        });
    });
  }
  title();
}
function title() {  // the figure set shown, the first problem, and the live view's rows
  var s = last || {busy: false, error: null};
  var problem = s.error ? " | error: " + (s.error.split("\\n")[1] || s.error).trim() : "";
  var rows = live.runs.reduce(function (n, r) { return n + r.step.length; }, 0);
  var now = live.gen > 0 ? " | live " + live.gen + ": " + rows + " rows" : "";
  document.title = name + ": figures " + shown + (s.busy ? ", working" : "") + problem + now;
}
function poll() {
  fetch("/state.json?after=" + changes)
    .then(function (r) { return r.json(); })
    .then(function (s) { changes = s.changes; update(s); poll(); })
    .catch(function () {
      document.getElementById("status").textContent = "lossbench watch stopped (reload when it runs again)";
      setTimeout(poll, 2000);
    });
}
function livePoll() {
  fetch("/live.json?gen=" + live.gen + "&at=" + live.at.join(","))
    .then(function (r) { return r.json(); })
    .then(function (d) {
      if (d.gen !== live.gen) {
        live = {gen: d.gen, at: [], runs: d.runs.map(function (r) {
          return {label: r.label, step: [], loss: [], val_loss: [], grad_w: []};
        })};
      }
      d.runs.forEach(function (r, i) {
        ["step", "loss", "val_loss", "grad_w"].forEach(function (k) {
          Array.prototype.push.apply(live.runs[i][k], r.rows[k]);
        });
      });
      live.at = d.runs.map(function (r) { return r.at; });
      drawLive(); title(); livePoll();
    })
    .catch(function () { setTimeout(livePoll, 2000); });
}
function drawLive() {
  var runs = live.runs.filter(function (r) { return r.step.length; });
  document.getElementById("live").hidden = !runs.length;
  if (!runs.length) return;
  var loss = runs.slice(0, 12).map(function (r, i) {
    return {label: r.label, colour: COLOURS[i % COLOURS.length], x: r.step, y: r.loss};
  });
  plot("live-loss", loss, "training loss (log scale) against step");
  var growing = runs.reduce(function (a, r) { return r.step.length < a.step.length ? r : a; }, runs[0]);
  var n = growing.grad_w.length ? growing.grad_w[0].length : 0, layers = [];
  for (var j = 0; j < n; j++) {
    layers.push({label: j === n - 1 ? "layer " + (j + 1) + " (output)" : "layer " + (j + 1),
                 colour: "hsl(" + Math.round(260 - 200 * j / Math.max(n - 1, 1)) + ", 70%, 42%)",
                 x: growing.step, y: growing.grad_w.map(function (g) { return g[j]; })});
  }
  plot("live-grad", layers, "weight gradient ||dL/dW|| per layer (log scale), " + growing.label);
}
function plot(id, series, caption) {  // lines on a log y axis, with the extremes marked
  var svg = document.getElementById(id), W = 560, H = 240, L = 58, R = 150, T = 10, B = 28;
  var xs = [], ys = [];
  series.forEach(function (s) {
    s.y.forEach(function (v, i) { if (v > 0) { xs.push(s.x[i]); ys.push(Math.log10(v)); } });
  });
  if (!xs.length) { svg.innerHTML = ""; return; }
  var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs) || 1;
  var y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys);
  if (x1 === x0) x1 = x0 + 1;
  if (y1 - y0 < 1e-9) { y0 -= 0.5; y1 += 0.5; }
  function px(x) { return L + (W - L - R) * (x - x0) / (x1 - x0); }
  function py(y) { return T + (H - T - B) * (1 - (y - y0) / (y1 - y0)); }
  var out = '<rect x="' + L + '" y="' + T + '" width="' + (W - L - R) + '" height="' + (H - T - B) +
            '" fill="none" stroke="#bbb"/>';
  [y0, y1].forEach(function (y) {
    out += '<text x="' + (L - 4) + '" y="' + (py(y) + 4) + '" text-anchor="end">' + Math.pow(10, y).toPrecision(3) + '</text>';
  });
  out += '<text x="' + L + '" y="' + (H - 8) + '">step ' + x0 + '</text>';
  out += '<text x="' + (W - R) + '" y="' + (H - 8) + '" text-anchor="end">' + x1 + '</text>';
  series.forEach(function (s, k) {
    var points = [];
    s.y.forEach(function (v, i) { if (v > 0) points.push(px(s.x[i]).toFixed(1) + "," + py(Math.log10(v)).toFixed(1)); });
    out += '<polyline fill="none" stroke-width="1.6" stroke="' + s.colour + '" points="' + points.join(" ") + '"/>';
    out += '<text x="' + (W - R + 8) + '" y="' + (T + 12 + 14 * k) + '" fill="' + s.colour + '">' +
           s.label.replace(/&/g, "&amp;").replace(/</g, "&lt;").slice(0, 26) + '</text>';
  });
  svg.innerHTML = out;
  document.getElementById(id + "-caption").textContent = caption;
}
poll(); livePoll();
</script></body></html>
"""
