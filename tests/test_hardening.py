"""Nothing lost, nothing hung, nothing left running (issue 15): one test per cause.

Concurrent writers, cleanup of leftovers, paths built from file contents, reuse of damaged runs,
orphaned workers, unbounded inputs, flags and messages. Kills and pauses happen at exact write
points (a forked copy that pauses on a pipe, or kills itself at its k-th rename), never after a sleep.
"""

from __future__ import annotations

import gzip
import json
import os
import select
import signal
import struct
import subprocess
import sys
import time

import pytest
import yaml
from conftest import ROOT, TINY, run_cli
from test_faults import files_under, lookalikes, make_cfg, same_metrics

from lossbench.cli import main, parser
from lossbench.runs import store as runs
from lossbench.runs.runner import execute
from lossbench.runs.store import is_finished, load_run, read_summary


def write(tmp_path, raw, name="tiny.yaml") -> str:
    path = tmp_path / name
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw))
    return str(path)


# ----- 1. one writer per run folder ----------------------------------------------------------------


class Paused:
    """A forked `lossbench run` that stops after its second metrics row until `go()` or `kill()`."""

    def __init__(self, argv):
        self.ready_r, self.ready_w = os.pipe()
        self.go_r, self.go_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            code = 1
            try:
                import ctypes  # a test that fails before go() must not leave this copy waiting forever

                ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
                real_log = runs.RunWriter.log

                def log(writer, row):
                    real_log(writer, row)
                    if writer.n_rows == 2:
                        os.write(self.ready_w, b"x")
                        os.read(self.go_r, 1)

                runs.RunWriter.log = log
                code = main(argv)
            finally:
                os._exit(code)
        assert select.select([self.ready_r], [], [], 120)[0], "the first run never reached its second row"
        os.read(self.ready_r, 1)

    def go(self) -> int:
        os.write(self.go_w, b"x")
        return os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])

    def kill(self) -> int:
        os.kill(self.pid, signal.SIGKILL)
        return os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])


