"""Nothing damaged reused, nothing outside written, nothing unbounded (issue 22): one test per cause.

Complete runs only, locks that follow no link, the watch server as a local server should be, sizes
before lists, one set of checks for every entry, seeds that mean what they say, errors that travel
and print. docs/reliability.md lists what each test guarantees. Every socket is on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import time

import pytest
import yaml
from conftest import ROOT, TINY, run_cli
from test_faults import files_under, fork_call, make_cfg

from lossbench.cli import main
from lossbench.errors import UserError
from lossbench.runs import journal
from lossbench.runs import store as runs
from lossbench.runs.store import is_finished, load_run


def write(tmp_path, raw, name="tiny.yaml") -> str:
    path = tmp_path / name
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw))
    return str(path)


def finished_run(tmp_path) -> tuple[str, str, str]:
    """(config path, results root, run folder) of TINY trained once (9 steps, a row every 2: 5 rows)."""
    config, root = write(tmp_path, TINY), str(tmp_path / "results")
    assert main(["run", config, "--out", root, "--quiet"]) == 0
    return config, root, runs.run_dir(root, make_cfg())


# ----- 1. finished means complete ------------------------------------------------------------------


def _cut(folder: str, how: str) -> None:
    metrics, summary_path = os.path.join(folder, "metrics.jsonl"), os.path.join(folder, "summary.json")
    lines = open(metrics).read().splitlines(keepends=True)
    summary = json.load(open(summary_path))
    assert len(lines) == 5 and summary["steps"] == 9  # (the case the issue measured)
    if how == "rows cut at a line end, no n_rows":
        del summary["n_rows"]
        open(metrics, "w").write("".join(lines[:2]))
    elif how == "finished after 2 of 9 steps":
        summary.update(steps_done=2, n_rows=2)
        open(metrics, "w").write("".join(lines[:2]))
    elif how == "last row before the last step":
        summary.update(n_rows=4)
        open(metrics, "w").write("".join(lines[:4]))
    elif how == "weights that do not load":
        open(os.path.join(folder, "model.pt"), "wb").write(b"PK\x03\x04 not a state_dict")
    elif how == "picture data that does not load":
        open(os.path.join(folder, "view.npz"), "wb").write(b"\x93NUMPY garbage")
    json.dump(summary, open(summary_path, "w"))


@pytest.mark.parametrize(
    "how",
    [
        "rows cut at a line end, no n_rows",
        "finished after 2 of 9 steps",
        "last row before the last step",
        "weights that do not load",
        "picture data that does not load",
    ],
)
def test_a_finished_looking_run_that_is_not_complete_is_redone(tmp_path, capsys, how):
    config, root, folder = finished_run(tmp_path)
    reference = load_run(folder).metrics
    _cut(folder, how)
    capsys.readouterr()
    assert main(["run", config, "--out", root, "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "does not verify" in err and "training it again" in err and "reused" not in out, err
    assert len(load_run(folder).metrics["step"]) == len(reference["step"]) == 5
    assert main(["run", config, "--out", root, "--quiet"]) == 0
    assert "reused" in capsys.readouterr().out


# ----- 2. locks and journals opened safely -----------------------------------------------------------


def lock_path(root: str) -> str:
    folder = runs.run_dir(root, make_cfg())
    return os.path.join(os.path.dirname(folder), f".{os.path.basename(folder)}.lock")


@pytest.mark.parametrize("kind", ["symbolic link", "hard link", "folder", "fifo"])
def test_a_lock_path_holding_anything_but_a_lock_is_refused_and_left_alone(tmp_path, capsys, kind):
    config, root = write(tmp_path, TINY), str(tmp_path / "results")
    lock = lock_path(root)
    os.makedirs(os.path.dirname(lock))
    outside = tmp_path / "precious.txt"
    outside.write_text("a file outside --out")
    if kind == "symbolic link":
        os.symlink(outside, lock)
    elif kind == "hard link":
        os.link(outside, lock)
    elif kind == "folder":
        os.mkdir(lock)
    else:
        os.mkfifo(lock)
    assert main(["run", config, "--out", root, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert lock in err and "not a lock lossbench made" in err and "move it away" in err, err
    assert outside.read_text() == "a file outside --out"
    assert not os.path.exists(runs.run_dir(root, make_cfg()))


def _foreign_lock(lock: str, records: list[dict]) -> bytes:
    lines = [{"journal": "lossbench", "pid": 4121, "host": "container-that-is-gone"}, *records]
    data = "".join(json.dumps(r) + "\n" for r in lines).encode()
    with open(lock, "wb") as f:
        f.write(data)
    return data


def test_another_hosts_journal_is_kept_and_reported_never_truncated(tmp_path, capsys):
    """A --force swap killed between its renames on another host (a container since replaced)."""
    config, root, folder = finished_run(tmp_path)
    parent, run_id = os.path.split(folder)
    os.rename(folder, os.path.join(parent, f".{run_id}.old-4121"))  # the kill came after this rename
    os.makedirs(os.path.join(parent, f".{run_id}.new-4121"))
    data = _foreign_lock(
        lock_path(root), [{"made": f".{run_id}.new-4121"}, {"moved": f".{run_id}.old-4121", "from": run_id}]
    )
    before = files_under(parent)
    assert main(["run", config, "--out", root, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert lock_path(root) in err and "'container-that-is-gone'" in err, err
    assert f".{run_id}.old-4121 (moved from {run_id}: rename it back" in err, err
    assert f".{run_id}.new-4121 (made there: delete it)" in err, err
    assert open(lock_path(root), "rb").read() == data and files_under(parent) == before
    # what the message says to do works: put the run back, delete the rest, run again: reused
    os.rename(os.path.join(parent, f".{run_id}.old-4121"), folder)
    os.rmdir(os.path.join(parent, f".{run_id}.new-4121"))
    os.unlink(lock_path(root))
    assert main(["run", config, "--out", root, "--quiet"]) == 0
    assert "reused" in capsys.readouterr().out


def test_another_hosts_temporary_file_journal_is_kept_and_noted(tmp_path, capsys):
    config, root, folder = finished_run(tmp_path)
    stray = os.path.join(folder, ".tmp-4121-abc")
    open(stray, "w").write("half a summary")
    entry = os.path.join(folder, ".lossbench-4121-beef.journal")
    data = _foreign_lock(entry, [{"made": ".tmp-4121-abc"}])
    journal._reported.clear()
    journal.clean(folder)
    err = capsys.readouterr().err
    assert entry in err and "'container-that-is-gone'" in err and ".tmp-4121-abc (made there" in err, err
    assert open(entry, "rb").read() == data and os.path.exists(stray)


# ----- 3. watch as a local server should be ---------------------------------------------------------


@pytest.fixture
def server():
    from lossbench.watch import State, serve

    state = State("watched.yaml")
    state.update(busy=False, status="ready", figures={"loss": b"\x89PNG fake"}, version=1)
    srv = serve(state, 0)
    yield srv
    srv.shutdown()
    srv.server_close()


def request(port: int, raw: bytes) -> tuple[int, bytes]:
    """Send `raw` to 127.0.0.1:port; (status code, body) of the answer (0 when closed unanswered)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    if not data:
        return 0, b""
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def get(port: int, target: str, host: str | None = "127.0.0.1:{port}") -> tuple[int, bytes]:
    lines = [f"GET {target} HTTP/1.1"] + ([f"Host: {host.format(port=port)}"] if host is not None else [])
    return request(port, ("\r\n".join([*lines, "Connection: close", "", ""])).encode("utf-8"))


