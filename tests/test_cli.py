"""The command line a first-time user meets: overrides anywhere, component renames, other names,
`list` and `--help` that answer the questions, every table within 100 columns."""

from __future__ import annotations

import argparse

import pytest
import yaml
from conftest import run_cli

from lossbench.cli import main, parse, parser
from lossbench.components.activations import activations
from lossbench.components.data import datasets
from lossbench.components.inits import inits
from lossbench.components.losses import losses
from lossbench.components.optim import optimizers, schedules
from lossbench.config.overrides import apply_overrides
from lossbench.config.validate import build
from lossbench.errors import UserError

REGISTRIES = {
    "loss": losses,
    "model.activation": activations,
    "model.init": inits,
    "optim": optimizers,
    "optim.schedule": schedules,
    "data": datasets,
}


@pytest.fixture
def neuron(tmp_path):
    path = tmp_path / "neuron.yaml"
    path.write_text(
        "data: {name: single}\nmodel: {depth: 0, output: sigmoid}\nloss: {name: mse, half: true}\n"
        "train: {epochs: 2, batch_size: 1}\n"
    )
    return str(path)


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "C", "model.depth=3", "--print-config", "train.epochs=4"],
        ["validate", "C", "--print-config", "model.depth=3", "train.epochs=4"],
        ["validate", "--print-config", "C", "model.depth=3", "train.epochs=4"],
    ],
)
def test_overrides_are_taken_anywhere_after_the_config(argv, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("data: {name: moons, n_samples: 40}\n")
    argv = [str(config) if a == "C" else a for a in argv]
    assert parse(argv).overrides == ["model.depth=3", "train.epochs=4"]
    assert main(argv) == 0
    resolved = yaml.safe_load(capsys.readouterr().out.split("\n", 1)[1])
    assert resolved["model"]["depth"] == 3 and resolved["train"]["epochs"] == 4
    # every default, also those a run id leaves out (a learner missed snapshots, engine, target)
    assert {"snapshots": 0, "engine": "stacked", "target": None}.items() <= resolved["train"].items()


def test_run_takes_an_override_after_a_flag(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("data: {name: moons, n_samples: 40}\nmodel: {depth: 1, width: 4}\n")
    argv = ["run", str(config), "--quiet", "--out", str(tmp_path / "r"), "train.epochs=1", "--force"]
    assert main(argv) == 0
    assert "1 epochs" in capsys.readouterr().out


def test_an_unknown_flag_is_still_refused(capsys):
    with pytest.raises(SystemExit) as e:
        parse(["run", "configs/quickstart.yaml", "--forse", "model.depth=2"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --forse" in err and "usage: lossbench run" in err


def test_renaming_a_component_drops_the_keys_it_does_not_take(neuron, capsys):
    notes = []
    raw = apply_overrides({"loss": {"name": "mse", "half": True}}, ["loss.name=bce"], notes)
    assert raw["loss"] == {"name": "bce"}
    assert notes == ["loss.name=bce drops loss.half: loss 'bce' does not take it (it takes: sum_outputs)"]
    assert main(["validate", neuron, "loss.name=bce"]) == 0  # the nielsen_neuron config's "cure"
    assert "note: loss.name=bce drops loss.half" in capsys.readouterr().err


def test_renaming_keeps_the_keys_the_new_component_takes_and_the_section_keys():
    raw = {
        "data": {"name": "moons", "noise": 0.2, "n_samples": 50, "val_fraction": 0.3},
        "optim": {"name": "sgd", "lr": 0.5, "momentum": 0.9, "schedule": "cosine"},
    }
    notes = []
    raw = apply_overrides(raw, ["data.name=circles", "optim.name=adam"], notes)
    assert raw["data"] == {"name": "circles", "noise": 0.2, "n_samples": 50, "val_fraction": 0.3}
    assert raw["optim"] == {"name": "adam", "lr": 0.5, "schedule": "cosine"}
    assert notes == [
        "optim.name=adam drops optim.momentum: optimizer 'adam' does not take it "
        "(it takes: lr, betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay)"
    ]


def test_renaming_to_an_unknown_name_drops_nothing_and_is_refused():
    raw = apply_overrides({"loss": {"name": "huber", "delta": 2.0}}, ["loss.name=hubr"], [])
    assert raw["loss"] == {"name": "hubr", "delta": 2.0}
    with pytest.raises(UserError, match="unknown loss 'hubr' \\(did you mean 'huber'\\?\\)"):
        build(raw)


ALIASES = [(key, alias, reg) for key, reg in REGISTRIES.items() for alias in reg.aliases]


@pytest.mark.parametrize("key,alias,registry", ALIASES, ids=[f"{k}={a}" for k, a, _ in ALIASES])
def test_every_other_name_points_to_its_registered_one(key, alias, registry):
    target = registry.aliases[alias]
    assert target in registry and alias not in registry
    raw = apply_overrides({"data": {"name": "moons", "n_samples": 40}}, [f"{key}={alias}"])
    with pytest.raises(UserError) as e:
        build(raw)
    assert f"(did you mean {target!r}? {alias!r} is another name for it)" in str(e.value)


@pytest.mark.parametrize(
    "key,written,meant",
    [
        ("model.activation", "swish", "silu"),
        ("model.activation", "logistic", "sigmoid"),
        ("loss", "l1", "mae"),
        ("loss", "l2", "mse"),
        ("loss", "log_loss", "bce"),
        ("loss", "cross-entropy", "cross_entropy"),
        ("loss", "Cross Entropy", "cross_entropy"),
        ("model.activation", "Leaky-ReLU", "leaky_relu"),
        ("model.init", "he_normal", "kaiming_normal"),
    ],
)
def test_common_other_names_get_a_did_you_mean(key, written, meant):
    raw = apply_overrides({"data": {"name": "blobs", "n_samples": 30}}, [f"{key}={written}"])
    with pytest.raises(UserError, match=f"did you mean '{meant}'"):
        build(raw)


def test_cross_entropy_on_two_classes_points_to_bce():
    with pytest.raises(UserError, match="'bce' is the cross-entropy for two classes"):
        build({"data": {"name": "moons", "n_samples": 40}, "loss": "cross_entropy"})


def test_list_shows_each_data_sets_task_and_size_and_each_losss_tasks(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "task: binary; 1000 examples, 2 inputs -> 1 output" in out  # moons' defaults
    assert "task: regression; 200 examples, 1 input -> 1 output" in out  # line
    assert "task: multiclass; 600 examples, 2 inputs -> 3 outputs" in out  # blobs
    for name in losses:
        assert f"tasks: {', '.join(losses[name].meta['tasks'])}" in out
    assert "also called: swish" in out
    assert max(len(line) for line in out.splitlines()) <= 100


@pytest.mark.parametrize("kind", ["losses", "data", "activation", "datasets"])
def test_list_takes_a_kind_singular_or_plural(kind, capsys):
    assert main(["list", kind]) == 0
    assert sum(not line.startswith(" ") for line in capsys.readouterr().out.splitlines()) == 1


def _every_parser():
    p = parser()
    return [("lossbench", p), *p.commands.items()]


def test_every_argument_of_every_command_has_a_help_text():
    for name, p in _every_parser():
        for action in p._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help, f"{name}: {action.dest} has no help"


def test_help_lists_the_experiments_and_fits_100_columns(capsys):
    from lossbench.reproduce import discover

    for name, p in _every_parser():
        text = p.format_help()
        assert max(len(line) for line in text.splitlines()) <= 100, name
    top, reproduce = parser().format_help(), parser().commands["reproduce"].format_help()
    for slug in discover():
        assert slug in top and slug in reproduce


def test_the_sweep_table_fits_100_columns_and_names_what_it_left_out():
    from lossbench.runs.table import format_table

    header = ["run_id", "model.init", "model.depth", "seed", "status", "train_loss", "val_loss"]
    header += ["train_acc", "val_acc", "grad_ratio", "wall_time", "note"]
    row = ["0123456789", "kaiming_normal(a=0.0, nonlinearity=relu)", 10, 0, "finished", 0.1234567]
    row += [0.2345678, 0.99, 0.98, 1.2345e-05, 12.345, "reused"]
    text = format_table(header, [row, row])
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "kaiming_normal(a=0.0, non..." in text and "1.234e-05" in text
    assert text.splitlines()[-1].startswith("(not shown, to fit 100 columns: wall_time")
    assert "wall_time" not in text.splitlines()[0]
    narrow = format_table(["run_id", "seed", "wall_time"], [["0123456789", 0, 1.5]])
    assert "wall_time" in narrow and "not shown" not in narrow  # nothing dropped when it fits


def test_the_reproduce_table_fits_100_columns(capsys):
    from lossbench.reproduce import print_table

    check = {
        "check": "a long check " * 12,
        "measured": list(range(40)),
        "expected": "x" * 90,
        "verdict": "PARTIAL",
    }
    print_table({"experiments": [{"slug": "outliers", "checks": [check, {**check, "verdict": "PASS"}]}]})
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    assert out.startswith("outliers\n  PARTIAL  a long check") and "measured [0, 1, 2" in out


def test_rerunning_a_diverged_run_says_it_diverged_not_finished(tmp_path):
    args = ["run", "configs/quickstart.yaml", "optim.lr=1e9", "train.epochs=1", "--out", tmp_path]
    first = run_cli(*args)
    assert first.returncode == 0 and "diverged" in first.stdout
    again = run_cli(*args)
    assert again.returncode == 0 and ", which diverged (same config; --force" in again.stdout
    assert "reused the finished run" not in again.stdout


def test_list_says_why_a_data_set_is_not_available():
    done = run_cli("list", "data")
    assert done.returncode == 0
    (line,) = [x for x in done.stdout.splitlines() if "not available here" in x]
    assert "MNIST folder 'data/mnist' does not exist" in line and "1 problem" not in line
