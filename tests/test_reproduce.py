"""`python -m lossbench reproduce`: finding, running and judging experiments, and what it writes."""

from __future__ import annotations

import inspect
import json
import os
from argparse import Namespace

import numpy as np
import pytest
from conftest import run_cli

from lossbench import cli
from lossbench import reproduce as rp
from lossbench.errors import UserError
from lossbench.runs.store import strict_json

MINE = ["hinge_margin", "likelihood", "loss_gallery", "mae_jumping", "outliers"]

PASSING = """
CLAIM = "two is two"
SOURCE = "arithmetic"
EXPECTED = {"two": 2}
def run(out, fast, seed=0):
    import os
    open(os.path.join(out, "fig.png"), "wb").write(b"png")
    return {"two": 1 + 1, "fast": fast, "seed": seed}
def judge(m):
    ok = m.get("two") == EXPECTED["two"]
    return [{"check": "1 + 1", "measured": m.get("two"), "expected": 2, "verdict": "PASS" if ok else "FAIL", "note": ""}]
"""
FAILING = PASSING.replace('"two": 1 + 1', '"two": 3')
RAISING = PASSING.replace('return {"two": 1 + 1, "fast": fast, "seed": seed}', 'raise ValueError("boom")')
PARTIAL = PASSING.replace('"PASS" if ok else "FAIL"', '"PARTIAL"')
MALFORMED = PASSING.replace('"verdict": "PASS" if ok else "FAIL", ', "")


@pytest.fixture
def fake_experiments(tmp_path, monkeypatch):
    """An experiments folder of our own making, which reproduce then uses."""
    root = tmp_path / "experiments"

    def make(**sources):
        for slug, text in sources.items():
            (root / slug).mkdir(parents=True)
            (root / slug / "experiment.py").write_text(text)
        monkeypatch.setattr(rp, "experiments_dir", lambda: root)
        return root

    return make


def args(out, only=None, fast=True):
    return Namespace(only=only, fast=fast, out=str(out), workers=1, quiet=True, seed=0)


def test_discover_finds_the_repository_experiments():
    found = rp.discover()
    assert set(MINE) <= set(found)
    assert all(p.name == "experiment.py" and p.parent.name == slug for slug, p in found.items())
    assert rp.experiments_dir().name == "experiments"


def test_missing_experiments_folder_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no experiments folder"):
        rp.discover(tmp_path / "nowhere")


def test_unknown_slug_is_refused_with_did_you_mean(tmp_path):
    r = run_cli("reproduce", "--only", "outlier", "--out", tmp_path / "rep")
    assert r.returncode == 2
    assert "unknown experiment 'outlier'" in r.stderr and "did you mean 'outliers'" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "rep").exists()


def test_each_experiment_defines_the_interface():
    for slug, path in rp.discover().items():
        module = rp.load_experiment(slug, path)
        assert isinstance(module.CLAIM, str) and module.CLAIM.strip(), slug
        assert isinstance(module.SOURCE, str) and module.SOURCE.strip(), slug
        assert isinstance(module.EXPECTED, dict) and module.EXPECTED, slug
        # reproduce --seed S passes S on: every experiment takes it (and moves its seeds by it)
        assert "seed" in inspect.signature(module.run).parameters, slug
        assert os.path.isfile(path.parent / "README.md"), f"{slug} has no README.md"