@pytest.mark.parametrize(
    "host, code",
    [
        ("127.0.0.1:{port}", 200),
        ("localhost:{port}", 200),
        ("LOCALHOST:{port}", 200),
        ("rebound.example.com:{port}", 403),  # a page of another site whose name now points here
        ("127.0.0.1", 403),
        ("127.0.0.1:1", 403),
        (None, 400),
    ],
)
def test_watch_answers_only_requests_for_its_own_address(server, host, code):
    port = server.server_address[1]
    for target in ("/", "/state.json", "/figure/loss.png"):
        status, body = get(port, target, host)
        assert status == code, (target, body)
        if code != 200:
            assert b"watched.yaml" not in body and b"PNG" not in body


@pytest.mark.parametrize(
    "target, code",
    [
        ("/state.json?after=3", 200),
        ("/state.json?after=-1", 200),
        ("/state.json?after=\u00b2", 400),  # a superscript two: isdigit() but no int()
        ("/state.json?after=" + "9" * 5000, 400),
        ("/state.json?after=", 400),
        ("/state.json?after=1&after=2", 400),
        ("/state.json?x=1", 400),
        ("/figure/loss.png?v=1", 200),
        ("/figure/loss.png?v=x", 400),
        ("/?a=b", 404),
        ("/nothing", 404),
    ],
)
@pytest.mark.slow
def test_watch_parses_requests_strictly(server, target, code):
    status, body = get(server.server_address[1], target)
    assert status == code, body
    if code == 200 and target.startswith("/state.json"):
        assert json.loads(body)["status"] == "ready"


