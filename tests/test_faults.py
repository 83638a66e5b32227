"""Nothing lost: runs killed, interrupted, out of disk or diverging leave only honest folders.

Kills use forked copies of this process (torch is already imported there, so a kill costs
milliseconds rather than a new interpreter); Ctrl-C uses a real `python -m lossbench` process,
since the exit code 130 is the command line's.
"""

from __future__ import annotations

import errno
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import numpy as np
import pytest
import torch
import tqdm  # noqa: F401  (imported before forking/dropping privileges, as training needs it)
import yaml
from conftest import ROOT, TINY

import lossbench.engine.stacked  # noqa: F401
import lossbench.engine.train  # noqa: F401
from lossbench.cli import main
from lossbench.config.validate import load
from lossbench.runs import store as runs
from lossbench.runs.runner import execute
from lossbench.runs.store import is_finished, load_run, read_summary
from lossbench.runs.verify import reuse_check


def make_cfg(**train):
    raw = json.loads(json.dumps(TINY))
    raw["train"].update(train)
    return load(raw=raw)[0]


def fork_call(fn, kill_after: float | None = None, timeout: float = 120) -> tuple[int, str]:
    """Run `fn()` (returning an exit code) in a forked copy of this process.

    With `kill_after`, SIGKILL the copy after that many seconds. Returns (exit code, stderr),
    the code negative when a signal ended it. A copy still running after `timeout` fails the test.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            torch.set_num_threads(1)  # no OpenMP pool inherited from an earlier multi-thread test
            os.close(read_end)
            os.dup2(write_end, 1)
            os.dup2(write_end, 2)
            sys.stdout = open(1, "w", closefd=False)  # pytest's capture replaced sys.stdout/err
            sys.stderr = open(2, "w", closefd=False)
            code = fn()
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(write_end)
    if kill_after is not None:
        time.sleep(kill_after)
        os.kill(pid, signal.SIGKILL)
    hung = []

    def stop_hung_child():
        hung.append(True)
        os.kill(pid, signal.SIGKILL)

    timer = threading.Timer(timeout, stop_hung_child)
    timer.start()
    try:
        with os.fdopen(read_end, errors="replace") as f:
            err = f.read()
        _, status = os.waitpid(pid, 0)
    finally:
        timer.cancel()
    assert not hung, f"the forked run hung for {timeout} s:\n{err}"
    return os.waitstatus_to_exitcode(status), err


def same_metrics(a: dict, b: dict) -> None:
    """Every metrics column equal (NaN where NaN), except wall-clock times."""
    assert set(a) == set(b)
    for key in a:
        if key != "time":
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def files_under(folder) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


# ----- SIGKILL -----------------------------------------------------------------------------------


def check_after_kill(folder: str, cfg, reference) -> str:
    """A killed run's folder is finished and whole, or not finished at all."""
    if not os.path.exists(folder):
        return "absent"
    if is_finished(folder, cfg):
        run = load_run(folder)
        assert run.summary["status"] == "finished"
        assert {"config.yaml", "metrics.jsonl", "model.pt", "view.npz", "summary.json"} <= set(
            os.listdir(folder)
        )
        same_metrics(run.metrics, reference.metrics)
        return "finished"
    assert read_summary(folder) is None
    return "incomplete"


@pytest.mark.slow
def test_sigkill_at_random_moments_then_rerun(tmp_path):
    cfg = make_cfg(epochs=6, batch_size=16, log_every=1)
    reference = load_run(execute(cfg, str(tmp_path / "reference"))[1])
    root = str(tmp_path / "results")

    def run_once():
        execute(cfg, root)
        return 0

    start = time.perf_counter()
    assert fork_call(run_once)[0] == 0
    duration = time.perf_counter() - start
    shutil.rmtree(root)

    rng = random.Random(6)
    folder = runs.run_dir(root, cfg)
    outcomes = []
    for _ in range(8):  # kills land anywhere from before the folder exists to after the summary
        code, _ = fork_call(run_once, kill_after=rng.uniform(0.0, 1.2 * duration))
        outcomes.append(check_after_kill(folder, cfg, reference))
        if outcomes[-1] == "finished":
            shutil.rmtree(root)  # start over, so later kills land in a fresh run again
        assert code in (0, -signal.SIGKILL)
    assert "incomplete" in outcomes or "absent" in outcomes, outcomes

    summary, folder_again, reused = execute(cfg, root)
    assert folder_again == folder and summary["status"] == "finished"
    same_metrics(load_run(folder).metrics, reference.metrics)
    assert not [f for f in files_under(root) if ".tmp" in f]