@pytest.mark.slow
def test_cli_fast_run_writes_verdicts_and_figures(tmp_path):
    out = tmp_path / "rep"
    r = run_cli("reproduce", "--only", "likelihood", "loss_gallery", "--fast", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "wall time" in r.stdout and "PASS" in r.stdout
    report = json.loads((out / "verdicts.json").read_text())
    assert report["fast"] is True and report["verdict"] == "PASS"
    assert [e["slug"] for e in report["experiments"]] == ["likelihood", "loss_gallery"]
    for e in report["experiments"]:
        assert e["checks"] and all(c["verdict"] == "PASS" for c in e["checks"])
        assert e["figures"] and all((out / e["slug"] / f).is_file() for f in e["figures"])
    md = (out / "verdicts.md").read_text()
    assert "## likelihood" in md and "## loss_gallery" in md
    assert "(loss_gallery/loss_gallery.png)" in md


def test_a_failing_check_exits_1_and_says_fail(tmp_path, fake_experiments, capsys):
    fake_experiments(good=PASSING, bad=FAILING)
    assert cli.cmd_reproduce(args(tmp_path / "rep")) == 1
    report = json.loads((tmp_path / "rep" / "verdicts.json").read_text())
    verdicts = {e["slug"]: e["verdict"] for e in report["experiments"]}
    assert verdicts == {"bad": "FAIL", "good": "PASS"}
    bad = report["experiments"][0]
    assert bad["checks"][0]["measured"] == 3 and bad["checks"][0]["expected"] == 2
    assert "| bad | **FAIL**" in (tmp_path / "rep" / "verdicts.md").read_text().replace("[bad](#bad)", "bad")
    printed = capsys.readouterr().out
    assert (
        "checks: 1 PASS, 0 PARTIAL, 1 FAIL" in printed
        and "bad\n  FAIL     1 + 1\n           measured 3; expected 2" in printed
    )


def test_passing_and_partial_exit_0(tmp_path, fake_experiments):
    fake_experiments(good=PASSING, part=PARTIAL)
    assert cli.cmd_reproduce(args(tmp_path / "rep")) == 0
    report = json.loads((tmp_path / "rep" / "verdicts.json").read_text())
    assert report["verdict"] == "PARTIAL"


def test_an_experiment_that_raises_fails_alone(tmp_path, fake_experiments):
    fake_experiments(a_raises=RAISING, good=PASSING, malformed=MALFORMED)
    assert cli.cmd_reproduce(args(tmp_path / "rep")) == 1
    report = json.loads((tmp_path / "rep" / "verdicts.json").read_text())
    e = {x["slug"]: x for x in report["experiments"]}
    assert e["a_raises"]["verdict"] == "FAIL" and "ValueError: boom" in e["a_raises"]["checks"][0]["note"]
    assert e["good"]["verdict"] == "PASS"
    assert e["malformed"]["verdict"] == "FAIL" and "malformed check" in e["malformed"]["checks"][0]["note"]


def test_missing_interface_names_is_a_fail_naming_them(tmp_path, fake_experiments):
    fake_experiments(incomplete="CLAIM = 'x'\n")
    assert cli.cmd_reproduce(args(tmp_path / "rep")) == 1
    note = json.loads((tmp_path / "rep" / "verdicts.json").read_text())["experiments"][0]["checks"][0]["note"]
    assert "SOURCE, EXPECTED, run, judge" in note


def test_fast_flag_reaches_run(tmp_path, fake_experiments):
    fake_experiments(good=PASSING)
    for fast in (True, False):
        cli.cmd_reproduce(args(tmp_path / "rep", fast=fast))
        report = json.loads((tmp_path / "rep" / "verdicts.json").read_text())
        assert report["experiments"][0]["measured"]["fast"] is fast


def test_rerun_replaces_its_own_folder_but_never_a_foreign_one(tmp_path, fake_experiments):
    fake_experiments(good=PASSING)
    out = tmp_path / "rep"
    cli.cmd_reproduce(args(out))
    (out / "good" / "stale.txt").write_text("from an earlier run")
    cli.cmd_reproduce(args(out))
    assert not (out / "good" / "stale.txt").exists() and (out / "good" / "fig.png").exists()

    foreign = tmp_path / "mine"
    (foreign / "good").mkdir(parents=True)
    (foreign / "good" / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not written by reproduce"):
        cli.cmd_reproduce(args(foreign))
    assert (foreign / "good" / "notes.txt").read_text() == "keep me"
    assert not (foreign / "verdicts.json").exists()


def test_unwritable_out_is_refused(tmp_path, fake_experiments):
    fake_experiments(good=PASSING)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        cli.cmd_reproduce(args(blocker / "rep"))


@pytest.mark.slow
def test_workers_run_experiments_in_processes_with_the_same_report(tmp_path, fake_experiments):
    fake_experiments(good=PASSING, bad=FAILING, a_raises=RAISING)
    a = rp.reproduce(out=str(tmp_path / "one"), fast=True, echo=lambda m: None, workers=1)
    b = rp.reproduce(out=str(tmp_path / "two"), fast=True, echo=lambda m: None, workers=2)
    for report in (a, b):
        assert [e["slug"] for e in report["experiments"]] == ["a_raises", "bad", "good"]
        assert [e["verdict"] for e in report["experiments"]] == ["FAIL", "FAIL", "PASS"]
    assert (tmp_path / "two" / "good" / "fig.png").is_file()
    assert "--workers 2" in b["command"]
    assert a["versions"]["threads"] == b["versions"]["threads"] == 1  # what the experiments ran with
    assert b["workers"] == 2 and b["cpu_time"] > 0
    with pytest.raises(UserError, match="at least 1"):
        rp.reproduce(out=str(tmp_path / "three"), workers=0)


def test_article_order():
    found = list(rp.discover())
    mine = [slug for slug in found if slug in MINE]
    assert mine == ["loss_gallery", "outliers", "mae_jumping", "hinge_margin", "likelihood"]


def test_overall_and_jsonable():
    assert rp.overall([]) == "FAIL"
    assert rp.overall([{"verdict": "PASS"}, {"verdict": "PARTIAL"}]) == "PARTIAL"
    assert rp.overall([{"verdict": "PARTIAL"}, {"verdict": "FAIL"}]) == "FAIL"
    value = strict_json({"a": np.float32(0.5), "b": np.arange(3), "c": float("nan"), 1: (np.int64(2),)})
    assert value == {"a": 0.5, "b": [0, 1, 2], "c": None, "1": [2]}
    json.dumps(value, allow_nan=False)


def test_seed_reaches_every_experiment_and_is_recorded(tmp_path, fake_experiments):
    fake_experiments(good=PASSING)
    report = rp.reproduce(out=str(tmp_path / "rep"), fast=True, echo=lambda m: None, seed=7, workers=1)
    assert report["seed"] == 7 and "--seed 7" in report["command"]
    assert report["experiments"][0]["measured"]["seed"] == 7
    with pytest.raises(UserError, match="--seed"):
        rp.reproduce(out=str(tmp_path / "bad"), seed=-1)


@pytest.mark.slow
def test_seed_flag_is_checked(tmp_path):
    r = run_cli("reproduce", "--only", "loss_gallery", "--fast", "--seed", "x", "--out", tmp_path / "rep")
    assert r.returncode == 2 and "--seed" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 100, 1000])
@pytest.mark.slow
def test_fast_mode_has_no_fail_at_other_seeds(tmp_path, seed):
    """A check must hold on any valid draw, not only on the seeds it was written with: the whole fast
    run at three seed offsets, every experiment's seeds (figures included) moved."""
    report = rp.reproduce(out=str(tmp_path / "rep"), fast=True, echo=lambda m: None, seed=seed, workers=2)
    failing = [
        (e["slug"], c["check"], c["note"])
        for e in report["experiments"]
        for c in e["checks"]
        if c["verdict"] == "FAIL"
    ]
    assert not failing, failing
    assert all(e["figures"] for e in report["experiments"])