def _half_sent(port: int, n: int) -> list[socket.socket]:
    held = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(n)]
    for s in held:
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127")  # half a request, never finished
    return held


def test_watch_caps_its_connections(monkeypatch):
    from lossbench import watch

    monkeypatch.setattr(watch, "MAX_CONNECTIONS", 4)
    srv = watch.serve(watch.State("watched.yaml"), 0)
    port = srv.server_address[1]
    try:
        held = _half_sent(port, 4)
        time.sleep(0.2)  # (lets the server accept them; the check below holds either way)
        assert get(port, "/")[0] == 0  # a fifth connection is closed unanswered, no thread held
        for s in held:
            s.close()
        deadline = time.monotonic() + 60
        while get(port, "/")[0] != 200:  # the slots come back as the four end
            assert time.monotonic() < deadline, "the server never answered again"
    finally:
        srv.shutdown()
        srv.server_close()


def test_watch_times_out_a_half_sent_request(monkeypatch):
    from lossbench import watch

    monkeypatch.setattr(watch, "REQUEST_TIMEOUT", 0.5)
    srv = watch.serve(watch.State("watched.yaml"), 0)
    try:
        (held,) = _half_sent(srv.server_address[1], 1)
        assert held.recv(100) == b""  # the server closed it (the client's own timeout is 60 s)
        held.close()
    finally:
        srv.shutdown()
        srv.server_close()


def test_watch_polls_its_config_by_stat_and_reads_it_bounded(tmp_path, monkeypatch):
    from lossbench import watch
    from lossbench.config.yaml_io import MAX_CONFIG_BYTES

    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (100 << 20))  # 100 MB: read in full every 50 ms before
    reads = []
    real_read = watch._read
    monkeypatch.setattr(watch, "_read", lambda p: reads.append(real_read(p)) or reads[-1])
    monkeypatch.setattr(watch, "POLL_SECONDS", 0.001)
    seen = watch.changes(str(big))
    next(seen)  # the first content
    polls = []
    monkeypatch.setattr(watch.time, "sleep", lambda s: polls.append(s) if len(polls) < 200 else 1 / 0)
    with pytest.raises(ZeroDivisionError):
        next(seen)  # 200 polls of an unchanged file
    assert len(reads) == 2 and all(len(r) == MAX_CONFIG_BYTES + 1 for r in reads)
    assert len(watch._read("/dev/zero")) == MAX_CONFIG_BYTES + 1  # an endless file: bounded too


