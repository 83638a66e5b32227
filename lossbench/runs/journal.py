"""Journals: how lossbench knows which files are its own, and which writer owns a run folder.

A journal is a small hidden file that a writer creates in a folder *before* it creates anything
there, and keeps locked (`flock`) for as long as it lives. Its first line says that lossbench wrote
it and which process; each later line records one thing the writer made or moved, written before
the writer does it:

    {"journal": "lossbench", "pid": 4121, "host": "lab-07"}
    {"made": ".tmp-4121-k2x9"}
    {"moved": ".a1b2c3.old-4121", "from": "a1b2c3"}

The kernel drops the lock when the writer ends, however it ends (a SIGKILL too), so a journal whose
lock can be taken belongs to a writer that is gone, and exactly the paths it lists are its
leftovers: `clean(folder)` removes what it made and puts back what it moved, then the journal. A
file is never removed for its name alone: a user's `.photos.new-123/` or `.tmp-9-draft.txt` is
not in any journal, so it stays.

Two kinds: `atomic_write` keeps one for a temporary file (`.lossbench-<pid>-<random>.journal`), and a
run folder's writer holds `.<run_id>.lock` beside the folder, which is also the folder's lock: a
second writer of the same run finds it locked and stops with `RunBusy` naming the owner.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import stat
import sys
from types import ModuleType

from ..errors import UserError

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # Windows: no advisory locks here (docs/reliability.md says what that leaves out)
    fcntl = None

MAGIC = "lossbench"
MAX_JOURNAL_BYTES = 1 << 16  # a journal lists a handful of names; a bigger file is not ours
# never through a symbolic link, never blocking on a FIFO (O_NOFOLLOW is POSIX; Windows has no links to follow)
SAFE_OPEN = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_held: dict[str, tuple[Journal, int]] = {}  # run locks this process holds: path -> (journal, count)
_reported: set[str] = set()  # other hosts' journals already reported by this process


class RunBusy(UserError):
    """The run's lock cannot be taken: a live process holds it, or its path holds something that
    lossbench will not write through (a link, a folder, another machine's journal)."""


def _plain_name(name) -> bool:
    """A name inside the journal's own folder: no separator, not `.` or `..`."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and os.sep not in name


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def _open_safely(path: str, flags: int) -> int:
    """An fd of the regular, singly linked file at `path` (never a link followed), or RunBusy naming it.

    A lock's name is predictable (the run id is a hash of the config), so a symbolic or hard link
    planted there would make lossbench truncate a file outside the results folder.
    """
    try:
        fd = os.open(path, flags | SAFE_OPEN, 0o666)
    except (FileExistsError, FileNotFoundError):
        raise
    except OSError as e:
        what = (
            "a symbolic link" if os.path.islink(path) else "a folder" if os.path.isdir(path) else "unusable"
        )
        raise RunBusy([("", f"is {what} ({e.strerror}), not a lock lossbench made; {MOVE}")], path) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        what = "not a plain file" if not stat.S_ISREG(info.st_mode) else f"a file with {info.st_nlink} links"
        raise RunBusy([("", f"is {what}, not a lock lossbench made; {MOVE}")], path)
    return fd


MOVE = "lossbench does not write through it: move it away and run again"


class Journal:
    """A locked journal file in `folder`; raises RunBusy when a live writer holds `name`'s lock."""

    def __init__(self, folder: str, name: str | None = None, what: str = "this folder"):
        self.folder = folder
        self.name = name or f".lossbench-{os.getpid()}-{secrets.token_hex(4)}.journal"
        self.path = os.path.join(folder, self.name)
        while True:  # until the file we locked is the one at our path
            flags = os.O_RDWR | os.O_CREAT | (0 if name else os.O_EXCL)
            fd = _open_safely(self.path, flags)
            if _try_lock(fd):
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    break
                os.close(fd)
                continue
            owner = _owner(os.read(fd, MAX_JOURNAL_BYTES))
            os.close(fd)
            raise RunBusy(
                [
                    (
                        "",
                        f"another lossbench process{owner} is writing {what} right now; "
                        "wait for it to end, then run again (a run it finishes is reused)",
                    )
                ],
                self.path,
            )
        self.fd: int | None = fd
        data = os.read(fd, MAX_JOURNAL_BYTES)
        if data:
            try:
                _undo(folder, _own_records(data, self.path))  # a writer that is gone: undo what it left
            except RunBusy:
                os.close(fd)  # another machine's or not ours: kept as it is
                self.fd = None
                raise
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        self._write({"journal": MAGIC, "pid": os.getpid(), "host": socket.gethostname()})

    def _write(self, record: dict) -> None:
        assert self.fd is not None, "a closed journal records nothing"
        os.write(self.fd, (json.dumps(record) + "\n").encode())

    def made(self, name: str) -> None:
        """Record that `name` (in the journal's folder) is about to be created by this writer."""
        self._write({"made": name})

    def moved(self, name: str, origin: str) -> None:
        """Record that `origin` is about to be renamed to `name` (put back if the writer dies)."""
        self._write({"moved": name, "from": origin})

    def close(self) -> None:
        """Remove the journal: what it listed is now either finished work or already removed.

        Removed while still locked (POSIX), so no other writer can lock the file being removed;
        Windows cannot remove an open file, so there it is closed first.
        """
        if self.fd is None:
            return
        if fcntl is None:
            os.close(self.fd)
        try:
            os.unlink(self.path)
        except OSError:
            pass
        if fcntl is not None:
            os.close(self.fd)
        self.fd = None


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock of `fd` without waiting; False when a live process holds it.

    Without fcntl (Windows) there is no lock to take: see docs/reliability.md for what that leaves out.
    """
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _owner(data: bytes) -> str:
    head = _head(data)
    try:
        return f" (pid {int(head['pid'])} on {head['host']})"
    except (ValueError, TypeError, KeyError):
        return ""


def _head(data: bytes) -> dict:
    try:
        head = json.loads(data.split(b"\n", 1)[0])
    except ValueError:
        return {}
    return head if isinstance(head, dict) and head.get("journal") == MAGIC else {}


def _records(data: bytes) -> list[dict]:
    """The records after a journal's head line; a record cut short by a kill ends them."""
    records = []
    for line in data.split(b"\n")[1:]:
        try:
            record = json.loads(line)
        except ValueError:
            break  # a record cut short by a kill: its action was never started
        if isinstance(record, dict):
            records.append(record)
    return records


def _own_records(data: bytes, path: str) -> list[dict]:
    """The records of a gone writer's journal written on this machine, else RunBusy naming `path`.

    Another machine's (or container's) journal is kept and reported, never undone: its lock may not
    reach across machines, so lossbench cannot tell from here whether that writer still runs.
    """
    head = _head(data)
    if not head:
        if len(data.strip()) == 0 or data.startswith(b'{"journal": "lossbench"'):
            return []  # killed between creating the lock and its first line complete
        raise RunBusy([("", f"is not a journal lossbench wrote; {MOVE}")], path)
    if head.get("host") == socket.gethostname():
        return _records(data)
    raise RunBusy([("", foreign_message(head, _records(data)))], path)


def foreign_message(head: dict, records: list[dict]) -> str:
    """What to do about a journal that another machine's lossbench left, listing its leftovers."""
    left = [
        f"{r['made']} (made there: delete it)"
        if _plain_name(r.get("made"))
        else f"{r['moved']} (moved from {r['from']}: rename it back if {r['from']} is missing, else delete it)"
        for r in records
        if _plain_name(r.get("made")) or (_plain_name(r.get("moved")) and _plain_name(r.get("from")))
    ]
    listed = f"; it lists {', '.join(left)}" if left else ""
    return (
        f"was written by lossbench (pid {head.get('pid')}) on another machine or container, "
        f"{str(head.get('host'))[:100]!r}; lossbench cannot tell from here whether that writer still runs, "
        f"so it is kept{listed}. When that writer is gone, delete this file (and the leftovers) and run again"
    )


def _undo(folder: str, records: list[dict]) -> None:
    """Undo a gone writer's records, newest first: delete what it made, put back what it moved."""
    for record in reversed(records):
        try:
            if _plain_name(record.get("made")):
                _remove(os.path.join(folder, record["made"]))
            elif _plain_name(record.get("moved")) and _plain_name(record.get("from")):
                moved, origin = (os.path.join(folder, record[k]) for k in ("moved", "from"))
                if os.path.lexists(moved):
                    if os.path.lexists(origin):
                        _remove(moved)  # the swap had finished: this is the replaced old copy
                    else:
                        os.rename(moved, origin)
        except OSError:
            pass  # read-only, or another cleaner was first


def clean(folder: str) -> None:
    """Remove the leftovers of gone lossbench writers in `folder`, as their journals list them.

    A journal is recognised by its content (the lossbench header, this machine's name), never by its
    name alone, and only one whose lock can be taken (its writer is gone) is undone. Another
    machine's journal is kept and reported once per process on stderr.
    """
    try:
        names = [n for n in os.listdir(folder) if n.startswith(".") and n.endswith((".journal", ".lock"))]
    except OSError:
        return
    for name in names:
        path = os.path.join(folder, name)
        if os.path.abspath(path) in _held:
            continue
        try:
            info = os.lstat(path)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_JOURNAL_BYTES or info.st_nlink != 1:
                continue
            fd = os.open(path, os.O_RDWR | SAFE_OPEN)
        except OSError:
            continue
        try:
            if not _try_lock(fd) or os.fstat(fd).st_ino != os.stat(path).st_ino:
                continue
            data = os.read(fd, MAX_JOURNAL_BYTES)
            head = _head(data)
            if not head:
                continue  # a user's file that happens to end in .lock: not touched
            if head.get("host") != socket.gethostname():
                if path not in _reported:
                    _reported.add(path)
                    print(f"lossbench: note: {path} {foreign_message(head, _records(data))}", file=sys.stderr)
                continue
            _undo(folder, _records(data))
            os.unlink(path)
        except OSError:
            pass
        finally:
            os.close(fd)


def hold(folder: str) -> Journal:
    """Take the lock of run folder `folder` (`.<run_id>.lock` beside it), or raise RunBusy.

    Re-entrant within a process: a sweep worker locks a whole stack's members, then each member's
    writer takes the same lock again; `release` is called once per `hold`.
    """
    parent, name = os.path.split(os.path.abspath(folder))
    path = os.path.join(parent, f".{name}.lock")
    if path in _held:
        journal, count = _held[path]
        _held[path] = (journal, count + 1)
        return journal
    journal = Journal(parent, f".{name}.lock", what=f"run {name}")
    _held[path] = (journal, 1)
    return journal


def release(journal: Journal) -> None:
    journal_path = journal.path
    held = _held.get(journal_path)
    if held is None:
        return
    if held[1] > 1:
        _held[journal_path] = (journal, held[1] - 1)
        return
    del _held[journal_path]
    journal.close()
