"""Every user mistake: one message naming the key path and what is valid, exit 2, no traceback,
nothing written.

A table of named bad inputs, each with the fragments its message must hold. Each case goes through
the real command line entry point (`lossbench.cli.main`, the function `python -m lossbench` calls)
in this process, because a subprocess pays a multi-second torch import per case; the cases that
fail before torch is imported (file and YAML problems, overrides) are also run as real
subprocesses with `run_cli`, and a few validation cases too, to check the process's exit code and
stderr as a user sees them.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field

import pytest
import yaml
from conftest import TINY, run_cli

from lossbench.cli import main

DROP = object()  # a value in a case's `change` that removes the key


def changed(change: dict) -> dict:
    """TINY with dotted keys set (or removed with DROP)."""
    cfg = copy.deepcopy(TINY)
    for dotted, value in change.items():
        *parents, last = dotted.split(".")
        node = cfg
        for key in parents:
            node = node.setdefault(key, {})
        if value is DROP:
            node.pop(last, None)
        else:
            node[last] = value
    return cfg


@dataclass
class Case:
    """One bad input: a change to TINY, or a file's text/bytes, plus overrides and expected text."""

    id: str
    expect: list[str]
    change: dict | None = None
    text: str | bytes | None = None
    overrides: list[str] = field(default_factory=list)
    path: str | None = None  # "missing" or "directory": the config path itself is the mistake
    subprocess: bool = False  # also run through a real `python -m lossbench` process

    def write(self, tmp_path) -> str:
        if self.path == "missing":
            return str(tmp_path / "no_such_config.yaml")
        if self.path == "directory":
            (tmp_path / "a_folder.yaml").mkdir()
            return str(tmp_path / "a_folder.yaml")
        file = tmp_path / "config.yaml"
        if isinstance(self.text, bytes):
            file.write_bytes(self.text)
        elif self.text is not None:
            file.write_text(self.text)
        else:
            file.write_text(yaml.safe_dump(changed(self.change or {})))
        return str(file)


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join(['*' + a] * 10)}]\n" for a, b in zip("abcdefgh", "bcdefghi")
)  # 10^9 values once expanded, 100 lines of text