def test_watch_names_a_taken_port(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["watch", write(tmp_path, TINY), "--port", str(port), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"--port: port {port} on 127.0.0.1 is taken" in err and "--port, or 0" in err, err


@pytest.mark.slow
def test_watch_rebuilds_a_drawing_pool_whose_worker_died(tmp_path, monkeypatch):
    import signal

    from lossbench import watch
    from lossbench.viz import draw

    monkeypatch.setattr(draw.os, "cpu_count", lambda: 2)
    config = write(tmp_path, TINY)
    real = watch.train_and_draw
    calls, states, said = [], [], []

    def train_and_draw(path, overrides, out, pool, state=None):
        if not calls:  # the first save: a worker is killed (as the OOM killer would) first
            os.kill(next(iter(pool._processes)), signal.SIGKILL)
            time.sleep(0.5)  # (only lets the pool notice sooner; the assertions do not depend on it)
        calls.append(pool)
        return real(path, overrides, out, pool, state)

    def changes(path):
        yield
        states.append(dict(vars(state_box[0])))
        raise KeyboardInterrupt

    state_box = []
    real_state = watch.State
    monkeypatch.setattr(watch, "State", lambda p: state_box.append(real_state(p)) or state_box[0])
    monkeypatch.setattr(watch, "train_and_draw", train_and_draw)
    monkeypatch.setattr(watch, "changes", changes)
    with pytest.raises(KeyboardInterrupt):
        watch.watch(config, [], str(tmp_path / "results"), echo=said.append)
    assert any("a drawing worker died" in s for s in said), said
    assert calls[-1] is not calls[0]  # a new pool drew
    assert states[0]["error"] is None and states[0]["figures"], states[0]["error"]


# ----- 5. one set of checks for every entry -------------------------------------------------------


@pytest.mark.parametrize(
    "change, argv_override, expect",
    [
        (lambda c: setattr(c.model, "width", 200_000), "model.width=200000", "model.width: must be"),
        (lambda c: setattr(c.model, "depth", -2), "model.depth=-2", "model.depth: must be >= 0"),
        (lambda c: setattr(c.loss, "name", "hubber"), "loss.name=hubber", "did you mean 'huber'"),
    ],
    ids=["width 200000", "depth -2", "unknown loss"],
)
def test_the_python_api_checks_a_changed_config_as_the_command_line_does(
    tmp_path, capsys, change, argv_override, expect
):
    import lossbench

    cfg = make_cfg()
    change(cfg)
    out = tmp_path / "results"
    with pytest.raises(UserError) as e:
        lossbench.run(cfg, out=str(out))
    assert main(["validate", write(tmp_path, TINY), argv_override]) == 2
    cli = capsys.readouterr().err
    line = [x for x in e.value.render().splitlines() if expect in x]
    assert line and line[0] in cli, (e.value.render(), cli)
    assert not out.exists()
    with pytest.raises(UserError):
        lossbench.run_many([make_cfg(), cfg], out=str(out))
    assert not out.exists()
    with pytest.raises(UserError):
        lossbench.init_model(cfg)


def test_the_python_api_checks_threads_and_workers_as_the_flags_are_checked(tmp_path, capsys):
    import lossbench

    with pytest.raises(UserError) as e:
        lossbench.run(make_cfg(), out=str(tmp_path / "r"), threads=100_000)
    with pytest.raises(SystemExit):
        main(["run", write(tmp_path, TINY), "--threads", "100000"])
    message = e.value.problems[0][1]
    assert message.startswith("must be an integer from 1 to") and message in capsys.readouterr().err
    with pytest.raises(UserError, match="workers: must be an integer from 1"):
        lossbench.run_many([make_cfg()], out=str(tmp_path / "r"), workers=0)
    assert not (tmp_path / "r").exists()


# ----- 6. seeds that mean what they say ---------------------------------------------------------------


def test_a_seed_the_generators_would_cut_to_32_bits_is_refused(tmp_path, capsys):
    import torch

    from lossbench.config.schema import SEED_MAX

    # (why: torch's CPU generator keeps 32 bits, so 2**32 + 7 would draw seed 7's numbers)
    a = torch.rand(3, generator=torch.Generator().manual_seed(2**32 + 7))
    assert torch.equal(a, torch.rand(3, generator=torch.Generator().manual_seed(7)))
    assert SEED_MAX + 7919 < 2**32  # every generator a run seeds (seed .. seed + 7919) stays distinct
    assert main(["validate", write(tmp_path, {**TINY, "seed": 2**32 + 7})]) == 2
    assert f"seed: must be >= 0 and <= {SEED_MAX}" in capsys.readouterr().err
    assert main(["validate", write(tmp_path, {**TINY, "seed": SEED_MAX})]) == 0


# ----- 7. errors that travel and print ------------------------------------------------------------------


@pytest.mark.slow
def test_user_errors_survive_pickling_and_a_process_pool():
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from lossbench.components.data import DataError
    from lossbench.runs.store import RunFolderError

    for error in [
        UserError([("a.b", "is wrong")], "cfg.yaml"),
        RunFolderError([("", "is damaged")], "results/x"),
        journal.RunBusy([("", "is busy")], "results/.x.lock"),
        DataError("cannot build", "data.n_samples"),
    ]:
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and back.render() == error.render() and str(back) == str(error)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        with pytest.raises(RunFolderError) as e:
            pool.submit(_raise_run_folder_error).result()
    assert e.value.render() == "results/x: 1 problem\n  view.npz: is damaged"


def _raise_run_folder_error():
    from lossbench.runs.store import RunFolderError

    raise RunFolderError([("view.npz", "is damaged")], "results/x")


@pytest.mark.slow
def test_plot_with_a_damaged_view_npz_names_the_file(tmp_path):
    _, _, folder = finished_run(tmp_path)
    open(os.path.join(folder, "view.npz"), "wb").write(b"PK\x03\x04 damaged")
    result = run_cli("plot", folder, "--out", tmp_path / "figures")
    assert result.returncode == 2, result.stderr
    assert "view.npz" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert "BrokenProcessPool" not in result.stderr


@pytest.mark.slow
def test_a_folder_name_the_terminal_cannot_encode_is_printed_escaped(tmp_path):
    config = write(tmp_path, TINY)
    env = {"PYTHONIOENCODING": "cp1252", "PYTHONUTF8": "0"}
    for _ in range(2):  # the first run, then the reuse: both print the folder
        result = run_cli("run", config, "--out", tmp_path / "結果", "--quiet", env=env)
        assert result.returncode == 0, result.stderr
        assert "\\u7d50\\u679c" in result.stdout and "Traceback" not in result.stderr
    assert is_finished(runs.run_dir(str(tmp_path / "結果"), make_cfg()), make_cfg())


def test_os_errors_name_the_operation_and_the_path():
    import errno

    from lossbench.errors import os_error_message

    full = OSError(errno.ENOSPC, "No space left on device", "results/x/model.pt")
    assert os_error_message(full, "run") == "cannot write results/x/model.pt: No space left on device"
    moved = OSError(errno.EXDEV, "Invalid cross-device link", "a", None, "b")
    assert os_error_message(moved, "run") == "cannot move a to b: Invalid cross-device link"
    bare = OSError(errno.EPIPE, "Broken pipe")
    assert (
        os_error_message(bare, "plot")
        == "cannot write or read (no path given; while running lossbench plot): Broken pipe"
    )


@pytest.mark.slow
def test_a_full_disk_in_report_names_the_file(tmp_path):
    import resource
    import signal

    from lossbench.runs.runner import execute

    _, folder, _ = execute(make_cfg(), str(tmp_path / "results"))
    out = str(tmp_path / "out")

    def run():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.RLIM_INFINITY))
        return main(["report", folder, "--out", out])

    code, err = fork_call(run)
    assert code == 2 and f"cannot write {out}" in err and "File too large" in err, err


