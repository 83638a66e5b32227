"""`lossbench watch`: the page follows the config file; errors show, good figures stay; Ctrl-C is 130.

No timing luck: every wait polls the server (or the browser) until the expected state, with a
generous limit that only a hung process reaches.
"""

from __future__ import annotations

import html
import json
import os
import re
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_watch_sweep_draws_the_comparison(watch):
    w = watch({**TINY, "sweep": {"model.activation": ["tanh", "relu"]}})
    state = w.settled(1)
    assert state["error"] is None and "2 runs" in state["status"]
    assert len(list(w.out.glob("tiny/*/summary.json"))) == 2
    assert w.stop()[0] == 130


@pytest.mark.slow
def test_watch_bad_config_at_start_shows_error(watch):
    w = watch({**TINY, "loss": "nope"})
    state = until(lambda: (s := w.state()) and s["error"] and s, "the error")
    assert "loss" in state["error"] and state["version"] == 0 and state["figures"] == []
    assert w.stop()[0] == 130


FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]  # fmt: skip


class Browser:
    """Headless Chromium showing `url`; `title()` reads the page's title through DevTools."""

    def __init__(self, url: str, profile):
        self.url = url
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        self.port = until(lambda: port_file.exists() and port_file.read_text().split("\n")[0], "DevTools")

    def title(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=30) as r:
            pages = [t for t in json.load(r) if t["type"] == "page" and t["url"].startswith(self.url)]
        return html.unescape(pages[0]["title"]) if pages else ""  # DevTools escapes it

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def shown(title: str) -> str:
    """The title less its live part: what figure set and problem the page shows."""
    return title.split(" | live ")[0]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
@pytest.mark.slow
def test_watch_page_updates_itself_in_headless_chromium(watch, tmp_path):
    """One page, opened once: its title (set by the page's script once every new image has loaded)
    follows the edits, the live view gets the new training's rows, and an invalid edit's problem
    shows while the figures stay."""
    w = watch()
    w.settled(1)
    browser = Browser(w.url, tmp_path / "profile")
    try:
        until(lambda: shown(browser.title()) == "watched.yaml: figures 1", "the page to show figure set 1")
        saved = time.monotonic()
        w.edit(model__width=12)
        live = until(lambda: re.search(r" \| live 2: [1-9]", browser.title()), "the new training's first row")
        print(
            f"save to the first new point on the page: {time.monotonic() - saved:.2f} s"
        )  # bench_loop times it
        assert live
        until(lambda: shown(browser.title()) == "watched.yaml: figures 2", "the page to show figure set 2")
        w.edit(model__depth=-3)
        problem = until(lambda: "error" in browser.title() and browser.title(), "the page to show the error")
        assert problem.startswith("watched.yaml: figures 2 | error: model.depth: must be >= 0"), problem
    finally:
        browser.close()
    assert w.stop()[0] == 130


@pytest.mark.slow
def test_live_rows_grow_while_training_then_the_figures_come(watch):
    """/live.json hands out each recorded row once, in order, while the run trains: the rows read
    back are the run's metrics file, and more than one answer carries rows before the end."""
    from lossbench.runs.store import load_run

    w = watch({**TINY, "train": {**TINY["train"], "epochs": 400, "log_every": 4}})
    gen, at, steps, answers = -1, "", [], 0
    run: dict = {"rows": {"step": [None]}}
    while gen != 1 or w.state()["version"] < 1 or run["rows"]["step"]:  # until trained and read
        with urllib.request.urlopen(f"{w.url}live.json?gen={gen}&at={at}", timeout=60) as r:
            live = json.load(r)
        if live["gen"] != gen:
            gen, steps = live["gen"], []
        if gen == 1 and live["runs"]:
            (run,) = live["runs"]
            steps += run["rows"]["step"]
            answers += bool(run["rows"]["step"])
            at = str(run["at"])
    state = w.settled(1)
    assert answers > 1 and run["label"] == "tiny"
    (folder,) = w.out.glob("tiny/*")
    recorded = load_run(str(folder)).metrics
    assert steps == list(recorded["step"])
    assert "loss_curves" in state["figures"]
    w.stop()


@pytest.mark.slow
def test_the_served_page_holds_its_figures_inline_in_a_grid(watch, tmp_path):
    """Figures in the HTML itself (data: URLs), so a printout or a screenshot of a freshly loaded
    page shows them; wide figures span two columns of the grid."""
    import base64

    w = watch()
    state = w.settled(1)
    with urllib.request.urlopen(w.url, timeout=60) as r:
        page = r.read().decode()
    inline = re.findall(r'<figure( class="wide")?><img alt="(\w+)" src="data:image/png;base64,([^"]+)"', page)
    assert [name for _, name, _ in inline] == state["figures"]
    assert all(base64.b64decode(data) == w.figure(name) for _, name, data in inline)
    assert ("loss_curves" in {n for wide, n, _ in inline if wide}) and 'class="grid"' in page
    if CHROMIUM is None:
        return
    shot = tmp_path / "shot.png"  # taken at the load event: the figures are in the HTML, no script ran
    subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'p'}", f"--screenshot={shot}",
         "--window-size=1400,1200", w.url],
        capture_output=True, timeout=120,
    )  # fmt: skip
    import matplotlib.image

    pixels = matplotlib.image.imread(str(shot))[..., :3]
    assert (pixels < 0.5).any(axis=2).mean() > 0.02  # figure ink, not a blank page
    w.stop()


def test_watch_missing_config_is_a_clear_error(tmp_path):
    r = run_cli("watch", tmp_path / "nope.yaml", "--out", tmp_path / "results")
    assert r.returncode == 2 and "nope.yaml: 1 problem" in r.stderr and "does not exist" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "results").exists()
