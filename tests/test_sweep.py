"""Sweeps: grid expansion and its refusals, the CLI run with resume, failures, and the Ray backend."""

from __future__ import annotations

import copy
import csv
import json
import os
import re

import numpy as np
import pytest
import yaml
from conftest import run_cli
from scipy import stats

from lossbench.cli import main
from lossbench.config import grid
from lossbench.config.grid import expand
from lossbench.config.overrides import apply_overrides
from lossbench.errors import UserError
from lossbench.runs import sweep as sweep_module
from lossbench.runs.sweep import run_configs

SWEEP = {
    "name": "sw",
    "seed": 10,
    "data": {"name": "moons", "n_samples": 80},
    "model": {"depth": 1, "width": 4, "activation": "tanh"},
    "loss": "bce",
    "optim": {"name": "sgd", "lr": 0.1},
    "train": {"epochs": 2, "batch_size": 32, "log_every": 2},
    "sweep": {"model.activation": ["sigmoid", "tanh"], "model.depth": [1, 2], "seeds": 2},
}


@pytest.fixture
def raw():
    return copy.deepcopy(SWEEP)


def test_expand_is_the_product_with_seeds_innermost(raw):
    cfgs = expand(raw, "test")
    got = [(c.model.activation.name, c.model.depth, c.seed) for c in cfgs]
    assert got == [(a, d, s) for a in ("sigmoid", "tanh") for d in (1, 2) for s in (10, 11)]
    assert {c.name for c in cfgs} == {"sw"}
    raw["sweep"]["seeds"] = [3, 7]
    assert [c.seed for c in expand(raw, "test")][:2] == [3, 7]


def test_overrides_reach_sweep_keys(raw):
    narrowed = apply_overrides(raw, ["sweep.model.depth=[3]", "model.activation=relu"])
    cfgs = expand(narrowed, "test")
    assert [(c.model.activation.name, c.model.depth) for c in cfgs] == [("relu", 3)] * 2
    wider = apply_overrides(raw, ["sweep.loss.delta=[0.5, 1.0]", "loss=huber"])
    assert sorted({c.loss.kwargs["delta"] for c in expand(wider, "test")}) == [0.5, 1.0]


@pytest.mark.parametrize(
    "sweep, path, words",
    [
        ({"model.depth": []}, "sweep.model.depth", ["empty list"]),
        ({"model.dept": [1, 2]}, "sweep.model.dept", ["unknown key", "did you mean 'depth'"]),
        (
            {"model.depth": [2, "five"]},
            "sweep.model.depth",
            ["must be an integer", "grid point model.depth=five"],
        ),
        (
            {"loss.name": ["bce", "cross_entropy"]},
            "sweep.loss.name",
            ["does not fit the binary task", "grid point loss.name=cross_entropy"],
        ),
        (
            {"loss.name": ["bce", "hinge"], "model.output": ["sigmoid", "identity"]},
            "sweep.model.output",
            ["needs model.output: sigmoid", "grid point loss.name=bce, model.output=identity"],
        ),
        ({"model.depth": 3}, "sweep.model.depth", ["must be a list"]),
        ({"model.depth": [2, 2]}, "sweep.model.depth", ["more than once"]),
        ({"seeds": 0}, "sweep.seeds", ["at least 1"]),
        ({"name": ["a", "b"]}, "sweep.name", ["cannot be swept"]),
        ({"loss": ["mse", "bce"], "loss.name": ["mse"]}, "sweep.loss.name", ["overlaps"]),
    ],
    ids=[
        "empty",
        "unknown",
        "type",
        "task",
        "combination",
        "not-a-list",
        "duplicate",
        "seeds",
        "name",
        "overlap",
    ],
)
def test_bad_sweeps_are_refused_with_path_and_grid_point(raw, sweep, path, words):
    raw["sweep"] = sweep
    with pytest.raises(UserError) as e:
        expand(raw, "test")
    paths = [p for p, _ in e.value.problems]
    assert path in paths, e.value.render()
    message = e.value.problems[paths.index(path)][1]
    for word in words:
        assert word in message


def test_a_grid_above_the_limit_needs_allow_large(raw, monkeypatch):
    monkeypatch.setattr(grid, "SWEEP_LIMIT", 7)
    with pytest.raises(UserError, match=r"8 runs \(2 x 2 x 2 seeds\).*--allow-large"):
        expand(raw, "test")
    assert len(expand(raw, "test", allow_large=True)) == 8


