"""`python -m lossbench watch CONFIG [KEY=VALUE ...]`: train, draw, show; again on every save.

One process keeps torch and matplotlib loaded, so after the first run a change to the config costs
its training and its figures, not the imports. The figures are served from memory on a local page
(127.0.0.1 only, the standard library's HTTP server) that updates by itself: it long-polls a small
JSON endpoint. A config that became invalid shows its error on the page and in the terminal while
the last good figures stay. A sweep config redraws the comparison figures of all its runs. Nothing
is written but the run folders, exactly as `run` writes them (a finished run is reused).
"""

from __future__ import annotations

import errno
import html
import json
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
            }


MAX_CONNECTIONS = 32  # a page holds one or two; more at once is not a browser of ours
REQUEST_TIMEOUT = 10.0  # seconds a connection may take to send its request (a long poll waits apart)
AFTER_RE = re.compile(r"-?[0-9]{1,18}")  # `?after=` is a change count: ASCII digits, no more than fit


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
                title = html.escape(os.path.basename(state.config))
                return self._send(200, "text/html; charset=utf-8", PAGE.replace("{title}", title).encode())
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
    path: str, overrides: list[str], out: str, pool: ProcessPoolExecutor | None
) -> tuple[dict, str]:
    """Validate the config, train it (or reuse its finished runs), draw: (figures, status line)."""
    from .config.grid import expand, swept_keys
    from .config.validate import load
    from .runs.store import check_writable, load_run
    from .runs.sweep import execute_all
    from .viz.draw import draw
    from .viz.figures import figure_jobs
    from .viz.load import group_runs

    start = time.perf_counter()
    cfg, sweep, raw = load(path, overrides)
    configs = expand(raw, path) if sweep else [cfg]
    check_writable(out)
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
                    figures, status = train_and_draw(path, overrides, out, pool)
                except BrokenProcessPool:  # a worker was killed (out of memory, a signal): new ones
                    echo("lossbench watch: a drawing worker died; starting new ones and drawing again")
                    assert pool is not None, "only a pool breaks"
                    stop(pool)
                    pool = drawing_pool()
                    figures, status = train_and_draw(path, overrides, out, pool)  # the runs are reused
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


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}: lossbench watch</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1em auto; max-width: 1400px; padding: 0 1em; color: #222; }
#status { color: #555; } #busy { color: #b36b00; }
#error { background: #fde8e0; border: 1px solid #d55e00; padding: 0.75em; white-space: pre-wrap; }
figure { margin: 1em 0; } img { max-width: 100%; height: auto; border: 1px solid #eee; }
</style></head><body>
<h1>lossbench watch: {title}</h1>
<p><span id="status">connecting ...</span> <span id="busy"></span></p>
<pre id="error" hidden></pre>
<div id="figures"></div>
<script>
// Ask the server for news; it answers at once when something changed since `changes`, else
// within 20 s. New figures are swapped in once every image has loaded, so the page never shows a
// half-drawn set; the tab title says what is shown.
var changes = -1, shown = 0, name = document.title.split(":")[0];
function update(s) {
  document.getElementById("status").textContent = s.status;
  document.getElementById("busy").textContent = s.busy ? "(working)" : "";
  var err = document.getElementById("error");
  err.hidden = !s.error;
  err.textContent = s.error || "";
  if (s.version !== shown) {
    var box = document.createElement("div"), left = s.figures.length;
    box.id = "figures";
    s.figures.forEach(function (f) {
      var fig = document.createElement("figure"), img = document.createElement("img");
      img.alt = f;
      img.onload = img.onerror = function () {
        if (--left === 0) { document.getElementById("figures").replaceWith(box); shown = s.version; title(s); }
      };
      img.src = "/figure/" + f + ".png?v=" + s.version;
      fig.appendChild(img);
      box.appendChild(fig);
    });
    if (left === 0) { document.getElementById("figures").replaceWith(box); shown = s.version; }
  }
  title(s);
}
function title(s) {  // the tab says what the page shows: the figure set, and the first problem
  var problem = s.error ? " | error: " + (s.error.split("\\n")[1] || s.error).trim() : "";
  document.title = name + ": figures " + shown + (s.busy ? ", working" : "") + problem;
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
poll();
</script></body></html>
"""