class TornWrites:
    """A file proxy that writes each piece in two halves, calling `event` after each half."""

    def __init__(self, f, event):
        self.f, self.event = f, event

    def write(self, text):
        half = len(text) // 2
        for piece in (text[:half], text[half:]):
            self.f.write(piece)
            self.f.flush()
            self.event()

    def __getattr__(self, name):
        return getattr(self.f, name)


@pytest.mark.slow
def test_sigkill_at_every_write_then_rerun(tmp_path):
    """Kill the run at each of its writes in turn: mid-row, between rows, before and after each
    atomic rename. A rerun always ends with the reference run, reusing only a whole one."""
    cfg = make_cfg(steps=5, log_every=2)  # rows at steps 0, 2, 4
    reference = load_run(execute(cfg, str(tmp_path / "reference"))[1])
    root = str(tmp_path / "results")
    folder = runs.run_dir(root, cfg)

    def run_killed_at(k):
        count = [0]

        def event():
            count[0] += 1
            if count[0] == k:
                os.kill(os.getpid(), signal.SIGKILL)

        real_replace, real_init = os.replace, runs.RunWriter.__init__

        def replace(src, dst):
            event()
            real_replace(src, dst)
            event()

        def init(self, *args, **kwargs):
            real_init(self, *args, **kwargs)
            self.metrics = TornWrites(self.metrics, event)

        os.replace = replace  # in the forked copy only
        runs.RunWriter.__init__ = init
        execute(cfg, root)
        return 0

    seen = []
    for k in range(1, 40):
        code, err = fork_call(lambda k=k: run_killed_at(k))
        if code == 0:
            break  # k is past the last write
        assert code == -signal.SIGKILL, err
        state = check_after_kill(folder, cfg, reference)
        seen.append(state)
        summary, _, reused = execute(cfg, root)
        assert reused == (state == "finished")
        assert summary["status"] == "finished"
        same_metrics(load_run(folder).metrics, reference.metrics)
        assert not [f for f in files_under(root) if ".tmp" in f]
        shutil.rmtree(root)
    # config + 3 rows in halves + model, view, summary renames: 2 + 6 + 6 kill points at least
    assert len(seen) >= 14, seen
    assert seen[-1] == "finished" and seen.count("finished") == 1 and seen[0] == "incomplete"