def test_a_swept_component_name_drops_the_keys_it_does_not_take_as_an_override_does(raw, tmp_path, capsys):
    # the same setter as `loss.name=bce` on the command line (issue 19: the axis was refused for `half`)
    raw.update(loss={"name": "mse", "half": True}, sweep={"loss.name": ["mse", "bce"]})
    notes = []
    mse, bce = expand(raw, "test", notes=notes)
    assert (mse.loss.name, mse.loss.kwargs["half"]) == ("mse", True)
    assert bce.loss.name == "bce" and "half" not in bce.loss.kwargs
    assert notes == ["loss.name=bce drops loss.half: loss 'bce' does not take it (it takes: sum_outputs)"]
    config = tmp_path / "sw.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(config)]) == 0
    assert capsys.readouterr().err.count("note: loss.name=bce drops loss.half") == 1


def test_a_sweep_without_a_name_is_named_as_a_run_of_the_same_file_is(raw, tmp_path, capsys):
    # one default-name rule (issue 19: `_s..w.yaml` validated as a run named s_w, was refused as a sweep)
    del raw["name"]
    config = tmp_path / "_s..w.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert {c.name for c in expand(raw, str(config))} == {"s_w"}
    assert main(["validate", str(config), "--print-config"]) == 0
    assert "name: s_w" in capsys.readouterr().out


