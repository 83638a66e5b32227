"""Progress on a terminal: a tqdm bar on stderr for anything slower than about a second.

Quiet (the bar is disabled, nothing is written) when stderr is not a terminal, so logs, pipes
and tests stay clean, or when the command was given `--quiet`. Imports nothing of lossbench, so
every layer may use it.
"""

from __future__ import annotations

import sys
from collections.abc import Sized
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # tqdm loads when a bar is made
    from tqdm import tqdm


def wanted(quiet: bool = False) -> bool:
    """True when a bar should be drawn: not `quiet`, and stderr is a terminal."""
    return not quiet and sys.stderr.isatty()


def bar(total: int | None, desc: str, unit: str, enabled: bool = True, items: Any = None) -> tqdm:
    """A tqdm bar (disabled unless `enabled` and stderr is a terminal); cleared when closed.

    Given `items`, iterating over the bar yields them, advancing it once per item.
    """
    from tqdm import tqdm

    return tqdm(
        items,
        total=total,
        desc=desc,
        unit=unit,
        leave=False,
        mininterval=0.2,
        dynamic_ncols=True,
        disable=not wanted(not enabled),
    )


def iterate(items: Sized, desc: str, unit: str, enabled: bool = True) -> tqdm:
    """`items`, one by one, with a bar counting them (see `bar`)."""
    return bar(len(items), desc, unit, enabled, items)
