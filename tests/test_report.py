"""The HTML report (opened in headless Chromium when it is installed) and the TensorBoard export."""

from __future__ import annotations

import copy
import html
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import TINY, run_cli

from lossbench import config
from lossbench.errors import UserError
from lossbench.runs import runner
from lossbench.runs import store as runs
from lossbench.viz import report

pytestmark = pytest.mark.xdist_group("report")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A results root: sweep/ (bce and hinge, target loss set) and bad/ (one diverged run)."""
    root = tmp_path_factory.mktemp("results")
    for loss in ["bce", "hinge"]:
        raw = copy.deepcopy(TINY)
        raw.update(name="sweep", loss={"name": loss})
        raw["train"]["target_loss"] = 0.69
        runner.execute(config.load(raw=raw)[0], str(root))
    raw = copy.deepcopy(TINY)
    raw.update(
        name="bad", model={"depth": 2, "width": 8, "activation": "relu"}, optim={"name": "sgd", "lr": 1e6}
    )
    runner.execute(config.load(raw=raw)[0], str(root))
    return root


@pytest.fixture(scope="module")
def page(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    path = report.write_report(str(results), str(out))
    return path, open(path).read()


def _all_runs(root):
    return [
        runs.load_run(os.path.join(root, n, r))
        for n in sorted(os.listdir(root))
        for r in sorted(os.listdir(root / n))
    ]


@pytest.mark.slow
def test_report_table_holds_every_run_with_its_summary(results, page):
    path, text = page
    rows = re.findall(r"<tr class=\"[^\"]*\">(.*?)</tr>", text)
    cells = [
        [html.unescape(re.sub("<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", r)] for r in rows
    ]
    by_id = {c[0]: c for c in cells}
    all_runs = _all_runs(results)
    assert len(by_id) == len(all_runs) == 3
    for run in all_runs:
        row = by_id[os.path.basename(run.path)]
        assert run.summary["status"] in row
        if run.summary["status"] == "finished":
            assert f"{run.summary['final_train_loss']:.4g}" in row
        else:
            assert str(run.summary["diverged_step"]) in row
    sweep_rows = [by_id[os.path.basename(r.path)] for r in all_runs if r.config["name"] == "sweep"]
    assert {"bce", "hinge"} <= {c for row in sweep_rows for c in row}  # the differing key's values
    assert '<th class="text">loss</th>' in text


def test_report_gives_each_config_over_its_seeds_and_says_one_seed_may_be_chance(results, page):
    _, text = page
    (seeds,) = re.findall(r'<table class="seeds">(.*?)</table>', text)
    rows = [
        [html.unescape(re.sub("<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", r)]
        for r in re.findall(r"<tr>(.*?)</tr>", seeds)
        if "<td" in r
    ]
    head = [html.unescape(h) for h in re.findall(r"<th(?: [^>]*)?>(.*?)</th>", seeds)]
    sweep = {r.config["loss"]["name"]: r.summary for r in _all_runs(results) if r.config["name"] == "sweep"}
    assert [row[0] for row in rows] == ["bce", "hinge"] and head[:2] == ["loss", "seeds"]
    for row in rows:  # one seed each: the value itself, no interval
        assert row[head.index("val_acc")] == f"{sweep[row[0]]['final_val_acc']:.3g}"
    assert "ends best on val_acc: loss=" in text and "one seed: differences may be chance" in text


def test_report_is_self_contained(page):
    path, text = page
    assert not re.search(r"(src|href)=\"(https?:)?//", text)  # nothing fetched from elsewhere
    images = re.findall(r"<img [^>]*src=\"([^\"]+)\"", text)
    folder = os.path.dirname(path)
    assert images and all(src.startswith("figures/") for src in images)  # files beside the page
    for src in images:
        assert open(os.path.join(folder, src), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(os.path.join(folder, "figures"))) == sorted(os.path.basename(s) for s in images)
    assert len(text) < 40_000  # the page is text and a table; the figures are not inside it
    assert text.count("<h2") == 2  # one section per folder: bad, sweep


CHECK = """<script>
window.__errors = [];
window.addEventListener("error", function (e) { window.__errors.push(String(e.message || "resource error")); }, true);
var __ce = console.error;
console.error = function () { window.__errors.push(Array.prototype.join.call(arguments, " ")); __ce.apply(console, arguments); };
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var m = document.createElement("pre");
  m.id = "lossbench-check";
  m.textContent = JSON.stringify({images: imgs.length, loaded: ok, errors: window.__errors});
  document.body.appendChild(m);
});
</script>"""

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]  # fmt: skip


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
@pytest.mark.slow
def test_report_opens_in_headless_chromium(page, tmp_path):
    path, text = page
    # a copy with a probe script first in <head>: it records errors and, once loaded, every image's state
    probe = os.path.join(os.path.dirname(path), "probe.html")  # beside the page, as its figures are
    with open(probe, "w") as f:
        f.write(text.replace("<head>", "<head>" + CHECK, 1))
    r = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--dump-dom", f"file://{probe}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    found = re.search(r'<pre id="lossbench-check">([^<]*)</pre>', r.stdout)
    assert found, f"no probe result; chromium said: {r.stderr[-2000:]}"
    check = json.loads(html.unescape(found.group(1)))
    assert check["images"] == text.count("<img ") >= 10
    assert check["loaded"] == check["images"]
    assert check["errors"] == []
    assert not re.search(r"CONSOLE.*(Uncaught|Error)", r.stderr)
    shot = tmp_path / "report.png"  # kept with the test outputs (pytest's tmp folder)
    subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", "--hide-scrollbars",
         "--window-size=1280,2000", f"--screenshot={shot}", f"file://{path}"],
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_report_command_and_bad_path(results, tmp_path):
    sweep = tmp_path / "bad"  # the smallest folder: one diverged run, fewest figures
    shutil.copytree(results / "bad", sweep)
    r = run_cli("report", sweep)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(sweep / "report" / "index.html") and os.path.isfile(r.stdout.strip())
    (tmp_path / "empty").mkdir()
    r = run_cli("report", tmp_path / "empty")
    assert r.returncode == 2 and "empty" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "empty" / "report").exists()


# ----- TensorBoard -----------------------------------------------------------------------------------


def test_tensorboard_export_holds_the_metrics(results, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lossbench.viz.export import export_tensorboard

    folders = export_tensorboard(str(results / "sweep"), str(tmp_path))
    assert len(folders) == 2
    # named by what differs (the loss), with the run id beside it, so the runs can be told apart
    assert sorted(os.path.basename(f).split(" (")[0] for f in folders) == ["loss=bce", "loss=hinge"]
    for folder in folders:
        run_id = os.path.basename(folder).split(" (")[1].rstrip(")")
        run = runs.load_run(str(results / "sweep" / run_id))
        assert run.config["loss"]["name"] in os.path.basename(folder)
        events = EventAccumulator(folder)
        events.Reload()
        loss = events.Scalars("loss")
        np.testing.assert_array_equal([e.step for e in loss], run.metrics["step"])
        np.testing.assert_allclose([e.value for e in loss], run.metrics["loss"], rtol=1e-6)
        last = run.metrics["grad_out"].shape[1]
        grad = events.Scalars(f"grad_out/layer_{last}")
        np.testing.assert_allclose([e.value for e in grad], run.metrics["grad_out"][:, -1], rtol=1e-6)


def test_tensorboard_missing_is_a_clear_message(results, tmp_path, monkeypatch):
    from lossbench.viz.export import export_tensorboard

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    with pytest.raises(UserError, match=r"tensorboard package is not installed.*pip install"):
        export_tensorboard(str(results / "sweep"), str(tmp_path / "tb"))
    assert not (tmp_path / "tb").exists()