@pytest.mark.parametrize(
    "damage",
    [
        "truncated",
        "empty",
        "status interrupted",
        "status missing",
        "not a mapping",
        "other config",
        "targets not a list",
        "target without steps_to",
    ],
)
def test_damaged_summary_is_never_taken_for_finished(tmp_path, damage):
    cfg = make_cfg()
    root = str(tmp_path / "results")
    first, folder, _ = execute(cfg, root)
    path = os.path.join(folder, "summary.json")
    text = open(path).read()
    if damage == "truncated":
        open(path, "w").write(text[: len(text) // 2])
    elif damage == "empty":
        open(path, "w").close()
    elif damage == "status interrupted":
        open(path, "w").write(json.dumps({**first, "status": "interrupted"}))
    elif damage == "status missing":
        open(path, "w").write(json.dumps({k: v for k, v in first.items() if k != "status"}))
    elif damage == "not a mapping":
        open(path, "w").write("[1, 2]")
    elif damage == "targets not a list":  # the one shape of targets (engine/recording.py) or nothing
        open(path, "w").write(json.dumps({**first, "targets": {"metric": "loss"}}))
    elif damage == "target without steps_to":
        open(path, "w").write(json.dumps({**first, "targets": [{"metric": "loss", "value": 0.5}]}))
    else:  # the folder holds another config's run under this id
        config_path = os.path.join(folder, "config.yaml")
        other = yaml.safe_load(open(config_path))
        other["seed"] = 99
        open(config_path, "w").write(yaml.safe_dump(other))
    if damage.startswith("target"):  # finished-looking, but it does not verify
        reusable, note = reuse_check(folder, cfg)
        assert not reusable and "targets" in note
    else:
        assert not is_finished(folder, cfg)
    summary, folder_again, reused = execute(cfg, root)
    assert not reused and folder_again == folder
    assert read_summary(folder)["status"] == "finished"
    assert summary["final_train_loss"] == first["final_train_loss"]


# ----- Ctrl-C ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_marks_the_run_interrupted_keeps_rows_and_exits_130(tmp_path):
    raw = json.loads(json.dumps(TINY))
    raw["data"]["n_samples"] = 400
    raw["train"] = {"steps": 200_000, "batch_size": 16, "log_every": 20}  # minutes: never finishes here
    config = tmp_path / "long.yaml"
    config.write_text(yaml.safe_dump(raw))
    cfg = load(str(config))[0]
    folder = runs.run_dir(str(tmp_path / "results"), cfg)
    metrics = os.path.join(folder, "metrics.jsonl")
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lossbench", "run", str(config), "--out", str(tmp_path / "results")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.time() + 120
        rows_before = 0
        while rows_before < 3:  # wait until training has recorded a few rows
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "training did not start"
            time.sleep(0.05)
            if os.path.exists(metrics):
                rows_before = open(metrics).read().count("\n")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted" in err
    summary = json.load(open(os.path.join(folder, "summary.json")))
    assert summary["status"] == "interrupted"
    assert 0 < summary["steps_done"] < summary["steps"]
    run = load_run(folder)
    assert len(run.metrics["step"]) >= rows_before
    assert run.metrics["step"][-1] < summary["steps_done"]
    assert not is_finished(folder, cfg) and read_summary(folder) is None  # redone next time


# ----- read-only and full results folders ---------------------------------------------------------


NO_SETUID = 77  # a forked child's exit code when it cannot drop root's rights


def as_other_user():
    """Drop root's rights in a forked child, so that file permissions apply to it."""
    if os.geteuid() == 0:
        try:
            os.setgid(65534)
            os.setuid(65534)
        except PermissionError:
            os._exit(NO_SETUID)


def skip_if_no_setuid(code: int) -> None:
    if code == NO_SETUID:
        pytest.skip("running as root without the right to become another user")


@pytest.fixture
def shared_tmp():
    """A temporary folder other users can read (pytest's tmp_path is private to root)."""
    folder = tempfile.mkdtemp(prefix="lossbench-faults-")
    os.chmod(folder, 0o755)
    yield folder
    for d, ds, _ in os.walk(folder):
        for name in ds:
            os.chmod(os.path.join(d, name), 0o755)
    shutil.rmtree(folder)


@pytest.mark.parametrize("read_only", ["results root", "run name folder"])
def test_read_only_results_folder(shared_tmp, read_only):
    config = os.path.join(shared_tmp, "tiny.yaml")
    with open(config, "w") as f:
        yaml.safe_dump(TINY, f)
    os.chmod(config, 0o644)
    root = os.path.join(shared_tmp, "results")
    locked = root if read_only == "results root" else os.path.join(root, "tiny")
    os.makedirs(locked)
    os.chmod(root, 0o755)
    os.chmod(locked, 0o555)
    before = files_under(shared_tmp)

    def run():
        as_other_user()
        return main(["run", config, "--out", os.path.join(root, "sub") if locked == root else root])

    code, err = fork_call(run)
    skip_if_no_setuid(code)
    assert code == 2, err
    assert "Traceback" not in err
    assert "cannot write" in err and ("read-only" in err or "Permission denied" in err), err
    assert files_under(shared_tmp) == before
    assert sorted(os.listdir(root)) == ([] if locked == root else ["tiny"])


def test_results_are_readable_by_other_users(shared_tmp):
    """A results folder shared with a class: another user can load every run file."""
    root = os.path.join(shared_tmp, "results")
    _, folder, _ = execute(make_cfg(), root)
    os.chmod(root, 0o755)
    for d, ds, _ in os.walk(root):
        for name in ds:
            os.chmod(os.path.join(d, name), 0o755)

    def read():
        as_other_user()
        run = load_run(folder)
        for name in os.listdir(folder):
            open(os.path.join(folder, name), "rb").close()
        return 0 if run.summary["status"] == "finished" else 1

    code, err = fork_call(read)
    skip_if_no_setuid(code)
    assert code == 0, err


def test_results_root_that_is_a_file(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    assert main(["run", str(config), "--out", "/dev/full"]) == 2
    assert "/dev/full is not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("limit", [40, 1000, 3000, 5000])
def test_full_disk_at_each_file(tmp_path, limit):
    """A file-size limit makes writes fail with EFBIG at a chosen point, as a full disk would.

    The tiny run writes config.yaml (~460 bytes), metrics.jsonl (~4300), model.pt (~3200),
    view.npz (~60000) and summary.json (~770): the limits fail config.yaml, the metrics early and
    late, and view.npz after model.pt was written.
    """
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    root = tmp_path / "results"

    def run():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        return main(["run", str(config), "--out", str(root), "--quiet"])

    code, err = fork_call(run)
    assert code == 2, err
    assert "Traceback" not in err
    assert "cannot write" in err and "File too large" in err and "nothing was kept" in err
    assert not root.exists(), files_under(root)


@pytest.mark.parametrize("where", ["third metrics row", "summary.json"])
def test_no_space_left(tmp_path, capsys, monkeypatch, where):
    """ENOSPC mid-run or on the very last file: a clear error, exit 2, no partial folder."""
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    (tmp_path / "results").mkdir()  # a root the user made is kept, empty
    real_log, real_write, rows = runs.RunWriter.log, runs.atomic_write, []
    no_space = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def log(self, row):
        if len(rows) == 2 and where == "third metrics row":
            raise no_space
        rows.append(row)
        real_log(self, row)

    def atomic_write(path, data):
        if path.endswith(where):
            raise no_space
        real_write(path, data)

    monkeypatch.setattr(runs.RunWriter, "log", log)
    monkeypatch.setattr(runs, "atomic_write", atomic_write)
    assert main(["run", str(config), "--out", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "cannot write" in err
    assert os.listdir(tmp_path / "results") == []


# ----- divergence --------------------------------------------------------------------------------


def test_lr_1e3_is_marked_diverged_at_its_step(tmp_path, capsys):
    raw = json.loads(json.dumps(TINY))
    raw.update(
        name="diverge",
        data={"name": "line", "n_samples": 64},
        loss="mse",
        model={"depth": 2, "width": 8, "activation": "relu"},
        optim={"name": "sgd", "lr": 1e3},
        train={"epochs": 5, "batch_size": 16, "log_every": 1},
    )
    config = tmp_path / "diverge.yaml"
    config.write_text(yaml.safe_dump(raw))
    root = tmp_path / "results"
    assert main(["run", str(config), "--out", str(root), "--quiet"]) == 0
    out = capsys.readouterr().out
    (folder,) = (root / "diverge").iterdir()
    run = load_run(str(folder))
    k = run.summary["diverged_step"]
    assert run.summary["status"] == "diverged" and k is not None
    assert f"diverged at step {k}" in out
    # every step is logged: each row before k is finite, row k is the first that is not
    steps, loss, grad_w = run.metrics["step"], run.metrics["loss"], run.metrics["grad_w"]
    assert list(steps) == list(range(k + 1))
    assert np.isfinite(loss[:k]).all() and np.isfinite(grad_w[:k]).all()
    assert not np.isfinite(loss[k]) or not np.isfinite(grad_w[k]).all()
    assert run.metrics["diverged"][k] == 1
    assert run.summary["steps_done"] == k < run.summary["steps"]
    assert run.summary.get("final_train_loss") is None
    # a diverged run is a result: the same config is not trained again
    assert main(["run", str(config), "--out", str(root), "--quiet"]) == 0
    assert "reused" in capsys.readouterr().out


# ----- sweeps ------------------------------------------------------------------------------------

SWEEP = {
    "name": "sw",
    "data": {"name": "line", "n_samples": 64},
    "model": {"depth": 2, "width": 8, "activation": "relu"},
    "loss": "mse",
    "optim": {"name": "sgd", "lr": 0.01},
    "train": {"epochs": 4, "batch_size": 16, "log_every": 2},
    # lr 1e3 diverges: the sweep must go on around it
    "sweep": {"model.activation": ["relu", "tanh"], "optim.lr": [0.01, 1e3], "seeds": 2},
}


def sweep_runs(folder) -> dict:
    """run id -> the loaded run, for every finished run folder of a sweep."""
    found = {}
    for run_id in sorted(os.listdir(folder)):
        path = os.path.join(folder, run_id)
        if os.path.isdir(path) and is_finished(path):
            found[run_id] = load_run(path)
    return found


def sweep_table(folder) -> list[dict]:
    """The rows of runs.csv (a row per run) and sweep.csv (a row per grid point) without the columns
    that may differ between computing and reusing (wall times, notes)."""
    import csv

    rows = []
    for name in ("runs.csv", "sweep.csv"):
        with open(os.path.join(folder, name)) as f:
            rows += [
                {k: v for k, v in r.items() if not k.startswith(("wall_time", "note"))}
                for r in csv.DictReader(f)
            ]
    return rows


@pytest.mark.slow
def test_sweep_killed_then_rerun_equals_an_uninterrupted_sweep(tmp_path, capsys):
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(SWEEP))
    ref_root, root = str(tmp_path / "reference"), str(tmp_path / "results")

    def sweep(out):
        return main(["run", str(config), "--out", out, "--workers", "1", "--quiet"])

    assert sweep(ref_root) == 0
    capsys.readouterr()
    reference = sweep_runs(os.path.join(ref_root, "sw"))
    assert len(reference) == 8
    statuses = [r.summary["status"] for r in reference.values()]
    assert "diverged" in statuses and "finished" in statuses

    start = time.perf_counter()
    assert fork_call(lambda: sweep(str(tmp_path / "timing")))[0] == 0
    duration = time.perf_counter() - start

    rng = random.Random(8)
    for _ in range(4):  # kill at random moments, each time resuming the same folder
        code, err = fork_call(lambda: sweep(root), kill_after=rng.uniform(0.1, 0.9) * duration)
        assert code in (0, -signal.SIGKILL), err  # (exit 1 seen once under load: err says why)
        partial = sweep_runs(os.path.join(root, "sw"))
        assert set(partial) <= set(reference)
        for run_id, run in partial.items():  # whatever counts as finished is whole and right
            assert run.summary["status"] == reference[run_id].summary["status"]
            same_metrics(run.metrics, reference[run_id].metrics)

    assert sweep(root) == 0
    assert "8 runs:" in capsys.readouterr().out
    final = sweep_runs(os.path.join(root, "sw"))
    assert set(final) == set(reference)
    for run_id, run in final.items():
        assert run.summary["status"] == reference[run_id].summary["status"]
        same_metrics(run.metrics, reference[run_id].metrics)
    assert sweep_table(os.path.join(root, "sw")) == sweep_table(os.path.join(ref_root, "sw"))
    leftovers = [f for f in files_under(root) if ".tmp" in f]
    assert not leftovers

    # the loss-curve figure marks each diverged run with an X at its divergence step
    from lossbench.viz.figures import fig_loss_curves
    from lossbench.viz.load import group_runs, load_runs

    ax = fig_loss_curves(group_runs(load_runs([os.path.join(root, "sw")]))).axes[0]
    marks = [line for line in ax.get_lines() if line.get_marker() == "X" and len(line.get_xdata()) == 1]
    diverged = [r for r in final.values() if r.summary["status"] == "diverged"]
    assert sorted(m.get_xdata()[0] for m in marks) == sorted(r.summary["diverged_step"] for r in diverged)
    assert "diverged here" in ax.get_legend_handles_labels()[1]


def killed_at_rename(fn, k: int):
    """Run `fn()` in a forked copy that SIGKILLs itself at its k-th os.replace/os.rename call,
    before that call: a kill at an exact write point, with no timing luck involved."""

    def child():
        count = [0]
        real_replace, real_rename = os.replace, os.rename

        def at_call(real):
            def call(src, dst):
                count[0] += 1
                if count[0] == k:
                    os.kill(os.getpid(), signal.SIGKILL)
                real(src, dst)

            return call

        os.replace, os.rename = at_call(real_replace), at_call(real_rename)  # in the forked copy only
        fn()
        return 0

    return fork_call(child)


def lookalikes(folder) -> list[str]:
    """Files and folders named like lossbench's leftovers, made by someone else (a user), with the
    process id of a process that has exited: a cleanup going by names would take them."""
    dead = int(
        subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
        ).stdout
    )
    names = [
        f".tmp-{dead}-draft.txt",
        f".photos.new-{dead}",
        f".thesis.old-{dead}",
        ".notes.lock",
        ".x.journal",
    ]
    os.makedirs(os.path.join(folder, names[1]))
    open(os.path.join(folder, names[1], "cat.jpg"), "w").write("a photo")
    for name in names[:1] + names[2:]:
        open(os.path.join(folder, name), "w").write("the user's own file")
    return names


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write_and_nothing_else(tmp_path):
    """atomic_write killed before its rename leaves its temporary file and the journal listing it;
    the next write into the folder removes exactly those, and none of a user's lookalikes."""
    target = str(tmp_path / "summary.json")
    code, err = killed_at_rename(lambda: runs.atomic_write(target, b"{}"), k=1)
    assert code == -signal.SIGKILL, err
    left = sorted(os.listdir(tmp_path))
    assert any(n.startswith(".tmp-") for n in left) and any(n.endswith(".journal") for n in left), left
    mine = lookalikes(str(tmp_path))
    runs.atomic_write(target, b"{}")
    assert sorted(os.listdir(tmp_path)) == sorted([*mine, "summary.json"])
    assert open(tmp_path / mine[1] / "cat.jpg").read() == "a photo"


# ----- --force replaces a finished run only once the new one is whole ------------------------------


def test_forced_rerun_replaces_the_run_only_when_it_finishes(tmp_path, monkeypatch):
    cfg = make_cfg()
    root = str(tmp_path)
    summary, folder, _ = execute(cfg, root)
    before = {f: open(os.path.join(folder, f), "rb").read() for f in sorted(os.listdir(folder))}

    # Ctrl-C during the forced rerun: the finished run stays byte for byte, nothing else is left
    real_train = lossbench.engine.stacked.train_stacked

    def interrupted(cfgs, logs=None, progress=False):
        logs[0]({"step": 0, "loss": 9.0})
        out = real_train(cfgs)
        out[0][0]["status"] = "interrupted"
        return out

    monkeypatch.setattr(lossbench.engine.stacked, "train_stacked", interrupted)
    with pytest.raises(KeyboardInterrupt):
        execute(cfg, root, force=True)
    assert {f: open(os.path.join(folder, f), "rb").read() for f in sorted(os.listdir(folder))} == before
    assert os.listdir(os.path.dirname(folder)) == [os.path.basename(folder)]

    # a failure in the middle (here a bug in training): the same
    def broken(cfgs, logs=None, progress=False):
        logs[0]({"step": 0, "loss": 9.0})
        raise RuntimeError("boom")

    monkeypatch.setattr(lossbench.engine.stacked, "train_stacked", broken)
    with pytest.raises(RuntimeError):
        execute(cfg, root, force=True)
    assert {f: open(os.path.join(folder, f), "rb").read() for f in sorted(os.listdir(folder))} == before
    assert os.listdir(os.path.dirname(folder)) == [os.path.basename(folder)]

    # a forced rerun that finishes replaces the whole folder
    monkeypatch.setattr(lossbench.engine.stacked, "train_stacked", real_train)
    open(os.path.join(folder, "stray.txt"), "w").write("from the old run")
    summary2, folder2, reused = execute(cfg, root, force=True)
    assert folder2 == folder and not reused and summary2["status"] == "finished"
    assert sorted(os.listdir(folder)) == sorted(before)  # the stray file went with the old run
    assert summary2["run_id"] == os.path.basename(folder)
    assert os.listdir(os.path.dirname(folder)) == [os.path.basename(folder)]


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6, 7])
def test_a_forced_rerun_killed_at_each_rename_leaves_a_finished_run_and_its_leftovers_are_cleaned(
    tmp_path, k
):
    """Kill a forced rerun before each of its renames: config.yaml, model.pt, view.npz,
    summary.json into the hidden new folder (1-4), the old run aside (5), the new one in (6), and
    a later one (7: none, the run ends). Any later writer in the folder then restores a consistent state: the run is
    finished and whole, and only lossbench's leftovers are gone."""
    cfg = make_cfg()
    _, folder, _ = execute(cfg, str(tmp_path))
    parent, run_id = os.path.split(folder)
    mine = lookalikes(parent)
    code, err = killed_at_rename(lambda: execute(cfg, str(tmp_path), force=True), k)
    assert code == (0 if k == 7 else -signal.SIGKILL), err
    runs.RunWriter(os.path.join(parent, "third"), cfg).close()  # any new writer in the folder cleans up
    assert sorted(os.listdir(parent)) == sorted([run_id, "third", *mine])
    assert is_finished(folder, cfg)
    assert execute(cfg, str(tmp_path))[2]  # reused: it verifies


def test_a_sweep_resumed_with_one_member_of_a_stack_left_computes_it_as_the_full_sweep_did(tmp_path, capsys):
    """The cause of a rare failure of the test above: when a kill left only some members of a stack
    to compute, the rerun trained them alone (first with the plain loop, which agrees with the stacked
    engine only to rounding; then in a smaller stack, whose largest learning rate, to which the
    engine scales every member's step, differs). Now a stack is computed whole, as planned over every
    member, and only the missing members are written: the same bits whichever members were left."""
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(SWEEP))
    ref_root, root = str(tmp_path / "reference"), str(tmp_path / "results")
    assert main(["run", str(config), "--out", ref_root, "--workers", "1", "--quiet"]) == 0
    reference = sweep_runs(os.path.join(ref_root, "sw"))
    relu = [i for i, r in reference.items() if r.config["model"]["activation"] in ("relu", {"name": "relu"})]
    assert len(relu) == 4
    for left in relu:  # three of the relu stack's four members finished, this one left (two diverge)
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(ref_root, root)
        shutil.rmtree(os.path.join(root, "sw", left))
        assert main(["run", str(config), "--out", root, "--workers", "1", "--quiet"]) == 0
        assert "7 reused, 1 computed" in capsys.readouterr().out
        run = load_run(os.path.join(root, "sw", left))
        assert run.summary["status"] == reference[left].summary["status"]
        same_metrics(run.metrics, reference[left].metrics)
