"""Property-based: whatever config a user writes, lossbench trains it or refuses it cleanly.

Hypothesis generates config trees (the tiny config with random keys set to valid and invalid
values, unknown keys added, some changes given as `key=value` overrides), whole random YAML trees
and random text. Every example goes through `lossbench.cli.main(["run", ...])` in this process and
must either
- exit 0 with a finished (or diverged) run folder that loads and holds the values asked for, or
- exit 2 with "lossbench: error:", one line per problem naming its key path, no traceback, and
  nothing written under the results root.
Any other exception fails the test. Examples per run (fixed seed, so CI is repeatable):
60 config trees, some with a `sweep:` block (of which 18 train and 42 are refused), 150 random
YAML trees, 150 random texts.
Run once with 400 unseeded examples of each, these found three crashes now fixed in the core
(a scalar file plus an override, a control character, `0` taken as an empty config).
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import re
import tempfile

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lossbench.cli import main
from lossbench.components.activations import activations
from lossbench.components.inits import inits
from lossbench.components.losses import losses
from lossbench.components.optim import schedules
from lossbench.config.schema import TOP_KEYS
from lossbench.runs.store import is_finished, load_run

NAN, INF = float("nan"), float("inf")

BASE = {
    "name": "prop",
    "data": {"name": "moons", "n_samples": 64, "noise": 0.1},
    "model": {"depth": 1, "width": 4, "activation": "tanh"},
    "loss": {"name": "bce"},
    "optim": {"name": "sgd", "lr": 0.1},
    "train": {"epochs": 2, "batch_size": 16, "log_every": 2},
}

# Each key path with values to try: valid ones, near misses, wrong types, impossible numbers and
# sizes beyond the machine. Valid values keep training to a few steps.
SMALL_DATA = ["moons", "circles", "xor", "blobs", "spirals", "linear_separable", "line", "sine", "single"]
VALUES = {
    "name": ["run_1", "a.b-c+d", "", "a/b", "..", "../up", "/abs", "x" * 101, 5, None],
    "seed": [0, 1, 12345, -1, 2**64, 1.5, "0", True],
    "device": ["cpu", "auto", "gpu", "cuda:x", 3],
    "dtype": ["float32", "float64", "float16", 64],
    "data.name": [*SMALL_DATA, "moon", "", None, 3, ["moons"], "mnist"],
    "data.n_samples": [1, 2, 7, 64, 200, 0, -5, 2.5, "100", None, True, 10**13],
    "data.noise": [0, 0.3, -1.0, NAN, INF, "x"],
    "data.val_fraction": [0.0, 0.5, 0.99, 1.0, -0.1, NAN],
    "model.depth": [0, 1, 3, -1, 2.0, "2", None, 201],
    "model.width": [1, 3, 16, 0, -3, 10**6, 100_000, 1.5],
    "model.activation": [
        *activations.names(),
        {"name": "leaky_relu", "negative_slope": 0.2},
        {"name": "elu", "alpha": "x"},
        {"name": "softplus", "beta": 0},
        "rel",
        3,
        None,
        [],
    ],
    "model.init": [
        *inits.names(),
        {"name": "normal", "std": 0.1},
        {"name": "normal", "std": -1},
        {"name": "uniform", "a": 1.0, "b": -1.0},
        {"name": "kaiming_normal", "nonlinearity": "tanh"},
        {"name": "kaiming_normal", "nonlinearity": "tan"},
        "xavier",
    ],
    "model.bias_init": ["zeros", "default", "xavier_uniform", {"name": "constant", "value": 2.0}, "none"],
    "model.output": ["auto", "identity", "sigmoid", "softmax", "tanh"],
    "loss": [
        *losses.names(),
        {"name": "huber", "delta": 0.5},
        {"name": "huber", "delta": 0},
        {"name": "mse", "half": True},
        {"name": "hinge", "margin": 2.0},
        "l2",
    ],
    "optim.name": ["sgd", "adam", "adamw", "rmsprop", "adamm"],
    "optim.lr": [1e-3, 0.1, 1.0, 1e3, 0, -1, NAN, INF, "fast", None],
    "optim.momentum": [0.0, 0.9, 1.0, -0.5],
    "optim.schedule": [
        *schedules.names(),
        {"name": "step", "step_size": 2, "gamma": 0.5},
        {"name": "exponential", "gamma": 1e10},
        {"name": "cosine", "min_factor": 2},
    ],
    "train.epochs": [1, 2, 0, -1, 2.5, None],
    "train.steps": [None, 1, 5, 0],
    "train.batch_size": [None, 1, 8, 1000, 0, 10**13],
    "train.log_every": [1, 3, 0],
    "train.eval_every": [None, 1, 0],
    "train.target_loss": [None, 0.5, NAN, "x"],
    "sweep": [
        {"optim.lr": [0.05, 0.1]},
        {"model.activation": ["tanh", "relu"], "seeds": 2},
        {"seeds": [3, 4]},
        {"optim.lr": []},
        {"model.depth": [1, "x"]},
        {"model.dpth": [1, 2]},
        {"seeds": 0},
        {"optim.lr": 0.1},
        [1, 2],
    ],
}
# Problems a change can cause at another key (a new data set's task no longer fits the loss, ...).
CONSEQUENCES = {"loss.name", "loss", "model.output", "model", "data", "data.val_fraction", "optim"}
# Keys whose value, when the run is accepted, must be in the saved config exactly as given.
PLAIN = ["seed", "model.depth", "model.width", "optim.lr", "train.epochs", "train.batch_size"]

key_names = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)


@st.composite
def config_trees(draw):
    """(config mapping, overrides, {path: final value}, unknown key paths)."""
    raw = copy.deepcopy(BASE)
    paths = draw(st.lists(st.sampled_from(sorted(VALUES)), max_size=4, unique=True))
    changes, overrides = {}, []
    for path in paths:
        value = draw(st.sampled_from(VALUES[path]))
        changes[path] = value
        if draw(st.booleans()):
            overrides.append(f"{path}={as_yaml(value)}")
        else:
            set_path(raw, path, value)
    unknown = []
    for _ in range(draw(st.integers(0, 2) if draw(st.booleans()) else st.just(0))):
        section = draw(st.sampled_from(["", "data.", "model.", "optim.", "train.", "loss."]))
        key = f"{section}{draw(key_names)}x"  # the "x" keeps it off every real key
        unknown.append(key)
        replaced = any(o.startswith(section[:-1] + "=") for o in overrides if section)
        if replaced or draw(st.booleans()):  # an override replacing the section would drop it
            overrides.append(f"{key}=1")
        else:
            set_path(raw, key, 1)
    return raw, overrides, changes, unknown


def sweep_expand(raw: dict, overrides: list[str]) -> list:
    from lossbench.config.grid import expand
    from lossbench.config.overrides import apply_overrides

    return expand(apply_overrides(raw, overrides), "test")


def set_path(raw: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        if isinstance(node.get(key), str):
            node[key] = {"name": node[key]}
        node = node.setdefault(key, {})
    node[last] = value


def as_yaml(value) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6)
    return text.removesuffix("\n...\n").strip()


def run_main(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


PROBLEM_LINE = re.compile(r"^  (\S+?): ")


def check_refusal(code: int, err: str, root: str) -> list[str]:
    """Exit 2, a headed message with one line per problem, no traceback, nothing written."""
    assert code == 2, err
    assert "Traceback" not in err
    head, *lines = err.rstrip("\n").split("\n")
    match = re.match(r"lossbench: error: .+: (\d+) problems?$", head)
    assert match, err
    assert int(match.group(1)) == len(lines) >= 1, err
    assert not os.path.exists(root), "a refused config wrote under the results root"
    return lines


def related(named: str, changed: str) -> bool:
    """`named` (a problem's key path) is the changed path, inside it, or one of its parents; or,
    for a changed component name (`data.name`), a key the new component does not take."""
    if changed.endswith(".name") and named.startswith(changed[: -len("name")]):
        return True
    return named == changed or named.startswith(changed + ".") or changed.startswith(named + ".")


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(config_trees())
def test_generated_configs_train_or_are_refused_with_their_key_path(tree):
    raw, overrides, changes, unknown = tree
    with tempfile.TemporaryDirectory() as tmp:
        path, root = os.path.join(tmp, "c.yaml"), os.path.join(tmp, "results")
        with open(path, "w") as f:
            yaml.safe_dump(raw, f)
        code, out, err = run_main(["run", path, *overrides, "--out", root, "--quiet", "--workers", "1"])
        if code == 0:
            (name,) = os.listdir(root)
            folder = os.path.join(root, name)
            run_ids = [f for f in os.listdir(folder) if os.path.isdir(os.path.join(folder, f))]
            assert len(run_ids) == (1 if "sweep" not in changes else len(sweep_expand(raw, overrides)))
            for run_id in run_ids:
                run = load_run(os.path.join(folder, run_id))
                assert run.summary["status"] in ("finished", "diverged")
                assert is_finished(run.path) and len(run.metrics["step"]) >= 1
                swept = set(changes.get("sweep") or {})
                swept |= {"seed"} if "seeds" in swept else set()
                for key in PLAIN:
                    if key in changes and key not in swept:
                        section, _, leaf = key.rpartition(".")
                        saved = run.config[section][leaf] if section else run.config[leaf]
                        assert saved == changes[key] or (saved is None and changes[key] is None), key
            assert ("sweep" in changes) == os.path.exists(os.path.join(folder, "sweep.csv"))
            assert not unknown
            return
        for line in check_refusal(code, err, root):
            named = PROBLEM_LINE.match(line).group(1)
            assert named.split(".")[0] in TOP_KEYS or named in unknown, line
            assert any(related(named, c) for c in [*changes, *unknown]) or named in CONSEQUENCES, (
                f"{named!r} names none of the changes {sorted(changes)} {unknown}:\n{err}"
            )
        for key in unknown:  # an unknown key is among the problems, by its full path ...
            section = key.rpartition(".")[0]
            if section and (f"  {section}.name: unknown" in err or f"  {section}: " in err):
                continue  # ... unless its component is unknown or unusable: then it has no schema
            assert f"  {key}: " in err, err


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(TOP_KEYS + ["name", "depth", "lr"]), key_names), children, max_size=4
        ),
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(TOP_KEYS) | key_names, trees, max_size=5))
@pytest.mark.slow
def test_random_yaml_trees_never_crash(tree):
    with tempfile.TemporaryDirectory() as tmp:
        path, root = os.path.join(tmp, "c.yaml"), os.path.join(tmp, "results")
        with open(path, "w") as f:
            yaml.safe_dump(tree, f)
        code, _, err = run_main(["run", path, "train.steps=2", "--out", root, "--quiet"])
        if code != 0:
            check_refusal(code, err, root)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80))
def test_random_text_never_crashes(text):
    with tempfile.TemporaryDirectory() as tmp:
        path, root = os.path.join(tmp, "c.yaml"), os.path.join(tmp, "results")
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(text)
        code, _, err = run_main(["run", path, "train.steps=2", "--out", root, "--quiet"])
        if code != 0:
            check_refusal(code, err, root)


def test_the_base_config_trains():
    """The tree generator's starting point is valid, so refusals come from the changes."""
    with tempfile.TemporaryDirectory() as tmp:
        path, root = os.path.join(tmp, "c.yaml"), os.path.join(tmp, "results")
        with open(path, "w") as f:
            yaml.safe_dump(BASE, f)
        assert run_main(["run", path, "--out", root, "--quiet"])[0] == 0
        assert not math.isnan(
            load_run(os.path.join(root, "prop", os.listdir(os.path.join(root, "prop"))[0])).summary[
                "final_train_loss"
            ]
        )
