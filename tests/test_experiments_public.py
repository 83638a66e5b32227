"""The experiments' small public surface, and the shared verdict helpers they judge with.

What is public: a name in `lossbench.__all__`, or a name in the `__all__` of a lossbench module or
subpackage (`lossbench.verdicts`, `lossbench.config`, `lossbench.viz`). Experiments use nothing else of lossbench,
so the package can be reorganised without breaking them; they draw through `lossbench.viz.new_figure`
(a Figure on the Agg canvas), never through pyplot's global state.
"""

from __future__ import annotations

import ast
import importlib
import math
from pathlib import Path

import pytest

import lossbench
from lossbench import verdicts as v

EXPERIMENTS = sorted((Path(__file__).resolve().parent.parent / "experiments").glob("*/experiment.py"))


def _public(module: str, name: str) -> bool:
    mod = importlib.import_module(module)
    return name in getattr(mod, "__all__", ())


def _lossbench_uses(tree: ast.AST) -> list[str]:
    """Every lossbench name an experiment uses that is not public (an empty list when all are)."""
    bad, aliases = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "lossbench":
                    aliases.add(a.asname or "lossbench")
                elif a.name.startswith("lossbench."):
                    bad.append(f"import {a.name}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lossbench"):
            for a in node.names:
                module = node.module
                if module == "lossbench" and a.name in ("config", "verdicts", "viz"):
                    continue  # a module with its own __all__
                if not _public(module, a.name):
                    bad.append(f"from {module} import {a.name}")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in aliases and node.attr not in lossbench.__all__:
                bad.append(f"lossbench.{node.attr}")
    return bad


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.parent.name)
def test_experiments_import_only_public_lossbench_names(path):
    tree = ast.parse(path.read_text())
    assert _lossbench_uses(tree) == []
    text = path.read_text()
    assert "pyplot" not in text and "matplotlib.use" not in text


def test_the_public_check_sees_a_private_import():
    tree = ast.parse("import lossbench\nfrom lossbench.verdicts import _all_numbers\nlossbench._hidden()\n")
    assert _lossbench_uses(tree) == ["from lossbench.verdicts import _all_numbers", "lossbench._hidden"]


def test_new_figure_is_not_pyplot_state(tmp_path):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    from lossbench.viz import new_figure, save_figure

    fig = new_figure(3, 2)
    fig.subplots().plot([0, 1], [1, 0])
    path = save_figure(fig, str(tmp_path / "sub" / "f.png"))
    assert Path(path).read_bytes()[:4] == b"\x89PNG"
    assert plt.get_fignums() == before


# ----- the verdict helpers --------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, float("nan"), math.inf, "3", True, [], [1.0, None], {"a": math.nan}])
def test_check_of_a_missing_or_non_finite_value_fails_not_measured(value):
    c = v.check("x", value, "1 +- 0.1", lambda x: True)
    assert c["verdict"] == "FAIL" and c["note"] == v.NOT_MEASURED


def test_check_passes_and_fails_on_its_predicate():
    assert v.check("x", 1.05, "1 +- 0.1", lambda x: abs(x - 1) <= 0.1)["verdict"] == "PASS"
    assert v.check("x", 1.2, "1 +- 0.1", lambda x: abs(x - 1) <= 0.1)["verdict"] == "FAIL"
    wrong_form = v.check("x", [1.0], "...", lambda x: x["key"] > 0)
    assert wrong_form["verdict"] == "FAIL" and "wrong form" in wrong_form["note"]


def test_majority_is_the_partial_rule():
    assert [v.majority(k, 5) for k in (5, 4, 3, 2, 0)] == ["PASS", "PARTIAL", "PARTIAL", "FAIL", "FAIL"]
    assert v.majority(1, 2) == "FAIL"  # half is not more than half
    assert v.majority(0, 0) == "FAIL"