CASES = [
    # wrong types
    Case("depth is a string", ["model.depth: must be an integer, got 'two'"], {"model.depth": "two"}),
    Case("depth is a float", ["model.depth: must be an integer, got 2.5"], {"model.depth": 2.5}),
    Case("depth is a bool", ["model.depth: must be an integer, got True"], {"model.depth": True}),
    Case("lr is a word", ["optim.lr: must be a number, got 'fast'"], {"optim.lr": "fast"}),
    Case("model is a list", ["model: must be a mapping, got [1, 2]"], {"model": [1, 2]}),
    Case(
        "activation is a number",
        ["model.activation: must be a activation name or a mapping"],
        {"model.activation": 3},
    ),
    Case(
        "betas is one number",
        ["optim.betas: must be two numbers in [0, 1)"],
        {"optim.name": "adam", "optim.betas": [0.9]},
    ),
    Case(
        "config is a list",
        ["a config must be a mapping of keys, got list"],
        text="- 1\n- 2\n",
        subprocess=True,
    ),
    Case(
        "name is a date",
        ["name: must be 1-100 letters", "datetime.date(2020, 1, 1)"],
        text="name: 2020-01-01\n",
    ),
    # unknown keys and names, with "did you mean"
    Case(
        "unknown top-level key",
        ["modle: unknown key (did you mean 'model'?)", "valid: name, seed"],
        {"modle": {"depth": 2}},
    ),
    Case("unknown model key", ["model.widht: unknown key (did you mean 'width'?)"], {"model.widht": 3}),
    Case(
        "unknown loss", ["loss.name: unknown loss 'bse'", "valid: mse, mae, huber, bce"], {"loss.name": "bse"}
    ),
    Case(
        "unknown activation",
        ["model.activation.name: unknown activation 'rel' (did you mean 'relu'?)"],
        {"model.activation": {"name": "rel"}},
    ),
    Case(
        "unknown optimizer",
        ["optim.name: unknown optimizer 'adamm' (did you mean 'adam'?)"],
        {"optim.name": "adamm"},
    ),
    Case(
        "unknown schedule",
        ["optim.schedule: unknown schedule 'cosin' (did you mean 'cosine'?)"],
        {"optim.schedule": "cosin"},
    ),
    Case(
        "unknown data set",
        ["data.name: unknown data set 'moon' (did you mean 'moons'?)"],
        {"data": {"name": "moon"}},
    ),
    Case(
        "key the data set does not take",
        ["data.nosie: data set 'moons' takes no key 'nosie'", "(did you mean 'noise'?)"],
        {"data.nosie": 0.1},
    ),
    Case("key the loss does not take", ["loss.delta: loss 'bce' takes no key 'delta'"], {"loss.delta": 1}),
    Case(
        "unknown dtype", ["dtype: unknown dtype 'float16'", "valid: float32, float64"], {"dtype": "float16"}
    ),
    Case(
        "unknown init nonlinearity",
        ["model.init.nonlinearity: unknown nonlinearity 'foo'", "valid: linear, sigmoid"],
        {"model.init": {"name": "kaiming_uniform", "nonlinearity": "foo"}},
    ),
    Case(
        "loss does not fit the task",
        ["loss.name: loss 'cross_entropy' does not fit the binary task", "losses for binary: "],
        {"loss.name": "cross_entropy"},
    ),
    # zero, negative, NaN and infinite numbers
    Case("lr zero", ["optim.lr: must be > 0, got 0"], {"optim.lr": 0}),
    Case("lr negative", ["optim.lr: must be > 0, got -0.1"], {"optim.lr": -0.1}),
    Case(
        "lr NaN",
        ["optim.lr: must be a finite number, got nan"],
        text=yaml.safe_dump(TINY).replace("lr: 0.1", "lr: .nan"),
    ),
    Case(
        "lr infinite",
        ["optim.lr: must be a finite number, got inf"],
        text=yaml.safe_dump(TINY).replace("lr: 0.1", "lr: .inf"),
    ),
    Case("width zero", ["model.width: must be >= 1"], {"model.width": 0}),
    Case("batch size negative", ["train.batch_size: must be >= 1, got -32"], {"train.batch_size": -32}),
    Case("epochs zero", ["train.epochs: must be >= 1, got 0"], {"train.epochs": 0}),
    Case("n_samples zero", ["data.n_samples: must be >= 1, got 0"], {"data.n_samples": 0}),
    Case("momentum one", ["optim.momentum: must be >= 0 and < 1, got 1"], {"optim.momentum": 1}),
    Case(
        "uniform init a > b",
        ["model.init: init 'uniform' cannot use these settings"],
        {"model.init": {"name": "uniform", "a": 1.0, "b": -1.0}},
    ),
    Case(
        "nesterov without momentum",
        ["optim: optimizer 'sgd' cannot use these settings", "Nesterov momentum requires a momentum"],
        {"optim.nesterov": True},
    ),
    Case(
        "schedule overflows",
        ["optim.schedule: schedule 'exponential' cannot use these settings"],
        {"optim.schedule": {"name": "exponential", "gamma": 1e10}, "train.steps": 1000},
    ),
    Case("config is 0", ["a config must be a mapping of keys, got int"], text="0\n"),
    Case(
        "config is false plus an override",
        ["a config must be a mapping of keys, got bool"],
        text="false\n",
        overrides=["model.depth=2"],
    ),
    Case(
        "control character",
        ["invalid YAML at line 2: character #x001f is not allowed"],
        text="name: a\nloss: \x1f\n",
        subprocess=True,
    ),
    # sweeps
    Case("empty sweep list", ["sweep.optim.lr: is an empty list"], {"sweep": {"optim.lr": []}}),
    Case("sweep is a list", ["sweep: must be a mapping of dotted config keys to lists"], {"sweep": [1, 2]}),
    Case(
        "bad value inside a sweep",
        ["sweep.optim.lr: must be > 0, got -1", "grid point optim.lr=-1"],
        {"sweep": {"optim.lr": [0.1, -1]}},
    ),
    Case(
        "sweep grid too large",
        ["sweep: the grid has 200000 runs", "--allow-large"],
        {"sweep": {"model.depth": [1, 2], "seeds": 100000}},
    ),
    # more memory than the machine has: refused up front with an estimate
    Case(
        "data set too large",
        [
            "data: needs about",
            "GiB to build (the points",
            "use fewer n_samples",
            "more than this machine can spare",
        ],
        {"data.n_samples": 10**12},
    ),
    Case(
        "model too large",
        [
            "model: training needs about",
            "GiB, more than this machine can spare",
            "for the parameters with their gradients and optimizer state: reduce model.width or model.depth",
        ],
        {"model.width": 100_000, "model.depth": 200},
    ),
    # several mistakes: one message listing every one
    Case(
        "three mistakes at once",
        ["3 problems", "model.depth:", "optim.lr:", "train.epochs:"],
        {"model.depth": -1, "optim.lr": "x", "train.epochs": 0},
    ),
    # YAML and file problems
    Case(
        "duplicate key",
        ["invalid YAML at line 2", "duplicate key 'name' (first at line 1)"],
        text="name: a\nname: b\n",
        subprocess=True,
    ),
    Case(
        "invalid YAML",
        ["invalid YAML at line 2, column 5"],
        text="model: {depth: 2\nloss: bce\n",
        subprocess=True,
    ),
    Case(
        "tab indent",
        ["invalid YAML at line 2", "tabs cannot indent YAML; use spaces"],
        text="model:\n\tdepth: 2\n",
        subprocess=True,
    ),
    Case("not UTF-8", ["not UTF-8 text (byte 0xff at offset 6)"], text=b"name: \xff\xfe\n", subprocess=True),
    Case("missing file", ["no_such_config.yaml", "file not found"], path="missing", subprocess=True),
    Case(
        "directory as file",
        ["a_folder.yaml", "is a directory, not a config file"],
        path="directory",
        subprocess=True,
    ),
    Case("alias bomb", ["expands to more than 100000 values"], text=BOMB, subprocess=True),
    Case(
        "python object tag",
        ["line 1", "tags that build Python objects are not allowed"],
        text="name: !!python/object/apply:os.system ['touch PWNED']\n",
        subprocess=True,
    ),
    Case(
        "python name tag",
        ["tags that build Python objects are not allowed"],
        text="loss: !!python/name:torch.nn.MSELoss\n",
    ),
    # run names that would leave the results root
    Case(
        "name with a slash",
        ["name: must be 1-100 letters", "no path separators or '..'", "'a/b'"],
        {"name": "a/b"},
    ),
    Case("name is ..", ["name: must be 1-100 letters", "'..'"], {"name": ".."}),
    Case("name climbs out", ["name: ", "'../../escape'"], {"name": "../../escape"}),
    Case("name is absolute", ["name: ", "'/tmp/escape'"], {"name": "/tmp/escape"}),
    Case("name by override", ["name: ", "'../x'"], overrides=["name=../x"]),
    # overrides
    Case(
        "override without =",
        ["overrides: 1 problem", "model.depth: an override must look like key.path=value"],
        overrides=["model.depth"],
        subprocess=True,
    ),
    Case("override with bad YAML", ["model.depth: invalid YAML"], overrides=["model.depth=[1"]),
    Case(
        "override with a python tag",
        ["tags that build Python objects are not allowed"],
        overrides=["name=!!python/object/apply:os.system [ls]"],
        subprocess=True,
    ),
    Case("override into a scalar", ["name.x: name is 'tiny', not a mapping"], overrides=["name.x=1"]),
    Case(
        "override of an unknown key",
        ["model.dpeth: unknown key (did you mean 'depth'?)"],
        overrides=["model.dpeth=3"],
    ),
    Case(
        "override with wrong type",
        ["model.depth: must be an integer, got 'deep'"],
        overrides=["model.depth=deep"],
    ),
]


