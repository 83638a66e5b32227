"""The sweep table answers with its uncertainty: each cell is the mean over a grid point's seeds with
the 95% Student-t interval scipy computes from the recorded values, steps to every target with how
many seeds reached it, and the answer in words follows from the intervals."""

from __future__ import annotations

import csv
import io
import math

import pytest
from scipy import stats

from lossbench.runs.table import Cell, answer, csv_text, format_table, table
from lossbench.verdicts import ONE_SEED

ACC = {"sigmoid": [0.61, 0.55, 0.70], "tanh": [0.97, 0.99, 0.98], "relu": [0.96, 0.99, None]}
STEPS = {"sigmoid": [None, None, None], "tanh": [30, 20, 40], "relu": [20, 10, None]}


def t_interval(values):
    return stats.t.interval(0.95, len(values) - 1, loc=sum(values) / len(values), scale=stats.sem(values))


def sweep(acc=ACC, steps=STEPS, losses=("bce",)):
    """Resolved configs and summaries of activations x losses x seeds (relu seed 2 diverged)."""
    resolved, summaries = [], []
    for loss in losses:
        for act in acc:
            for seed, (a, s) in enumerate(zip(acc[act], steps[act])):
                resolved.append({"seed": seed, "model": {"activation": act}, "loss": {"name": loss}})
                summary = {"status": "diverged" if a is None else "finished", "task": "binary"}
                if a is not None:
                    summary.update(final_val_loss=1 - a, final_val_acc=a, final_val_nll=2 * (1 - a))
                summary["targets"] = [{"metric": "val_acc", "value": 0.9, "steps_to": s, "seconds_to": s}]
                summaries.append(summary)
    return resolved, summaries


def column(header, rows, name):
    return [row[header.index(name)] for row in rows]


def test_cells_are_scipys_t_interval_of_the_recorded_values():
    header, rows = table(*sweep(), ["model.activation", "seed"])
    assert header[:3] == ["model.activation", "seeds", "diverged"]
    assert column(header, rows, "model.activation") == ["sigmoid", "tanh", "relu"]  # grid order
    assert column(header, rows, "seeds") == [3, 3, 3] and column(header, rows, "diverged") == [0, 0, 1]
    for act, cell in zip(ACC, column(header, rows, "val_acc")):
        values = [a for a in ACC[act] if a is not None]  # a diverged seed has no final metric
        assert cell.interval.n == len(values) and cell.n_seeds == 3
        assert cell.interval.mean == pytest.approx(sum(values) / len(values))
        assert (cell.interval.lo, cell.interval.hi) == pytest.approx(t_interval(values))
    steps = column(header, rows, "steps to val_acc>=0.9")
    assert [str(c).split(" (")[-1] for c in steps] == ["0/3)", "3/3)", "2/3)"]  # seeds that reached it
    assert (steps[1].interval.lo, steps[1].interval.hi) == pytest.approx(t_interval([30, 20, 40]))
    assert "val_nll" not in header  # one loss: its own val_loss compares


def test_members_of_different_losses_get_the_shared_metric_not_their_losses():
    header, _ = table(*sweep(losses=("bce", "mse")), ["loss.name", "model.activation", "seed"])
    assert "val_nll" in header and "val_acc" in header and "val_loss" not in header


def test_the_csv_holds_mean_interval_and_count_of_each_result():
    header, rows = table(*sweep(), ["model.activation", "seed"])
    read = list(csv.DictReader(io.StringIO(csv_text(header, rows))))
    tanh = read[1]
    lo, hi = t_interval(ACC["tanh"])
    assert float(tanh["val_acc"]) == pytest.approx(0.98) and tanh["val_acc_n"] == "3"
    assert (float(tanh["val_acc_lo95"]), float(tanh["val_acc_hi95"])) == pytest.approx((lo, hi))
    assert read[0]["steps to val_acc>=0.9"] == "" and read[0]["steps to val_acc>=0.9_n"] == "0"
    assert read[2]["steps to val_acc>=0.9_n"] == "2"


