"""`lossbench watch`: the page follows the config file; errors show, good figures stay; Ctrl-C is 130.

No timing luck: every wait polls the server (or the browser) until the expected state, with a
generous limit that only a hung process reaches.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
import yaml
from conftest import ROOT, TINY, run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LIMIT = 180  # seconds: only a hung process gets there


def until(check, what: str):
    """Poll `check()` until it returns something true; fail after LIMIT seconds."""
    deadline = time.monotonic() + LIMIT
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")


class Watch:
    """A `python -m lossbench watch` process on a config in tmp_path."""

    def __init__(self, tmp_path, config: dict, *args):
        self.config = tmp_path / "watched.yaml"
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))
        self.out = tmp_path / "results"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lossbench", "watch", str(self.config), "--out", str(self.out), *args],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        line = until(lambda: next((x for x in self.lines if "http://127.0.0.1:" in x), None), "the URL")
        self.url = line[line.index("http://") :].split()[0]

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def state(self, after: int | None = None) -> dict:
        query = "" if after is None else f"?after={after}"
        with urllib.request.urlopen(f"{self.url}state.json{query}", timeout=60) as r:
            return json.load(r)

    def figure(self, name: str) -> bytes:
        with urllib.request.urlopen(f"{self.url}figure/{name}.png", timeout=60) as r:
            return r.read()

    def settled(self, version: int) -> dict:
        """The state once figure set `version` is drawn and nothing is running."""
        return until(
            lambda: (s := self.state()) and not s["busy"] and s["version"] >= version and s,
            f"figure set {version}",
        )

    def edit(self, **changes) -> None:
        config = yaml.safe_load(self.config.read_text())
        for key, value in changes.items():
            section, _, name = key.partition("__")
            config[section][name] = value
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=60)
        return code, self.proc.stderr.read()


@pytest.fixture
def watch(tmp_path):
    started = []

    def start(config=TINY, *args):
        started.append(Watch(tmp_path, config, *args))
        return started[-1]

    yield start
    for w in started:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()


def test_watch_retrains_on_save_and_keeps_good_figures_on_error(watch, tmp_path):
    w = watch()
    first = w.settled(1)
    assert first["error"] is None and "loss_curves" in first["figures"]
    before = w.figure("loss_curves")
    assert before[:8] == b"\x89PNG\r\n\x1a\n"

    w.edit(model__width=12)  # a different net: other curves
    second = w.settled(2)
    assert second["version"] == 2 and second["error"] is None
    assert w.figure("loss_curves") != before
    after = w.figure("loss_curves")

    w.edit(model__depth=-3)
    bad = until(lambda: (s := w.state()) and s["error"] and s, "the error")
    assert "model.depth: must be >= 0" in bad["error"]
    assert bad["version"] == 2 and w.figure("loss_curves") == after  # the last good figures stay
    until(lambda: any("model.depth: must be >= 0" in x for x in w.lines), "the error in the terminal")

    w.edit(model__depth=2)  # fixed again: back to the first width-12 run, reused
    assert w.settled(3)["error"] is None

    code, err = w.stop()
    assert code == 130 and "Traceback" not in err
    # nothing written but run folders: results/<name>/<run_id>/ with the run files
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert all(p == "watched.yaml" or p.startswith("results/tiny/") for p in written), written
    assert len({p.split("/")[2] for p in written if p.startswith("results/")}) == 2  # two configs


def test_watch_sweep_draws_the_comparison(watch):
    w = watch({**TINY, "sweep": {"model.activation": ["tanh", "relu"]}})
    state = w.settled(1)
    assert state["error"] is None and "2 runs" in state["status"]
    assert len(list(w.out.glob("tiny/*/summary.json"))) == 2
    assert w.stop()[0] == 130


def test_watch_bad_config_at_start_shows_error(watch):
    w = watch({**TINY, "loss": "nope"})
    state = until(lambda: (s := w.state()) and s["error"] and s, "the error")
    assert "loss" in state["error"] and state["version"] == 0 and state["figures"] == []
    assert w.stop()[0] == 130


FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]  # fmt: skip


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_watch_page_updates_itself_in_headless_chromium(watch, tmp_path):
    """One page, opened once: its title (set by the page's script once every new image has loaded)
    follows the edits, and an invalid edit's problem shows while the figures stay."""
    w = watch()
    w.settled(1)
    profile = tmp_path / "profile"
    browser = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", w.url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        port = until(lambda: port_file.exists() and port_file.read_text().split("\n")[0], "DevTools")

        def title():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as r:
                pages = [t for t in json.load(r) if t["type"] == "page" and t["url"].startswith(w.url)]
            return html.unescape(pages[0]["title"]) if pages else ""  # DevTools escapes it

        until(lambda: title() == "watched.yaml: figures 1", "the page to show figure set 1")
        w.edit(model__width=12)
        until(lambda: title() == "watched.yaml: figures 2", "the page to show figure set 2")
        w.edit(model__depth=-3)
        shown = until(lambda: "error" in title() and title(), "the page to show the error")
        assert shown.startswith("watched.yaml: figures 2 | error: model.depth: must be >= 0"), shown
    finally:
        browser.terminate()
        browser.wait(timeout=60)
    assert w.stop()[0] == 130


def test_watch_missing_config_is_a_clear_error(tmp_path):
    r = run_cli("watch", tmp_path / "nope.yaml", "--out", tmp_path / "results")
    assert r.returncode == 2 and "nope.yaml: 1 problem" in r.stderr and "does not exist" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "results").exists()