def test_a_finished_run_on_a_read_only_mount_is_reused(tmp_path):
    """A teacher's shared results: reading them needs no write permission."""
    import tempfile

    shared = tempfile.mkdtemp(prefix="lossbench-ro-")  # outside tmp_path, whose parents only root enters
    try:
        os.chmod(shared, 0o755)
        config = os.path.join(shared, "tiny.yaml")
        open(config, "w").write(yaml.safe_dump(TINY))
        root = os.path.join(shared, "results")
        assert main(["run", config, "--out", root, "--quiet"]) == 0
        for d, _dirs, files in os.walk(root):
            for name in files:
                os.chmod(os.path.join(d, name), 0o444)
            os.chmod(d, 0o555)

        def as_a_student():
            if os.getuid() == 0:
                os.setgid(65534)
                os.setuid(65534)  # root writes anywhere: become nobody
            return main(["run", config, "--out", root, "--quiet"])

        code, err = fork_call(as_a_student)
        assert code == 0 and "cannot write" not in err, err
        code, err = fork_call(lambda: _force(config, root))
        assert code == 2 and "cannot write to" in err, err
    finally:
        for d, _dirs, _ in os.walk(shared):
            os.chmod(d, 0o755)
        import shutil

        shutil.rmtree(shared)


def _force(config: str, root: str) -> int:
    if os.getuid() == 0:
        os.setgid(65534)
        os.setuid(65534)
    return main(["run", config, "--out", root, "--quiet", "--force"])


