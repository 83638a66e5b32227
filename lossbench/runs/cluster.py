"""A sweep's tasks on a Ray cluster (`--backend ray`): each task is `members.run_group`."""

from __future__ import annotations

import os
from typing import Any

from ..errors import UserError
from .members import failed, run_group


def compute(groups: list, root: str, workers: int, address: str | None, bar: Any) -> list:
    """Run every group as a Ray task (a local cluster of `workers` CPUs, or the one at `address`);
    [(group, records)] in completion order, as `sweep._compute` returns them."""
    try:
        import ray
    except ImportError:
        raise UserError(
            [("--backend", "ray is not installed: pip install 'lossbench[ray]', or use --backend local")],
            "sweep",
        ) from None
    started = not ray.is_initialized()
    if started:
        if address:
            _connect_ray(ray, address)
        else:
            package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            pythonpath = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
            ray.init(
                num_cpus=max(1, workers),
                include_dashboard=False,
                log_to_driver=False,
                runtime_env={"env_vars": {"PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1"}},
            )
    done = []
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(run_group)
        refs = {task.remote(g, root, 1): g for g in groups}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                g = refs[ref]
                try:
                    records = ray.get(ref)
                except Exception as e:
                    records = [failed(c, root, f"ray task failed: {type(e).__name__}: {e}") for c in g]
                done.append((g, records))
                bar.update(len(g))
    finally:
        if started:
            ray.shutdown()
    return done


RAY_CONNECT_TIMEOUT = 60.0  # seconds: a cluster answers in a few; past this, nothing will


def _connect_ray(ray, address: str) -> None:
    """`ray.init(address=...)` that fails with a message instead of waiting without end.

    First a plain TCP connection to HOST:PORT (10 s), so an address where nothing listens is
    refused at once; then ray.init itself in a thread, given RAY_CONNECT_TIMEOUT seconds.
    """
    import socket
    import threading

    problem = None
    if address != "auto":
        host, _, port = address.removeprefix("ray://").rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
        except OSError as e:
            problem = f"nothing answers at {address} ({e.strerror or e}); is the cluster started? "
        except ValueError:
            problem = f"{address} does not end in a port number; "
    if problem is None:
        outcome: list = []

        def connect():
            try:
                ray.init(address=address, log_to_driver=False)
                outcome.append(None)
            except Exception as e:  # noqa: BLE001 (shown to the user)
                outcome.append(e)

        thread = threading.Thread(target=connect, daemon=True)
        thread.start()
        thread.join(RAY_CONNECT_TIMEOUT)
        if not outcome:
            problem = f"no Ray cluster answered at {address} within {RAY_CONNECT_TIMEOUT:.0f} s; "
        elif outcome[0] is not None:
            problem = f"cannot join the Ray cluster at {address}: {outcome[0]}; "
    if problem:
        raise UserError(
            [("--address", problem + "`ray start --head` prints the address to give (HOST:6379)")], "sweep"
        )
