"""Judging helpers shared by every experiment: one check, every-seed spread, not measured, PARTIAL.

An experiment's `judge(measured)` compares what lossbench measured with an expectation stated with
its source and returns one dict per check, `{"check", "measured", "expected", "verdict", "note"}`.
These helpers build those dicts, so that three rules hold in every experiment alike:

- a value that is missing, not a number or not finite is a FAIL whose note says "not measured"
  (never a crash, never a pass): `not_measured`, and `check` / `every_seed` apply it themselves;
- PARTIAL means "more than half, but not all" (of the seeds, layer pairs, ...): `majority`;
- an expectation is a value with a tolerance, a bound or a range, written as a dict with its
  source (`{"value": 22.0, "tol": 0.01, "source": "the mean of [1, 2, 3, 4, 100]"}`): `expect`.

Nothing here imports torch or the rest of lossbench: judging is pure arithmetic on `measured`.
`seed_interval` is the one computation of "a mean over seeds and how sure it is" that the sweep
table, `sweep.csv`, the figures and the report all show.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

NOT_MEASURED = "not measured"
VERDICTS = ("PASS", "PARTIAL", "FAIL")

__all__ = [
    "NOT_MEASURED",
    "VERDICTS",
    "against",
    "check",
    "every_seed",
    "expect",
    "fmt",
    "is_number",
    "lookup",
    "majority",
    "mean_sem",
    "not_measured",
    "numbers",
    "seed_interval",
    "spread",
]


def is_number(value: Any) -> bool:
    """True for a finite int or float (a bool is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def numbers(values: Any) -> list[float] | None:
    """`values` as a list of floats when it is a non-empty list of finite numbers, else None."""
    if not isinstance(values, (list, tuple)) or not values or not all(is_number(v) for v in values):
        return None
    return [float(v) for v in values]


def lookup(measured: Any, *keys: Any) -> Any:
    """`measured[k1][k2]...`, or None when any level is missing or not a mapping/list."""
    for key in keys:
        try:
            measured = measured[key]
        except (KeyError, IndexError, TypeError):
            return None
    return measured


def majority(n_ok: int, n: int) -> str:
    """PASS when all `n` hold, PARTIAL when more than half do, FAIL otherwise (and when n is 0)."""
    if n > 0 and n_ok == n:
        return "PASS"
    return "PARTIAL" if 2 * n_ok > n else "FAIL"


def not_measured(name: str, expected: Any, why: str = NOT_MEASURED) -> dict:
    """The FAIL of a check whose measurement is missing (the run did not produce it)."""
    return {"check": name, "measured": None, "expected": expected, "verdict": "FAIL", "note": why}


def _all_numbers(value: Any) -> bool:
    if isinstance(value, dict):
        return bool(value) and all(_all_numbers(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return bool(value) and all(_all_numbers(v) for v in value)
    return is_number(value)


def check(
    name: str,
    value: Any,
    expected: Any,
    ok: Callable[[Any], bool] | bool,
    note: str = "",
    shown: Any = None,
) -> dict:
    """One check: PASS when `ok(value)` (or `ok` itself, a bool) holds, FAIL otherwise.

    `value` is a number, or a list or dict of numbers; any missing or non-finite number makes the
    check a FAIL "not measured" before `ok` is asked. `shown` is what the table prints as measured
    (default: `value`).
    """
    if not _all_numbers(value):
        return not_measured(name, expected)
    try:
        good = bool(ok(value)) if callable(ok) else bool(ok)
    except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError):
        return not_measured(name, expected, f"{NOT_MEASURED} (the measurement has the wrong form)")
    return {
        "check": name,
        "measured": value if shown is None else shown,
        "expected": expected,
        "verdict": "PASS" if good else "FAIL",
        "note": note,
    }


def expect(exp: dict) -> tuple[str, Callable[[float], bool]]:
    """(text, predicate) of an expectation dict: `value` with `tol` or `rel_tol`, `max`, `min`,
    `above` (strictly), `range` [lo, hi], or `value` alone (exact equality). A list `value` with
    `tol` is compared element by element."""
    if isinstance(exp.get("value"), (list, tuple)) and "tol" in exp:
        vs, tol = list(exp["value"]), exp["tol"]
        return (
            f"{[round(v, 6) for v in vs]} +- {tol:g}",
            lambda x: len(x) == len(vs) and all(abs(a - b) <= tol for a, b in zip(x, vs)),
        )
    if "value" in exp and "tol" in exp:
        v, tol = exp["value"], exp["tol"]
        return f"{v:g} +- {tol:g}", lambda x: abs(x - v) <= tol
    if "value" in exp and "rel_tol" in exp:
        v, rel = exp["value"], exp["rel_tol"]
        return f"{v:.4g} +- {rel * 100:g}%", lambda x: abs(x - v) <= rel * abs(v)
    if "range" in exp:
        lo, hi = exp["range"]
        return f"in [{lo:g}, {hi:g}]", lambda x: lo <= x <= hi
    if "max" in exp:
        return f"<= {exp['max']:g}", lambda x: x <= exp["max"]
    if "min" in exp:
        return f">= {exp['min']:g}", lambda x: x >= exp["min"]
    if "above" in exp:
        return f"> {exp['above']:g}", lambda x: x > exp["above"]
    if "value" in exp:
        return f"{exp['value']:g}", lambda x: x == exp["value"]
    raise ValueError(f"an expectation needs value/tol, rel_tol, range, max, min or above: {exp}")


def against(name: str, value: Any, exp: dict, note: str = "") -> dict:
    """One check of `value` against an EXPECTED entry (see `expect`), its source in the note."""
    expected, ok = expect(exp)
    return check(name, value, expected, ok, "; ".join(t for t in (note, exp.get("source", "")) if t))


def fmt(values: Any, digits: int = 3) -> str:
    """A list of numbers as "[a, b, c]" to `digits` significant digits."""
    return "[" + ", ".join(f"{float(v):.{digits}g}" for v in values) + "]"


def spread(values: list[float], digits: int = 4) -> str:
    """ "min .. max (mean m)" of the seeds' values."""
    mean = sum(values) / len(values)
    return f"{min(values):.{digits}g} .. {max(values):.{digits}g} (mean {mean:.{digits}g})"


def mean_sem(values: list[float]) -> tuple[float, float]:
    """The mean and its standard error (sample sd / sqrt(n)); the error is inf for one value."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.inf
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


INTERVAL = "95% Student-t interval of the mean over seeds"
"""What `seed_interval`'s lo and hi are, as tables and figures name them."""
ADD_SEEDS = "add seeds with `sweep: {seeds: N}` (e.g. 5)"
ONE_SEED = f"one seed: differences may be chance; {ADD_SEEDS}"
"""What a table or figure of single-seed configs says instead of an interval."""


class Interval(NamedTuple):
    """A mean over seeds, its interval's ends and the number of values behind it."""

    mean: Any  # a float, or an array for values [n_seeds, ...]
    lo: Any
    hi: Any
    n: Any  # how many finite values went in (per column)


def seed_interval(values: Any, level: float = 0.95) -> Interval:
    """The mean over seeds and its Student-t confidence interval, column by column.

    `values` [n_seeds] or [n_seeds, ...]; a NaN or infinite value (a diverged seed, a target never
    reached) is left out and `n` counts the values used. lo, hi = mean -+ t * sd / sqrt(n), with t
    the t distribution's (1 + level) / 2 quantile at n - 1 degrees of freedom and sd the sample
    standard deviation (n - 1 in the divisor): `scipy.stats.t.interval(level, n - 1, mean, sd /
    sqrt(n))`. Below two values lo and hi are NaN: one seed says nothing about the spread. The t
    interval assumes roughly normal seed-to-seed scatter; with 3 seeds it is wide (t = 4.3), which
    is the honest width.
    """
    import numpy as np
    from scipy.special import stdtrit  # the t quantile; scipy.stats costs ~0.5 s more to import

    a = np.asarray(values, dtype=float)
    a = np.where(np.isfinite(a), a, np.nan)
    n = np.isfinite(a).sum(0)
    with np.errstate(all="ignore"):
        mean = np.nansum(a, 0) / n
        sd = np.sqrt(np.nansum((a - mean) ** 2, 0) / (n - 1))
        half = np.where(n >= 2, stdtrit(np.maximum(n - 1, 1), (1 + level) / 2) * sd / np.sqrt(n), np.nan)
    if a.ndim == 1:
        return Interval(float(mean), float(mean - half), float(mean + half), int(n))
    return Interval(mean, mean - half, mean + half, n)


def every_seed(
    name: str,
    values: Any,
    expected: Any,
    ok: Callable[[float], bool],
    note: str = "",
    digits: int = 4,
    strict: bool = False,
) -> dict:
    """A check over seeds: PASS when `ok` holds on every seed, PARTIAL on more than half, else FAIL.

    `strict`: no PARTIAL, for a claim that must hold on every seed (a fit, an exact zero). The table
    shows the spread (min .. max, mean); the note says how many seeds held when not all.
    """
    vals = numbers(values)
    if vals is None:
        return not_measured(name, expected)
    good = [bool(ok(v)) for v in vals]
    verdict = majority(sum(good), len(good))
    if strict and verdict == "PARTIAL":
        verdict = "FAIL"
    if verdict != "PASS":
        note = f"{sum(good)} of {len(good)} seeds hold; {note}".rstrip("; ")
    return {
        "check": name,
        "measured": spread(vals, digits),
        "expected": expected,
        "verdict": verdict,
        "note": note,
    }
