"""CONTRIBUTING.md's steps to add a loss, done as written: its code block registers the loss, and
the commands it shows (`list`, `validate` with an override) answer as it says."""

from __future__ import annotations

import math
import os
import re
import textwrap
from typing import Annotated

import pytest
import torch
import torch.nn.functional as F
import yaml
from annotated_types import Gt
from conftest import ROOT

from lossbench import reproduce as rp
from lossbench.cli import main
from lossbench.components.losses import REGRESSION, losses


def section(title: str) -> str:
    text = open(f"{ROOT}/CONTRIBUTING.md", encoding="utf-8").read()
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_adding_a_loss_as_contributing_says(tmp_path, capsys, monkeypatch):
    steps = section("Add a loss")
    (code,) = re.findall(r"```python\n(.*?)```", steps, re.S)
    monkeypatch.delitem(losses.entries, "log_cosh", raising=False)
    monkeypatch.setattr(losses, "entries", dict(losses.entries))  # the registration is undone after
    namespace = {"losses": losses, "REGRESSION": REGRESSION, "F": F, "math": math, "torch": torch}
    exec(textwrap.dedent(code), namespace | {"Annotated": Annotated, "Gt": Gt})

    assert main(["list", "loss"]) == 0
    assert "keys: scale=1.0 [> 0]" in capsys.readouterr().out
    config = tmp_path / "my.yaml"
    config.write_text(yaml.safe_dump({"data": {"name": "line"}, "loss": {"name": "log_cosh", "scale": 0.5}}))
    assert main(["validate", str(config)]) == 0
    assert main(["validate", str(config), "loss.scale=0"]) == 2
    assert "loss.scale: must be > 0, got 0.0" in capsys.readouterr().err
    assert main(["validate", str(config), "data.name=moons"]) == 2
    assert "does not fit the binary task" in capsys.readouterr().err


@pytest.mark.slow
def test_adding_an_experiment_as_contributing_says(tmp_path, monkeypatch):
    steps = section("Add an experiment")
    (config,) = re.findall(r"```yaml\n(.*?)```", steps, re.S)
    (code,) = re.findall(r"```python\n(.*?)```", steps, re.S)
    folder = tmp_path / "experiments" / "huber_delta"
    folder.mkdir(parents=True)
    (folder / "constant.yaml").write_text(textwrap.dedent(config))
    (folder / "experiment.py").write_text(textwrap.dedent(code))
    monkeypatch.setattr(rp, "experiments_dir", lambda: tmp_path / "experiments")

    report = rp.reproduce(only=["huber_delta"], fast=True, out=str(tmp_path / "rep"), echo=lambda _: None)
    [experiment] = report["experiments"]
    assert [c["verdict"] for c in experiment["checks"]] == ["PASS", "PASS"], experiment
    module = rp.load_experiment("huber_delta", folder / "experiment.py")
    assert [c["verdict"] for c in module.judge({"small_delta": 22.0})] == ["FAIL", "FAIL"]


def test_contributing_points_only_inside_the_repository():
    """Its links and the paths it names resolve in a checkout (the project notes are not part of it)."""
    text = open(f"{ROOT}/CONTRIBUTING.md", encoding="utf-8").read()
    links = re.findall(r"\]\(([^)#]+)", text)
    for link in [x for x in links if "://" not in x]:
        assert os.path.exists(os.path.join(ROOT, link)), link
    assert "../" not in text