@pytest.mark.slow
def test_two_targets_on_one_metric_are_two_report_columns(tmp_path):
    from lossbench.viz.report import write_report

    raw = {
        **TINY,
        "train": {
            **TINY["train"],
            "target": [{"metric": "loss", "value": 0.7}, {"metric": "loss", "value": 0.3}],
        },
    }
    config, root = write(tmp_path, raw), str(tmp_path / "results")
    assert main(["run", config, "--out", root, "--quiet"]) == 0
    page = open(write_report(root, str(tmp_path / "report"), quiet=True)).read()
    assert "steps to loss &lt;= 0.7" in page and "steps to loss &lt;= 0.3" in page


def test_plot_does_not_walk_a_link_out_of_its_folder(tmp_path, capsys):
    from lossbench.runs.runner import execute

    execute(make_cfg(), str(tmp_path / "elsewhere"))  # a run outside the folder plotted
    folder = tmp_path / "elsewhere" / "mine"
    folder.mkdir()
    os.symlink("..", folder / "up")
    assert main(["plot", str(folder), "--out", str(tmp_path / "figures")]) == 2
    assert "holds no run folder" in capsys.readouterr().err
    inside = tmp_path / "inside"
    execute(make_cfg(), str(inside / "runs"))
    os.symlink(inside / "runs", inside / "link")  # a link that stays inside is still followed
    assert main(["plot", str(inside), "--out", str(tmp_path / "figures2"), "--quiet"]) == 0


def test_export_twice_into_one_folder_does_not_double_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lossbench.runs.runner import execute

    execute(make_cfg(), str(tmp_path / "results"))
    out = str(tmp_path / "tb")
    for _ in range(2):
        assert main(["export", "tensorboard", str(tmp_path / "results"), "--out", out, "--quiet"]) == 0
    (folder,) = {os.path.dirname(os.path.join(out, f)) for f in files_under(out)}
    acc = EventAccumulator(folder)
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss")] == [0, 2, 4, 6, 8]


def test_a_huge_override_key_is_not_echoed_whole(tmp_path, capsys):
    key = "k" * 100_000
    assert main(["validate", write(tmp_path, TINY), f"{key}=1", f"model.depth={key}"]) == 2
    err = capsys.readouterr().err
    assert len(err) < 5000 and "(100000 characters in all)" in err, len(err)


def test_a_name_with_a_trailing_newline_is_refused(tmp_path, capsys):
    assert main(["validate", write(tmp_path, {**TINY, "name": "tiny\n"})]) == 2
    assert "name: must be 1-100 letters" in capsys.readouterr().err
    with pytest.raises(UserError):
        runs.check_name("tiny\n", "name", "config.yaml")


def test_keys_1_and_true_are_named_as_one_key_not_a_duplicate(tmp_path, capsys):
    assert main(["validate", write(tmp_path, "name: x\ndata: {1: a, true: b}\n")]) == 2
    err = capsys.readouterr().err
    assert "keys '1' (line 2) and 'true' are one key once read" in err and "duplicate" not in err, err