def test_every_seed_spread_partial_and_strict():
    ok = lambda x: x < 1  # noqa: E731
    assert v.every_seed("s", [0.1, 0.2, 0.3], "< 1", ok)["verdict"] == "PASS"
    partial = v.every_seed("s", [0.1, 0.2, 3.0], "< 1", ok)
    assert partial["verdict"] == "PARTIAL" and partial["note"].startswith("2 of 3 seeds")
    assert v.every_seed("s", [0.1, 0.2, 3.0], "< 1", ok, strict=True)["verdict"] == "FAIL"
    assert v.every_seed("s", [0.1, 2.0, 3.0], "< 1", ok)["verdict"] == "FAIL"
    assert v.every_seed("s", [0.1, math.nan], "< 1", ok)["note"] == v.NOT_MEASURED
    assert v.every_seed("s", [1.0, 3.0], "< 1", lambda x: True)["measured"] == "1 .. 3 (mean 2)"


def test_expect_reads_each_form_of_expectation():
    cases = [
        ({"value": 22.0, "tol": 0.01}, 22.005, 22.02),
        ({"value": 10.0, "rel_tol": 0.01}, 10.09, 10.2),
        ({"range": [4.0, 6.0]}, 5.0, 6.5),
        ({"max": 0.1}, 0.1, 0.11),
        ({"min": 1.0}, 1.0, 0.99),
        ({"above": 0.0}, 1e-9, 0.0),
        ({"value": 0}, 0, 1),
        ({"value": [0.01, 0.03], "tol": 1e-4}, [0.01, 0.03], [0.01, 0.04]),
    ]
    for exp, good, bad in cases:
        text, ok = v.expect(exp)
        assert text and ok(good) and not ok(bad), exp
    with pytest.raises(ValueError):
        v.expect({"source": "nothing to compare with"})


def test_mean_sem_and_lookup():
    mean, sem = v.mean_sem([1.0, 2.0, 3.0])
    assert mean == 2.0 and sem == pytest.approx(1 / math.sqrt(3))
    assert v.mean_sem([1.0])[1] == math.inf
    assert v.lookup({"a": {"b": [1, 2]}}, "a", "b", 1) == 2
    assert v.lookup({"a": None}, "a", "b") is None and v.lookup({}, "x") is None


def test_seed_interval_is_scipys_t_interval_of_the_finite_values():
    import numpy as np
    from scipy import stats

    rng = np.random.default_rng(0)
    for n in (2, 3, 5, 10, 40):
        values = rng.normal(0.8, 0.1, n)
        mean, lo, hi, count = v.seed_interval(list(values))
        ref = stats.t.interval(0.95, n - 1, loc=values.mean(), scale=stats.sem(values))
        assert count == n and mean == pytest.approx(values.mean(), rel=1e-12)
        assert (lo, hi) == pytest.approx(ref, rel=1e-9)
    # a diverged seed (NaN, inf) is left out and not counted; one value gives no interval
    assert v.seed_interval([1.0, float("nan"), 3.0, float("inf")]) == pytest.approx(
        (2.0, *stats.t.interval(0.95, 1, loc=2.0, scale=stats.sem([1.0, 3.0])), 2)
    )
    one = v.seed_interval([0.5])
    assert one.mean == 0.5 and math.isnan(one.lo) and math.isnan(one.hi) and one.n == 1
    assert math.isnan(v.seed_interval([]).mean) and v.seed_interval([]).n == 0
    # columns of [n_seeds, n_steps], each with its own count, as the loss-curve bands use it
    table = np.array([[1.0, 2.0, np.nan], [3.0, np.nan, np.nan], [5.0, 7.0, 1.0]])
    mean, lo, hi, count = v.seed_interval(table)
    assert list(count) == [3, 2, 1] and list(mean) == [3.0, 4.5, 1.0]
    assert (lo[1], hi[1]) == pytest.approx(stats.t.interval(0.95, 1, loc=4.5, scale=stats.sem([2.0, 7.0])))
    assert np.isnan(lo[2]) and np.isnan(hi[2])


def test_against_reads_the_expectation_and_cites_its_source():
    exp = {"value": 3.0, "tol": 0.05, "source": "the median of [1, 2, 3, 4, 100]"}
    good, bad = v.against("c", 3.01, exp, "seed 0"), v.against("c", 3.2, exp)
    assert good["verdict"] == "PASS" and good["note"] == "seed 0; the median of [1, 2, 3, 4, 100]"
    assert bad["verdict"] == "FAIL" and v.against("c", None, exp)["note"] == v.NOT_MEASURED