def test_the_answer_names_the_best_point_and_those_it_cannot_be_told_apart_from():
    header, rows = table(*sweep(), ["model.activation", "seed"])
    text = " ".join(line.strip() for line in answer(header, rows, n_keys=1))
    # tanh ends best (0.98); relu's two finished seeds give an interval that overlaps it; sigmoid's not
    best = column(header, rows, "val_acc")
    assert best[2].interval.lo < best[1].interval.hi and best[0].interval.hi < best[1].interval.lo
    assert "ends best on val_acc: activation=tanh at 0.980 +-0.025" in text
    assert "not told apart from it: activation=relu (2/3)" in text  # 2 of its 3 seeds have a value
    # the fastest among the points where every seed reached the target; sigmoid never did
    assert "reaches val_acc>=0.9 fastest: activation=tanh at 30 +-25 (3/3)" in text
    assert "no seed at activation=sigmoid" in text
    assert "95% Student-t interval" in text and "3 seeds" in text
    assert all(len(line) <= 100 for line in answer(header, rows, n_keys=1))


def test_overlapping_intervals_are_not_told_apart():
    acc = {"a": [0.90, 0.92, 0.94], "b": [0.89, 0.93, 0.91], "c": [0.50, 0.52, 0.51]}
    steps = {k: [10, 10, 10] for k in acc}
    header, rows = table(*sweep(acc, steps), ["model.activation", "seed"])
    text = " ".join(line.strip() for line in answer(header, rows, n_keys=1))
    assert "ends best on val_acc: activation=a" in text and "not told apart from it: activation=b" in text
    assert "activation=c" not in text.split("reaches")[0]


def test_one_seed_says_it_may_be_chance_and_how_to_add_seeds():
    acc = {"a": [0.9], "b": [0.8]}
    header, rows = table(*sweep(acc, {"a": [10], "b": [20]}), ["model.activation", "seed"])
    assert str(column(header, rows, "val_acc")[0]) == "0.9"  # no interval from one value
    assert math.isnan(column(header, rows, "val_acc")[0].interval.lo)
    lines = [line.strip() for line in answer(header, rows, n_keys=1)]
    assert "ends best on val_acc: activation=a at 0.9" in " ".join(lines)
    assert "not told apart" not in " ".join(lines)
    assert " ".join(lines).endswith(ONE_SEED.split("(")[-1]) and "sweep: {seeds: N}" in " ".join(lines)


def test_the_printed_table_fits_100_columns():
    header, rows = table(*sweep(losses=("bce", "mse", "hinge")), ["loss.name", "model.activation", "seed"])
    text = format_table(header, rows)
    assert all(len(line) <= 100 for line in text.splitlines())
    assert isinstance(rows[0][-1], Cell) and "+-" in text


def test_a_sweep_of_seeds_alone_is_one_row_with_its_interval_named():
    acc = {"a": [0.90, 0.92, 0.97]}
    header, rows = table(*sweep(acc, {"a": [10, 20, 30]}), ["seed"])
    assert header[:1] == ["seeds"] and len(rows) == 1
    (line,) = answer(header, rows, n_keys=0)
    assert "95% Student-t interval" in line and "3 seeds" in line


def test_training_accuracy_counts_upward_too():
    """`train_acc` is an accuracy like `val_acc`: the point that ends best is the one with the
    highest (a user saw 'ends best on train_acc' name the lowest of 0.088, 0.142 and 0.41)."""
    from lossbench.config.schema import higher_is_better

    assert higher_is_better("train_acc") and higher_is_better("val_acc") and higher_is_better("acc")
    assert not any(map(higher_is_better, ["loss", "val_loss", "train_mse", "val_nll", "mae"]))


def test_equal_best_values_are_named_as_a_tie():
    acc = {"a": [0.98], "b": [0.96], "c": [0.98]}
    header, rows = table(*sweep(acc, {k: [10] for k in acc}), ["model.activation", "seed"])
    text = " ".join(line.strip() for line in answer(header, rows, n_keys=1))
    assert "ends best on val_acc: activation=a and activation=c at 0.98 (a tie)" in text


def test_an_interrupted_run_is_counted_but_never_averaged():
    """A run stopped with Ctrl-C keeps its last values in its summary; they are no result."""
    resolved, summaries = sweep(
        {"a": [0.9, 0.92, 0.3], "b": [0.8, 0.82, 0.81]}, {"a": [10] * 3, "b": [10] * 3}
    )
    summaries[2]["status"] = "interrupted"  # a's third seed: 0.3 when it was stopped
    header, rows = table(resolved, summaries, ["model.activation", "seed"])
    assert header[:3] == ["model.activation", "seeds", "interrupted"]
    cell = column(header, rows, "val_acc")[0]
    assert (rows[0][1], rows[0][2], cell.interval.n) == (3, 1, 2)
    assert cell.interval.mean == pytest.approx(0.91)
