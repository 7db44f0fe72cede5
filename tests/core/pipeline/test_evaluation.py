"""Weighted detection metrics equal metrics on the expanded (repeated-row) data."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

from logwarden.core.pipeline.evaluate import (
    Metrics,
    compute_metrics,
    format_metrics_table,
    hindsight_f1,
    template_breakdown,
)


def _random_case(seed: int = 7, n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.random(n) < 0.15
    # coarse scores so ties occur, correlated with the label
    scores = np.round(rng.random(n) * 0.6 + 0.4 * y_true, 1)
    y_pred = scores >= 0.5
    weights = rng.integers(0, 40, n)  # includes zero counts
    return y_true, y_pred, scores, weights


def test_weighted_metrics_equal_expanded_rows() -> None:
    y_true, y_pred, scores, weights = _random_case()
    weighted = compute_metrics(y_true, y_pred, scores, weights)

    rep = np.repeat(np.arange(len(y_true)), weights)
    expanded = compute_metrics(y_true[rep], y_pred[rep], scores[rep])
    for field in dataclasses.fields(Metrics):
        assert getattr(weighted, field.name) == pytest.approx(getattr(expanded, field.name), abs=1e-12), field.name

    # and against sklearn on the expanded rows, independently of our code
    t, p, s = y_true[rep], y_pred[rep], scores[rep]
    assert weighted.precision == pytest.approx(precision_score(t, p))
    assert weighted.recall == pytest.approx(recall_score(t, p))
    assert weighted.f1 == pytest.approx(f1_score(t, p))
    assert weighted.roc_auc == pytest.approx(roc_auc_score(t, s))
    assert weighted.pr_auc == pytest.approx(average_precision_score(t, s))
    assert weighted.tp + weighted.fp + weighted.tn + weighted.fn == weights.sum()
    assert weighted.n_anomalous == weights[y_true].sum()


def test_perfect_predictions() -> None:
    y = np.array([0, 0, 1, 1, 0])
    m = compute_metrics(y, y, np.array([0.1, 0.2, 0.9, 0.8, 0.3]), np.array([5, 1, 2, 3, 1]))
    assert (m.precision, m.recall, m.f1, m.roc_auc, m.pr_auc) == (1.0, 1.0, 1.0, 1.0, 1.0)
    assert (m.tp, m.fp, m.tn, m.fn) == (5.0, 0.0, 7.0, 0.0)
    assert (m.n_normal, m.n_anomalous) == (7.0, 5.0)


def test_all_wrong_predictions() -> None:
    y = np.array([0, 0, 1, 1])
    m = compute_metrics(y, 1 - y, np.array([0.9, 0.8, 0.1, 0.2]))
    assert (m.precision, m.recall, m.f1) == (0.0, 0.0, 0.0)
    assert m.roc_auc == 0.0
    assert (m.tp, m.fp, m.tn, m.fn) == (0.0, 2.0, 0.0, 2.0)
    assert m.fpr == 1.0


@pytest.mark.parametrize("label", [0, 1])
def test_single_class_gives_no_auc_and_no_exception(label: int) -> None:
    y = np.full(4, label)
    m = compute_metrics(y, np.zeros(4, dtype=bool), np.array([0.1, 0.5, 0.2, 0.9]))
    assert m.roc_auc is None and m.pr_auc is None
    assert (m.precision, m.f1) == (0.0, 0.0)
    assert m.recall == 0.0
    assert "n/a" in format_metrics_table(m, "one class")


def test_class_with_only_zero_weight_counts_as_absent() -> None:
    m = compute_metrics([0, 1, 0], [0, 1, 0], [0.1, 0.9, 0.2], weights=[3, 0, 2])
    assert m.roc_auc is None and m.n_anomalous == 0.0


def test_empty_input() -> None:
    m = compute_metrics(np.array([], dtype=bool), np.array([], dtype=bool), np.array([]))
    assert m.roc_auc is None and m.f1 == 0.0 and m.n_normal == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"y_true": [0, 2], "y_pred": [0, 1], "scores": [0.1, 0.2]}, "y_true"),
        ({"y_true": [0, 1], "y_pred": [0, 1], "scores": [0.1]}, "scores has 1"),
        ({"y_true": [0, 1], "y_pred": [0, 1], "scores": [0.1, np.nan]}, "finite"),
        ({"y_true": [0, 1], "y_pred": [0, 1], "scores": [0.1, 0.2], "weights": [1, -1]}, "non-negative"),
    ],
)
def test_bad_input_is_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_metrics(**kwargs)


def test_template_breakdown_sums_and_orders() -> None:
    items = [("b", 1.0), ("a", 2.0), ("c", 5.0), ("b", 3.0), ("a", 2.0), ("d", 0.5)]
    assert template_breakdown(items) == [("c", 5.0), ("a", 4.0), ("b", 4.0), ("d", 0.5)]
    assert template_breakdown(items, top=2) == [("c", 5.0), ("a", 4.0)]
    assert template_breakdown(iter(items), top=None)[-1] == ("d", 0.5)
    assert template_breakdown([]) == []


def test_format_metrics_table_shows_values_and_confusion_matrix() -> None:
    m = compute_metrics([0, 0, 1, 1], [0, 1, 1, 0], [0.1, 0.7, 0.8, 0.3], weights=[1000, 3, 7, 2.5])
    text = format_metrics_table(m, "HDFS test")
    assert text.splitlines()[0] == "HDFS test"
    assert f"{m.precision:.4f}" in text and f"{m.roc_auc:.4f}" in text
    assert "1,000" in text and "2.500" in text  # TN and fractional FN
    tn_row = next(line for line in text.splitlines() if "true normal" in line)
    assert tn_row.split()[-2:] == ["1,000", "3"]
    assert m.to_dict()["tn"] == 1000.0


def test_hindsight_f1_finds_the_best_cut_and_agrees_with_compute_metrics() -> None:
    y = [0, 1, 0, 1, 1, 0]
    scores = [0.1, 0.9, 0.8, 0.7, 0.2, 0.2]
    weights = [5.0, 1.0, 1.0, 2.0, 1.0, 3.0]
    f1, threshold = hindsight_f1(y, scores, weights)
    best = max(compute_metrics(y, [s > t for s in scores], scores, weights).f1 for t in [*sorted(set(scores)), -1.0])
    assert f1 == pytest.approx(best)
    assert compute_metrics(y, [s > threshold for s in scores], scores, weights).f1 == pytest.approx(f1)


def test_hindsight_f1_never_splits_tied_scores() -> None:
    # a normal and an anomalous session with the same score: flag both or neither
    f1, threshold = hindsight_f1([0, 1, 1], [0.5, 0.5, 0.1], [1.0, 1.0, 5.0])
    assert f1 == pytest.approx(12 / 13)
    assert threshold < 0.1