def test_a_recursive_alias_in_a_sweep_list_is_a_message(tmp_path, capsys):
    assert main(["validate", write(tmp_path, "name: x\nsweep:\n  model.depth: &a [1, *a]\n")]) == 2
    err = capsys.readouterr().err
    assert "contains itself" in err and "Circular" not in err, err


# ----- 4. sizes before lists ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sweep, flags, expect",
    [
        (
            {"seeds": 1_000_000_000},
            [],
            "the grid has 1000000000 runs (1000000000 seeds), more than lossbench runs at all",
        ),
        (
            {"model.width": list(range(1, 1001)), "train.epochs": list(range(1, 1001)), "seeds": 1_000_000},
            ["--allow-large"],
            "the grid has 1000000000000 runs (1000 x 1000 x 1000000 seeds), more than lossbench runs at all",
        ),
        ({"model.width": list(range(1, 101)), "seeds": 100}, [], "more than the limit of 5000; check it"),
    ],
    ids=["a billion seeds", "10^12 with --allow-large", "10^4 without"],
)
def test_a_grid_is_sized_from_its_counts_before_any_list_is_built(tmp_path, capsys, sweep, flags, expect):
    import tracemalloc

    config = write(tmp_path, {**TINY, "sweep": sweep})
    tracemalloc.start()
    assert main(["validate", config, *flags]) == 2
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert expect in capsys.readouterr().err
    assert peak < 50 * 2**20, peak  # (a list of a billion seeds alone is 8 GB of pointers)


def test_allow_large_runs_up_to_the_hard_ceiling(tmp_path, capsys):
    from lossbench.config.grid import HARD_LIMIT, SWEEP_LIMIT, expand

    raw = {**TINY, "sweep": {"seeds": SWEEP_LIMIT + 1}}
    with pytest.raises(UserError, match="pass --allow-large"):
        expand(raw)
    assert len(expand(raw, allow_large=True)) == SWEEP_LIMIT + 1
    with pytest.raises(UserError, match=f"more than lossbench runs at all \\({HARD_LIMIT}"):
        expand({**TINY, "sweep": {"seeds": HARD_LIMIT + 1}}, allow_large=True)


@pytest.mark.parametrize("command", ["run", "plot", "plot view.npz"])
@pytest.mark.slow
def test_a_fifo_in_a_run_folder_does_not_block(tmp_path, command):
    config, root, folder = finished_run(tmp_path)
    fifo = "view.npz" if command == "plot view.npz" else "summary.json"
    os.unlink(os.path.join(folder, fifo))
    os.mkfifo(os.path.join(folder, fifo))  # nothing will ever write to it
    if command == "run":
        result = run_cli("run", config, "--out", root, "--quiet", timeout=240)
        assert result.returncode == 0, result.stderr  # its config.yaml says it is lossbench's: redone
        assert "does not verify (summary.json is not a plain file); training it again" in result.stderr
        assert is_finished(folder, make_cfg())
    elif command == "plot view.npz":
        result = run_cli("plot", folder, "--out", tmp_path / "figures", timeout=240)
        assert result.returncode == 2 and "view.npz: is not a plain file" in result.stderr, result.stderr
    else:
        result = run_cli("plot", folder, "--out", tmp_path / "figures", timeout=240)
        assert result.returncode == 2 and "summary.json" in result.stderr and "plain file" in result.stderr, (
            result.stderr
        )
    assert "Traceback" not in result.stderr


# ----- 6. seeds (continued) --------------------------------------------------------------------------


def test_every_sweep_members_seed_is_in_range(tmp_path, capsys):
    from lossbench.config.schema import SEED_MAX

    raw = {**TINY, "seed": SEED_MAX - 1, "sweep": {"seeds": 3}}
    assert main(["validate", write(tmp_path, raw)]) == 2
    err = capsys.readouterr().err
    assert f"sweep.seeds: 3 seeds from seed {SEED_MAX - 1} reach {SEED_MAX + 1}, past the largest seed" in err
    assert main(["validate", write(tmp_path, {**raw, "sweep": {"seeds": 2}})]) == 0