def files_under(folder) -> set[str]:
    return {os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in [*fs, "."]}


def check_refused(code: int, err: str, case: Case, tmp_path, before: set[str]):
    assert code == 2, err
    assert "Traceback" not in err
    assert err.startswith("lossbench: error: ")
    for fragment in case.expect:
        assert fragment in err, f"{fragment!r} not in:\n{err}"
    assert not (tmp_path / "results").exists()
    assert files_under(tmp_path) == before, "something was written"
    assert not os.path.exists("/tmp/escape") and not (tmp_path.parent / "escape").exists()


def test_at_least_30_named_cases():
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused(case: Case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a name that escaped would land next to tmp_path
    path = case.write(tmp_path)
    before = files_under(tmp_path)
    code = main(["run", path, *case.overrides, "--out", str(tmp_path / "results"), "--quiet"])
    out, err = capsys.readouterr()
    check_refused(code, err, case, tmp_path, before)
    assert out == ""


SUBPROCESS_CASES = [c for c in CASES if c.subprocess]


@pytest.mark.parametrize("case", SUBPROCESS_CASES, ids=[c.id for c in SUBPROCESS_CASES])
def test_bad_input_real_process(case: Case, tmp_path):
    path = case.write(tmp_path)
    before = files_under(tmp_path)
    proc = run_cli("run", path, *case.overrides, "--out", tmp_path / "results", cwd=tmp_path)
    check_refused(proc.returncode, proc.stderr, case, tmp_path, before)
    assert not (tmp_path / "PWNED").exists()


def test_validate_refuses_the_same_way(tmp_path, capsys):
    """`validate` reports the same problems as `run` (and also writes nothing)."""
    case = next(c for c in CASES if c.id == "three mistakes at once")
    path = case.write(tmp_path)
    assert main(["validate", path]) == 2
    err = capsys.readouterr().err
    for fragment in case.expect:
        assert fragment in err


def test_a_valid_tiny_config_is_accepted(tmp_path, capsys):
    """The reference the table changes: unchanged, it trains, so each case fails for its change."""
    path = Case("valid", []).write(tmp_path)
    assert main(["run", path, "--out", str(tmp_path / "results"), "--quiet"]) == 0
    assert len(list((tmp_path / "results" / "tiny").iterdir())) == 1


@pytest.mark.parametrize(
    "file_name, run_name",
    [("..yaml", "yaml"), (".yaml", "yaml"), ("-x.yaml", "x"), ("a b.yaml", "a_b"), ("é.yaml", "run")],
)
def test_a_config_without_name_is_named_safely_after_its_file(tmp_path, capsys, file_name, run_name):
    """No `name:` key: the run is named after the file, made a valid name, inside the results root."""
    raw = {k: v for k, v in TINY.items() if k != "name"}
    raw["train"] = {"steps": 2}
    path = tmp_path / file_name
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path), "--out", str(tmp_path / "results"), "--quiet"]) == 0, (
        capsys.readouterr().err
    )
    assert os.listdir(tmp_path / "results") == [run_name]


def test_a_bad_override_value_is_blamed_on_the_override_not_the_file():
    done = run_cli("run", "configs/quickstart.yaml", "train.epochs=ten", "--out", "/nonexistent/never")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "configs/quickstart.yaml with the override train.epochs: 1 problem" in done.stderr
    assert "train.epochs: must be an integer, got 'ten'" in done.stderr