def rows_of(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_cli_sweep_writes_runs_and_table_and_resumes(raw, tmp_path, write_config, capsys):
    raw["train"]["target"] = [{"metric": "val_acc", "value": 0.55}]
    path = write_config(raw)
    out = tmp_path / "results"
    first = run_cli("run", path, "--out", out, "--workers", "2")
    assert first.returncode == 0, first.stderr
    assert "8 runs: 0 reused, 8 computed" in first.stdout
    folder = out / "sw"
    runs = sorted(p for p in os.listdir(folder) if (folder / p).is_dir())
    assert len(runs) == 8
    assert {"sweep.yaml", "sweep.csv", "runs.csv"} <= set(os.listdir(folder))
    table = rows_of(folder / "runs.csv")  # a row per run, in grid order
    assert [r["model.activation"] for r in table] == ["sigmoid"] * 4 + ["tanh"] * 4
    assert [r["seed"] for r in table] == ["10", "11"] * 4
    for row in table:  # the table is what the run folders hold
        summary = json.load(open(folder / row["run_id"] / "summary.json"))
        assert summary["status"] == row["status"] == "finished"
        assert float(row["val_loss"]) == summary["final_val_loss"]
        config = yaml.safe_load(open(folder / row["run_id"] / "config.yaml"))
        assert config["model"]["depth"] == int(row["model.depth"]) and config["seed"] == int(row["seed"])
        (target,) = summary["targets"]
        reached = target["steps_to"]
        assert row["steps to val_acc>=0.55"] == ("" if reached is None else str(reached))
    # sweep.csv: a row per grid point, each result the mean over its 2 seeds with scipy's t-interval
    points = rows_of(folder / "sweep.csv")
    assert [(p["model.activation"], p["model.depth"], p["seeds"]) for p in points] == [
        (a, d, "2") for a in ("sigmoid", "tanh") for d in ("1", "2")
    ]
    for point, seeds in zip(points, [table[i : i + 2] for i in range(0, 8, 2)]):
        values = [float(r["val_loss"]) for r in seeds]
        lo, hi = stats.t.interval(0.95, 1, loc=np.mean(values), scale=stats.sem(values))
        assert float(point["val_loss"]) == pytest.approx(np.mean(values))
        assert (float(point["val_loss_lo95"]), float(point["val_loss_hi95"])) == pytest.approx((lo, hi))
        steps = [int(r["steps to val_acc>=0.55"]) for r in seeds if r["steps to val_acc>=0.55"]]
        assert point["steps to val_acc>=0.55_n"] == str(len(steps))  # how many seeds reached it
    lines = first.stdout.splitlines()
    assert lines[1].startswith("model.activation  model.depth  seeds") and "+-" in first.stdout
    assert lines[0].split() == ["steps", "to"]  # a long header on two lines
    assert any(line.startswith("ends best on val_acc: activation=") for line in lines)
    assert "95% Student-t interval of the mean over seeds, 2 seeds" in first.stdout

    # an interrupted sweep: one run lost its summary, so it is the only one computed again
    os.remove(folder / table[5]["run_id"] / "summary.json")
    assert main(["run", path, "--out", str(out), "--workers", "1", "--quiet"]) == 0
    assert "8 runs: 7 reused, 1 computed" in capsys.readouterr().out

    # the same name with a different base config is refused before anything trains
    assert main(["run", path, "optim.lr=0.5", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "optim.lr" in err and "another name" in err and "--force" in err
    assert sorted(p for p in os.listdir(folder) if (folder / p).is_dir()) == runs


def test_cli_bad_sweep_exits_2(raw, write_config, capsys):
    raw["sweep"] = {"model.activation": ["tanh", "sigmod"]}
    assert main(["validate", write_config(raw)]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'sigmoid'" in err and "grid point model.activation=sigmod" in err


@pytest.fixture
def failing_member(monkeypatch):
    """Training raises for the members with seed 11 and depth 1, and for any stack holding one (so
    its members run one by one); returns the real `train_stacked` to put back."""
    import lossbench.engine.stacked

    real = lossbench.engine.stacked.train_stacked

    def flaky(cfgs, *args, **kwargs):
        if any(cfg.seed == 11 and cfg.model.depth == 1 for cfg in cfgs):
            raise RuntimeError("boom in member")
        return real(cfgs, *args, **kwargs)

    monkeypatch.setattr(lossbench.engine.stacked, "train_stacked", flaky)
    return real


@pytest.mark.slow
def test_a_failing_member_is_recorded_and_the_others_finish(raw, tmp_path, monkeypatch, failing_member):
    real_train = failing_member
    cfgs = expand(raw, "test")
    results = run_configs(cfgs, str(tmp_path), workers=1)
    statuses = [s["status"] for s, _ in results]
    assert statuses == ["finished", "failed", "finished", "finished"] * 2
    failed = json.load(open(os.path.join(results[1][1], "summary.json")))
    assert failed["status"] == "failed" and "boom in member" in failed["error"]

    import lossbench.engine.stacked

    # fixed: a rerun computes only those two
    monkeypatch.setattr(lossbench.engine.stacked, "train_stacked", real_train)
    records = sweep_module.execute_all(cfgs, str(tmp_path), workers=1)
    assert [r["reused"] for r in records] == [True, False, True, True] * 2
    assert all(r["summary"]["status"] == "finished" for r in records)


@pytest.mark.slow
def test_the_sweep_command_names_each_failed_member_and_its_cause(raw, tmp_path, failing_member, capsys):
    config = tmp_path / "sw.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert main(["run", str(config), "--out", str(tmp_path), "--workers", "1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("failed: ")] == [
        line for line in err.splitlines() if "boom in member" in line
    ]
    assert err.count("boom in member") == 2  # the two failing members of the test above, one line each


def read_metrics(folder):
    rows = [json.loads(line) for line in open(os.path.join(folder, "metrics.jsonl"))]
    for row in rows:
        row.pop("time")
    return rows


@pytest.mark.slow
def test_ray_backend_writes_what_the_local_backend_writes(raw, tmp_path):
    """... and what each member's run alone writes, bit for bit (one config, one computation)."""
    pytest.importorskip("ray", reason="ray is not installed (pip install 'lossbench[ray]')")
    from test_reproducible import assert_identical

    from lossbench.runs.runner import execute

    raw["sweep"] = {"model.depth": [1, 2], "seeds": 2}
    cfgs = expand(raw, "test")
    local = run_configs(cfgs, str(tmp_path / "local"), workers=1)
    remote = run_configs(cfgs, str(tmp_path / "ray"), workers=2, backend="ray")
    assert len(remote) == len(local) == 4
    for cfg, (_, f_local), (s_ray, f_ray) in zip(cfgs, local, remote):
        assert os.path.basename(f_local) == os.path.basename(f_ray)
        assert s_ray["status"] == "finished" and s_ray["engine"] == "stacked"
        assert sorted(os.listdir(f_ray)) == sorted(os.listdir(f_local))
        assert_identical(f_local, f_ray)
        assert_identical(execute(cfg, str(tmp_path / "alone"))[1], f_ray)


def test_the_python_api_runs_a_sweep_from_its_path_as_the_command_does(raw, tmp_path, write_config, capsys):
    import lossbench

    path = write_config({**raw, "sweep": {"model.activation": ["sigmoid", "tanh"]}})
    with pytest.raises(UserError) as e:
        lossbench.run(path, out=str(tmp_path))
    named = re.findall(r"lossbench\.(\w+)", e.value.problems[0][1])
    assert named and all(name in lossbench.__all__ for name in named) and "run_many" in named
    runs = lossbench.run_many(path, out=str(tmp_path), model__width=3)
    table = rows_of(tmp_path / "sw" / "runs.csv")
    assert [os.path.basename(r.path) for r in runs] == [row["run_id"] for row in table]
    assert [r.config["model"]["activation"] for r in runs] == ["sigmoid", "tanh"]
    assert {r.config["model"]["width"] for r in runs} == {3}
    assert "2 runs: 0 reused, 2 computed" in capsys.readouterr().out