def test_sweep_sweep_seeds_is_refused_for_its_own_reason(tmp_path, capsys):
    assert main(["validate", write(tmp_path, {**TINY, "sweep": {"sweep.seeds": [1, 2]}})]) == 2
    err = capsys.readouterr().err
    assert "sweep.sweep.seeds: a sweep cannot sweep its own block" in err and "name and folder" not in err, (
        err
    )


# ----- 8. runs where learners are --------------------------------------------------------------------

AS_MACOS = """
import multiprocessing
import sys
import types

multiprocessing.set_start_method("spawn", force=True)  # as on macOS and Windows
import lossbench.viz.draw
import lossbench.workers

lossbench.viz.draw.can_fork = lambda: False  # no forked drawing workers
lossbench.workers.sys = types.SimpleNamespace(platform="darwin")  # no prctl: the parent-watch thread
if __name__ == "__main__":
    from lossbench.cli import main

    sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_sweep_and_its_figures_work_with_the_spawn_start_method(tmp_path):
    """macOS and Windows start workers with `spawn` (a fresh interpreter that imports the main module),
    and lossbench forks nowhere there: the sweep's workers, their parent watch and the drawing."""
    script = tmp_path / "as_macos.py"
    script.write_text(AS_MACOS)
    raw = {**TINY, "model": {**TINY["model"], "activation": "tanh"}, "sweep": {"model.depth": [1, 2]}}
    config = write(tmp_path, raw)
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    spawned = str(tmp_path / "spawned")
    argv = [
        sys.executable,
        str(script),
        "run",
        config,
        "--out",
        spawned,
        "--workers",
        "2",
        "--no-batch",
        "--quiet",
    ]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0 and "2 runs" in result.stdout, result.stderr
    result = subprocess.run(
        [sys.executable, str(script), "plot", os.path.join(spawned, "tiny"), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert os.path.isfile(os.path.join(spawned, "tiny", "figures", "loss_curves.png"))
    # the same runs as on Linux's own start method, bit for bit
    assert (
        main(["run", config, "--out", str(tmp_path / "here"), "--workers", "1", "--no-batch", "--quiet"]) == 0
    )
    for folder in ("spawned", "here"):
        runs_found = sorted(f for f in files_under(str(tmp_path / folder)) if f.endswith("metrics.jsonl"))
        assert len(runs_found) == 2
    for name in sorted(f for f in files_under(spawned) if f.endswith("metrics.jsonl")):
        a = load_run(os.path.dirname(os.path.join(spawned, name))).metrics
        b = load_run(os.path.dirname(os.path.join(str(tmp_path / "here"), name))).metrics
        assert set(a) == set(b) and all((a[k] == b[k]).all() or k == "time" for k in a if k != "time")


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux's /proc to find the workers")
@pytest.mark.slow
def test_spawned_workers_without_prctl_end_with_their_killed_parent(tmp_path):
    """Where there is no parent-death signal (macOS, Windows), a thread in each worker watches its
    parent: a sweep's main process killed outright leaves no worker computing."""
    import signal

    from test_workers import _alive, _children

    script = tmp_path / "as_macos.py"
    script.write_text(AS_MACOS)
    raw = {**TINY, "train": {"steps": 10_000_000, "log_every": 50}, "sweep": {"model.depth": [1, 2]}}
    config, root = write(tmp_path, raw), str(tmp_path / "results")
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, str(script), "run", config, "--out", root, "--workers", "2", "--quiet"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 180
        while len([f for f in files_under(root) if f.endswith("metrics.jsonl")]) < 2:  # both train
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.05)
        workers = [w for w in _children(proc.pid) if _alive(w)]
        assert len(workers) >= 2
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        deadline = time.monotonic() + 60
        while any(_alive(w) for w in workers):  # the watching thread looks once a second
            assert time.monotonic() < deadline, f"workers left running: {[w for w in workers if _alive(w)]}"
            time.sleep(0.1)
    finally:
        proc.kill()