def test_two_runs_of_one_config_at_once_the_second_stops_and_the_folder_stays_whole(tmp_path, capsys):
    config, root = write(tmp_path, TINY), str(tmp_path / "results")
    reference = load_run(execute(make_cfg(), str(tmp_path / "reference"))[1])
    folder = runs.run_dir(root, make_cfg())
    first = Paused(["run", config, "--out", root, "--quiet"])
    before = {f: open(os.path.join(folder, f), "rb").read() for f in os.listdir(folder)}
    assert main(["run", config, "--out", root, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"another lossbench process (pid {first.pid} on" in err and "is writing run" in err, err
    assert {f: open(os.path.join(folder, f), "rb").read() for f in os.listdir(folder)} == before
    assert first.go() == 0
    assert is_finished(folder, make_cfg())
    same_metrics(load_run(folder).metrics, reference.metrics)
    assert main(["run", config, "--out", root, "--quiet"]) == 0
    assert "reused" in capsys.readouterr().out
    assert sorted(os.listdir(os.path.dirname(folder))) == [os.path.basename(folder)]  # no lock left


def test_a_writer_killed_while_holding_the_lock_does_not_block_the_next(tmp_path, capsys):
    config, root = write(tmp_path, TINY), str(tmp_path / "results")
    reference = load_run(execute(make_cfg(), str(tmp_path / "reference"))[1])
    assert Paused(["run", config, "--out", root, "--quiet"]).kill() == -signal.SIGKILL
    folder = runs.run_dir(root, make_cfg())
    assert read_summary(folder) is None  # incomplete, recognised as such
    assert main(["run", config, "--out", root, "--quiet"]) == 0  # the kernel released the lock
    same_metrics(load_run(folder).metrics, reference.metrics)
    assert sorted(os.listdir(os.path.dirname(folder))) == [os.path.basename(folder)]


def test_a_sweep_leaves_a_member_another_process_is_writing_to_it(tmp_path, capsys):
    raw = {**TINY, "sweep": {"seeds": 2}}
    sweep_config, single = write(tmp_path, raw, "tiny.yaml"), write(tmp_path, TINY, "one.yaml")
    root = str(tmp_path / "results")
    first = Paused(["run", single, "name=tiny", "--out", root, "--quiet"])  # member seed 0
    folder = runs.run_dir(root, make_cfg())
    before = {f: open(os.path.join(folder, f), "rb").read() for f in os.listdir(folder)}
    assert main(["run", sweep_config, "--out", root, "--workers", "1", "--quiet"]) == 1
    out, err = capsys.readouterr()  # the table counts the failure, stderr names its cause
    assert "another lossbench process" in err and "1 failed" in out, (out, err)
    assert {f: open(os.path.join(folder, f), "rb").read() for f in os.listdir(folder)} == before
    assert first.go() == 0
    assert main(["run", sweep_config, "--out", root, "--workers", "1", "--quiet"]) == 0
    assert "2 runs: 2 reused" in capsys.readouterr().out


def test_a_run_folder_path_holding_a_users_folder_is_not_removed(tmp_path, capsys):
    config, root = write(tmp_path, TINY), str(tmp_path / "results")
    folder = runs.run_dir(root, make_cfg())
    os.makedirs(folder)
    open(os.path.join(folder, "thesis.tex"), "w").write("mine")
    assert main(["run", config, "--out", root, "--quiet"]) == 2
    assert "not a lossbench run folder" in capsys.readouterr().err
    assert os.listdir(folder) == ["thesis.tex"]


# ----- 2. cleanup of lossbench's own leftovers only ---------------------------------------------------


@pytest.mark.parametrize("command", ["plot", "report"])
@pytest.mark.slow
def test_plot_and_report_into_a_users_folder_touch_nothing_of_theirs(tmp_path, capsys, command):
    _, folder, _ = execute(make_cfg(), str(tmp_path / "results"))
    users = tmp_path / "mine"
    users.mkdir()
    mine = lookalikes(str(users))
    before = files_under(str(users))
    assert main([command, folder, "--out", str(users)]) == 0
    after = files_under(str(users))
    assert set(before) <= set(after), set(before) - set(after)
    assert sorted(os.listdir(users))[: len(mine)] == sorted(mine)[: len(mine)] or set(mine) <= set(
        os.listdir(users)
    )
    assert open(users / mine[1] / "cat.jpg").read() == "a photo"
    assert not (users / "thesis").exists()


# ----- 3. paths built from file contents -------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../x", "/tmp/lossbench-outside-x", "a/b", ".."])
def test_export_refuses_a_run_name_that_would_leave_out(tmp_path, capsys, name):
    pytest.importorskip("tensorboard")
    _, folder, _ = execute(make_cfg(), str(tmp_path / "shared" / "results"))
    config_path = os.path.join(folder, "config.yaml")
    config = yaml.safe_load(open(config_path))
    config["name"] = name
    open(config_path, "w").write(yaml.safe_dump(config))
    out = tmp_path / "shared" / "tb"
    before = files_under(str(tmp_path))
    assert main(["export", "tensorboard", str(tmp_path / "shared" / "results"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "name" in err and "no path separators or '..'" in err, err
    assert files_under(str(tmp_path)) == before
    assert not os.path.exists("/tmp/lossbench-outside-x")


# ----- 4. reuse only what verifies ---------------------------------------------------------------------


def _damage(folder: str, how: str) -> None:
    metrics, summary_path = os.path.join(folder, "metrics.jsonl"), os.path.join(folder, "summary.json")
    lines = open(metrics).read().splitlines(keepends=True)
    summary = json.load(open(summary_path))
    if how == "rows missing":
        open(metrics, "w").write("".join(lines[:-2]))
    elif how == "garbage line":
        open(metrics, "w").write("".join(lines[:1]) + "#!garbage\n" + "".join(lines[1:]))
    elif how == "torn last line":
        open(metrics, "w").write("".join(lines)[:-7])
    elif how == "steps is a string":
        json.dump({**summary, "steps": "many"}, open(summary_path, "w"))
    elif how == "minimal summary":
        json.dump({"status": "finished"}, open(summary_path, "w"))
    elif how == "final loss is a list":
        json.dump({**summary, "final_train_loss": [1, 2]}, open(summary_path, "w"))
    elif how == "deeply nested summary":
        open(summary_path, "w").write('{"status": "finished", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    elif how == "model.pt missing":
        os.unlink(os.path.join(folder, "model.pt"))
    elif how == "other run id":
        json.dump({**summary, "run_id": "0123456789"}, open(summary_path, "w"))
    elif how == "another run format":
        json.dump({**summary, "format": 0}, open(summary_path, "w"))


@pytest.mark.parametrize(
    "how",
    [
        "rows missing",
        "garbage line",
        "torn last line",
        "steps is a string",
        "minimal summary",
        "final loss is a list",
        "deeply nested summary",
        "model.pt missing",
        "other run id",
        "another run format",
    ],
)
def test_a_finished_run_that_does_not_verify_is_redone_with_a_note(tmp_path, capsys, how):
    config, root = write(tmp_path, TINY), str(tmp_path / "results")
    assert main(["run", config, "--out", root, "--quiet"]) == 0
    folder = runs.run_dir(root, make_cfg())
    reference = load_run(folder)
    _damage(folder, how)
    capsys.readouterr()
    assert main(["run", config, "--out", root, "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "does not verify" in err and "training it again" in err and "reused" not in out, err
    assert is_finished(folder, make_cfg())
    same_metrics(load_run(folder).metrics, reference.metrics)
    assert main(["run", config, "--out", root, "--quiet"]) == 0
    assert "reused" in capsys.readouterr().out


def test_every_recorded_summary_has_the_one_shape_verify_checks(tmp_path):
    """The recorder, the runner's stamp and the writer together write exactly `config.schema.SUMMARY`
    (every key, with its types) and only keys of SUMMARY_OPTIONAL or `final_` besides, for a plain
    run and for the members of a stack."""
    import copy

    from lossbench.config.schema import SUMMARY, SUMMARY_OPTIONAL, TARGET
    from lossbench.runs.runner import run_stacked
    from lossbench.runs.verify import summary_problem

    plain = execute(make_cfg(target_loss=0.5), str(tmp_path / "plain"))[0]
    other = copy.deepcopy(make_cfg(target_loss=0.5))
    other.seed += 1
    stacked = [pair[0] for pair in run_stacked([make_cfg(target_loss=0.5), other], str(tmp_path / "stack"))]
    for summary in [plain, *stacked]:
        assert set(SUMMARY) <= set(summary), set(SUMMARY) - set(summary)
        extra = set(summary) - set(SUMMARY) - set(SUMMARY_OPTIONAL)
        assert all(k.startswith("final_") for k in extra), extra
        assert summary["targets"] and all(set(t) == set(TARGET) for t in summary["targets"])
        assert summary_problem(json.loads(json.dumps(summary)), summary["run_id"]) is None


@pytest.mark.parametrize(
    "row, expect",
    [
        ('{"step": 0, "loss": "low"}', "loss: must hold a number per row"),
        ('{"step": 0, "grad_w": [[1, 2], 3]}', "grad_w: must hold"),
        ('{"step": [0]}', "step: must hold"),
        ('{"step": 0, "loss": {"a": 1}}', "loss: must hold a number per row"),
    ],
)
@pytest.mark.parametrize("command", ["plot", "report"])
def test_malformed_metric_values_are_a_message_not_a_traceback(tmp_path, capsys, row, expect, command):
    _, folder, _ = execute(make_cfg(), str(tmp_path / "results"))
    with open(os.path.join(folder, "metrics.jsonl"), "a") as f:
        f.write(row + "\n" + '{"step": 99}\n')
    assert main([command, folder, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert expect in err and "metrics.jsonl" in err and "Traceback" not in err, err


# ----- 5. no orphans ------------------------------------------------------------------------------------


# a killed sweep: tests/test_workers.py, with the pool's other users


@pytest.mark.slow
def test_sigterm_to_a_single_run_is_handled_like_ctrl_c(tmp_path):
    raw = {**TINY, "train": {"steps": 10_000_000, "log_every": 50}}
    config, root = write(tmp_path, raw), str(tmp_path / "results")
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lossbench", "run", config, "--out", root, "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.time() + 120
        metrics = [os.path.join(root, f) for f in files_under(root) if f.endswith("metrics.jsonl")]
        while not metrics or not open(metrics[0]).read().count("\n"):  # training has started
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.05)
            metrics = [os.path.join(root, f) for f in files_under(root) if f.endswith("metrics.jsonl")]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    (summary,) = [f for f in files_under(root) if f.endswith("summary.json")]
    assert json.load(open(os.path.join(root, summary)))["status"] == "interrupted"


# ----- 6. bounded inputs ----------------------------------------------------------------------------------


def test_a_config_file_larger_than_the_limit_is_refused_at_once(tmp_path, capsys):
    config = write(tmp_path, "name: big\n" + "# padding\n" * 40_000)
    assert main(["validate", config]) == 2
    assert "larger than 256 KiB" in capsys.readouterr().err


def test_an_endless_config_file_is_refused(capsys):
    assert main(["validate", "/dev/zero"]) == 2
    assert "larger than 256 KiB" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000 + "]" * 100_000, "a:\n" + "".join(f"{' ' * i}- \n" for i in range(60))],
    ids=["100000 flow levels", "60 block levels"],
)
def test_deeply_nested_yaml_is_a_message_not_a_crash(tmp_path, text):
    """libyaml's composer recursed until the process crashed (a segfault at 100000 levels)."""
    result = run_cli("validate", write(tmp_path, text))
    assert result.returncode == 2, result.stderr
    assert "nests more than 50 levels deep" in result.stderr and "Traceback" not in result.stderr


def test_an_alias_bomb_in_a_run_folders_config_is_refused_by_plot(tmp_path, capsys):
    from test_bad_input import BOMB

    _, folder, _ = execute(make_cfg(), str(tmp_path / "results"))
    open(os.path.join(folder, "config.yaml"), "w").write(BOMB)
    assert main(["plot", folder, "--out", str(tmp_path / "figures")]) == 2
    assert "alias bomb" in capsys.readouterr().err


def test_a_large_yaml_list_is_refused_as_large_not_as_an_alias_bomb(tmp_path, capsys):
    config = write(tmp_path, "sweep: {seeds: [" + ",".join(["1"] * 110_000) + "]}\n")  # 220 KB
    assert main(["validate", config]) == 2
    err = capsys.readouterr().err
    assert "holds more than 100000 values" in err and "alias" not in err, err


@pytest.mark.parametrize("n_features, margin", [(2, 6.0), (1, 3.99)])
def test_an_unreachable_class_margin_is_refused_instead_of_looping(tmp_path, capsys, n_features, margin):
    raw = {
        "name": "gap",
        "data": {"name": "linear_separable", "n_features": n_features, "margin": margin},
        "loss": "bce",
    }
    assert main(["validate", write(tmp_path, raw)]) == 2
    err = capsys.readouterr().err
    assert "data.margin" in err and "use a" in err and "margin" in err, err


@pytest.mark.parametrize(
    "change, expect",
    [
        (
            {"data": {"name": "mnist_like", "n_classes": 1000, "side": 256, "n_samples": 100}},
            ["data:", "class prototypes", "n_classes"],
        ),
        (
            {"data": {"name": "moons", "n_samples": 200_000}, "model": {"depth": 1, "width": 100_000}},
            ["model.width:", "evaluation pass", "every example at once"],
        ),
    ],
)
def test_sizes_are_refused_for_their_real_cause(tmp_path, capsys, change, expect):
    from lossbench.config.validate import memory_budget

    raw = {**TINY, **change}
    raw["train"] = {"steps": 1, "batch_size": 16}
    raw.pop("loss")
    assert main(["validate", write(tmp_path, raw)]) == 2
    err = capsys.readouterr().err
    assert all(e in err for e in expect), err
    assert memory_budget() < 1000 * 2**30  # (the cases need more than that)


def _idx(path, dims, body=b"", sparse_to=None):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(bytes([0, 0, 8, len(dims)]) + struct.pack(">" + "I" * len(dims), *dims) + body)
    if sparse_to is not None:
        os.truncate(path, sparse_to)


def test_mnist_reads_only_the_images_n_samples_asks_for(tmp_path):
    from lossbench.components.data import make, read_idx

    folder = tmp_path / "mnist"
    folder.mkdir()
    n = 200_000  # 157 MB of images, as a sparse file: reading it whole would show in the time and memory
    _idx(folder / "train-images-idx3-ubyte", (n, 28, 28), sparse_to=16 + n * 784)
    _idx(folder / "train-labels-idx1-ubyte", (n,), bytes(range(10)) * (n // 10))
    import tracemalloc

    tracemalloc.start()
    data = make("mnist", {"path": str(folder), "n_samples": 100}, 0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert data.x.shape == (100, 784) and peak < 20 * 2**20, peak
    # the same rows, in the same order, as reading everything and subsampling
    import torch

    keep = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:100]
    assert torch.equal(data.y, read_idx(str(folder / "train-labels-idx1-ubyte")).long()[keep])


@pytest.mark.parametrize(
    "files, expect",
    [
        ({"images": ((2**31, 28, 28), b""), "labels": ((2**31,), b"")}, "images of 784 pixels"),
        ({"images": ((10, 28, 28), bytes(700)), "labels": ((10,), bytes(10))}, "truncated"),
        ({"images": ((10, 2, 2), bytes(40)), "labels": ((10,), bytes([3] * 9 + [12]))}, "label 12"),
        ({"images": ((10, 2, 2), bytes(40)), "labels": ((9,), bytes(9))}, "10 images but 9 labels"),
        ({"images": ((10, 2, 2), bytes(40)), "labels": "not gzip"}, "cannot read"),
    ],
)
def test_damaged_or_huge_idx_files_are_messages(tmp_path, capsys, files, expect):
    folder = tmp_path / "mnist"
    folder.mkdir()
    dims, body = files["images"]
    _idx(folder / "train-images-idx3-ubyte.gz", dims, body)
    if files["labels"] == "not gzip":
        (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    else:
        _idx(folder / "train-labels-idx1-ubyte.gz", *files["labels"])
    raw = {"name": "m", "data": {"name": "mnist", "path": str(folder)}, "train": {"steps": 1}}
    assert main(["validate", write(tmp_path, raw)]) == 2
    err = capsys.readouterr().err
    assert expect in err and "Traceback" not in err, err


def test_a_ray_address_where_nothing_listens_is_refused_at_once(tmp_path, capsys):
    pytest.importorskip("ray")
    import socket

    with socket.socket() as s:  # a port nothing listens on: bound, then closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    raw = {**TINY, "sweep": {"seeds": 2}}
    argv = ["run", write(tmp_path, raw), "--out", str(tmp_path / "r"), "--backend", "ray"]
    assert main([*argv, "--address", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert f"nothing answers at 127.0.0.1:{port}" in err and "ray start --head" in err, err
    assert not (tmp_path / "r" / "tiny").exists() or not [
        f for f in files_under(str(tmp_path / "r")) if f.endswith("metrics.jsonl")
    ]


# ----- 7. every flag validated ------------------------------------------------------------------------------

MINIMAL = {  # a valid command line for each command, the value-taking arguments at their defaults
    "run": ["run", "c.yaml"],
    "validate": ["validate", "c.yaml"],
    "list": ["list"],
    "plot": ["plot", "p"],
    "compare": ["compare", "p"],
    "report": ["report", "p"],
    "export": ["export", "tensorboard", "p"],
    "reproduce": ["reproduce"],
    "watch": ["watch", "c.yaml"],
    "landscape": ["landscape", "p"],
}
BAD = {
    "count": ["0", "-3", "abc", "1.5", "100000"],
    "path": ["", "a\0b", "x" * 300],
    "address": ["nowhere", "host:0", "host:70000", "ray://:1"],
    "name": ["a/b", "../x", ""],
    "port": ["-1", "70000", "http"],
    "resolution": ["2", "1002", "4.5", "x"],
    "positive": ["0", "-1", "nan", "inf", "x"],
    "natural": ["-1", "1.5", str(2**63), "x"],
    "n_examples": ["0", "-1", "1.5", "x"],
}


def value_arguments():
    p = parser()
    for command, sp in p.commands.items():
        for action in sp._actions:
            if action.nargs == 0 or action.dest in ("help", "overrides"):
                continue
            yield command, action


def checking(action) -> bool:
    """The argument's type is one of the checking types of lossbench.cli.parser (count, path, ...)."""
    return getattr(action.type, "__module__", None) == "lossbench.cli.parser" and action.type.__name__ in BAD


def test_every_argument_that_takes_a_value_is_checked():
    assert set(MINIMAL) == set(parser().commands)
    unchecked = [f"{c} {a.dest}" for c, a in value_arguments() if a.choices is None and not checking(a)]
    assert not unchecked, f"give these a checking type where the flag is made (cli/parser.py): {unchecked}"


CASES = [
    (command, action.dest, action.option_strings[:1], bad, action.type.__name__)
    for command, action in value_arguments()
    if action.choices is None and checking(action)  # (the others fail the test above)
    for bad in BAD[action.type.__name__]
]


@pytest.mark.parametrize(
    "command, dest, option, bad, kind", CASES, ids=[f"{c[0]} {c[1]}={c[3]!r}"[:60] for c in CASES]
)
def test_a_bad_flag_value_names_the_valid_range_and_exits_2(capsys, command, dest, option, bad, kind):
    argv = list(MINIMAL[command])
    if option:
        argv += [option[0], bad]
    else:  # a positional: put the bad value in its place
        positional = [a.dest for c, a in value_arguments() if c == command and not a.option_strings]
        index = 1 + positional.index(dest)
        argv = argv[:index] + [bad] + argv[index + 1 :] if index < len(argv) else [*argv, bad]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "must be" in err, err
    if kind == "count":
        assert "from 1 to" in err


def test_address_without_the_ray_backend_is_refused(tmp_path, capsys):
    assert main(["run", write(tmp_path, TINY), "--address", "127.0.0.1:6379"]) == 2
    assert "--address" in capsys.readouterr().err


# ----- 8. messages naming the real cause ---------------------------------------------------------------------


def test_yaml_merge_keys_simply_work(tmp_path, capsys):
    text = """
name: merged
data: &base {name: moons, n_samples: 120, noise: 0.1}
model: {<<: {depth: 2, width: 8}, activation: tanh}
loss: bce
train: {epochs: 1, batch_size: 32}
sweep:
  data: [*base, {<<: *base, noise: 0.3}]
"""
    assert main(["validate", write(tmp_path, text), "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "valid sweep of 2 runs" in out and "depth: 2" in out and "width: 8" in out


def test_a_duplicate_key_beside_a_merge_is_still_refused(tmp_path, capsys):
    assert main(["validate", write(tmp_path, "model: {<<: {depth: 2}, width: 8, width: 9}\n")]) == 2
    assert "duplicate key 'width'" in capsys.readouterr().err


def test_an_empty_override_does_not_reset_a_section(tmp_path, capsys):
    assert main(["validate", write(tmp_path, TINY), "model="]) == 2
    err = capsys.readouterr().err
    assert "model: has no value after '='" in err and "model=null" in err
    assert main(["validate", write(tmp_path, TINY), "train.batch_size=null"]) == 0


@pytest.mark.parametrize("command", ["plot", "report"])
@pytest.mark.slow
def test_plot_and_report_on_a_full_disk_give_a_message(tmp_path, command):
    """A file-size limit makes the first figure (or the page) fail with EFBIG, as a full disk would."""
    import resource

    from test_faults import fork_call

    _, folder, _ = execute(make_cfg(), str(tmp_path / "results"))
    out = str(tmp_path / "out")

    def run():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.RLIM_INFINITY))
        return main([command, folder, "--out", out])

    code, err = fork_call(run)
    assert code == 2, err
    assert "cannot write" in err and "File too large" in err and "Traceback" not in err, err
    assert not [f for f in files_under(out) if ".tmp-" in f]
