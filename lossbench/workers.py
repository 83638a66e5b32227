"""Worker processes: the one pool of sweeps, `reproduce` and figure drawing, and their lifetime.

One policy for every worker, wherever it is used:
- it ends with its parent, however the parent ends: on Linux the kernel kills it when the parent
  dies (prctl's parent-death signal), elsewhere a thread watches the parent; so a parent killed
  outright (SIGKILL) leaves no worker computing, or writing run folders, behind it;
- it ignores the terminal's Ctrl-C (SIGINT goes to the whole process group): the parent decides;
- the parent stops it with SIGTERM, on Ctrl-C, SIGTERM or an error of its own (`pool` does it):
  a worker in the middle of a task stops it like Ctrl-C (a run in hand is marked interrupted),
  an idle one ends at once.

Imports nothing of lossbench, so any layer may use it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any

_busy = False  # whether this worker process is computing a task (see _on_sigterm)


@contextmanager
def pool(workers: int, method: str = "spawn") -> Iterator[ProcessPoolExecutor]:
    """A pool of `workers` processes started by `method` ("spawn", or "fork" where `fork` is safe).

    Submit with `submit`; when the block ends the pool is shut down, and when it ends by an
    exception (Ctrl-C included) every worker is first told to stop (SIGTERM) and waited for.
    """
    executor = start(workers, method)
    try:
        yield executor
    except BaseException:
        stop(executor)
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def start(workers: int, method: str = "spawn") -> ProcessPoolExecutor:
    """A lasting pool with the lifetime policy (watch's drawing workers); end it with `stop`."""
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context(method),
        initializer=_init_worker,
        initargs=(os.getpid(),),
    )


def stop(executor: ProcessPoolExecutor, grace: float = 10.0) -> None:
    """Tell every worker to stop (SIGTERM), cancel the queued tasks, and wait for the workers; one
    still alive after `grace` seconds is killed. (An idle worker ends at once, but may take the task
    queue's lock with it; a sibling that finished its task just as the signal came, then waits for
    that lock, would otherwise hold the parent's shutdown forever: `plot` hung so in a test.)"""
    import time

    processes = list((getattr(executor, "_processes", None) or {}).values())
    for process in processes:
        try:
            os.kill(process.pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(deadline - time.monotonic(), 0.0))
        if process.is_alive():
            process.kill()
            process.join()
    executor.shutdown(wait=True, cancel_futures=True)


def submit(executor: ProcessPoolExecutor, fn: Callable, *args: Any) -> Future:
    """`fn(*args)` in a worker, under the policy: an interrupt ends the worker instead of leaving
    it to take more work. `fn` must be a module-level function (it is sent by name)."""
    return executor.submit(_task, fn, *args)


def finished(futures: dict) -> Iterator[tuple[Any, Future]]:
    """(key, future) for each of `futures` ({future: key}) as it finishes."""
    for future in as_completed(futures):
        yield futures[future], future


def _task(fn: Callable, *args: Any) -> Any:
    global _busy
    _busy = True
    try:
        return fn(*args)
    except KeyboardInterrupt:
        os._exit(130)
    finally:
        _busy = False


def _init_worker(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    else:
        import threading
        import time

        def watch():
            while os.getppid() == parent:
                time.sleep(1)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # the parent died before the signal was set
        os._exit(1)


def _on_sigterm(signum, frame) -> None:
    """Stop the task in hand like Ctrl-C (its runs are marked interrupted), once; idle: end now."""
    if not _busy:
        os._exit(0)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt
