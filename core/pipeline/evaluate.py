"""Detection metrics over labelled sessions or events, with per-row weights (counts).

Weights are repeat counts: the HDFS benchmark collapses identical sessions into unique sequences
with a count, and every number here equals the one computed on the rows repeated that many times.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from logwarden.core.detect.detector import Detector
    from logwarden.core.records import LogRecord


@dataclass(frozen=True, slots=True)
class Metrics:
    """Threshold metrics, ranking metrics and the (weighted) confusion matrix; anomalous = positive.

    `roc_auc` and `pr_auc` (average precision) are None when only one class is present.
    """

    precision: float
    recall: float
    f1: float
    roc_auc: float | None
    pr_auc: float | None
    tp: float
    fp: float
    tn: float
    fn: float
    n_normal: float
    n_anomalous: float

    @property
    def fpr(self) -> float | None:
        """False-positive rate fp / (fp + tn); None without normal rows (there is no such rate)."""
        return None if self.fp + self.tn <= 0 else _ratio(self.fp, self.fp + self.tn)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the fields."""
        return asdict(self)


def validate_inputs(
    y_true: ArrayLike, scores: ArrayLike, weights: ArrayLike | None = None, y_pred: ArrayLike | None = None
) -> tuple[NDArray[np.bool_], NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_] | None]:
    """Check shapes and values; return (y_true bool, scores, weights, y_pred bool or None) as 1-D arrays."""
    truth = _as_labels(y_true, "y_true")
    n = truth.shape[0]
    score = np.asarray(scores, dtype=np.float64).reshape(-1)
    if score.shape[0] != n:
        raise ValueError(f"scores has {score.shape[0]} rows, y_true has {n}")
    if not np.all(np.isfinite(score)):
        raise ValueError("scores must be finite (no NaN or inf)")
    if weights is None:
        weight = np.ones(n, dtype=np.float64)
    else:
        weight = np.asarray(weights, dtype=np.float64).reshape(-1)
        if weight.shape[0] != n:
            raise ValueError(f"weights has {weight.shape[0]} rows, y_true has {n}")
        if not np.all(np.isfinite(weight)) or np.any(weight < 0):
            raise ValueError("weights must be finite and non-negative")
    pred = None
    if y_pred is not None:
        pred = _as_labels(y_pred, "y_pred")
        if pred.shape[0] != n:
            raise ValueError(f"y_pred has {pred.shape[0]} rows, y_true has {n}")
    return truth, score, weight, pred


def compute_metrics(
    y_true: ArrayLike, y_pred: ArrayLike, scores: ArrayLike, weights: ArrayLike | None = None
) -> Metrics:
    """Metrics of binary predictions `y_pred` and continuous `scores` (higher = more anomalous).

    Labels are 0/1 or bool with 1 = anomalous. Zero divisions give 0.0.
    """
    truth, score, weight, pred = validate_inputs(y_true, scores, weights, y_pred)
    assert pred is not None
    tp = float(weight[truth & pred].sum())
    fp = float(weight[~truth & pred].sum())
    tn = float(weight[~truth & ~pred].sum())
    fn = float(weight[truth & ~pred].sum())
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    roc_auc, pr_auc = ranking_metrics(truth, score, weight)
    return Metrics(
        precision=precision,
        recall=recall,
        f1=_ratio(2 * precision * recall, precision + recall),
        roc_auc=roc_auc,
        pr_auc=pr_auc,
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        n_normal=tn + fp,
        n_anomalous=tp + fn,
    )


def ranking_metrics(
    y_true: NDArray[np.bool_], scores: NDArray[np.float64], weights: NDArray[np.float64]
) -> tuple[float | None, float | None]:
    """Weighted (ROC-AUC, average precision), or (None, None) unless both classes have weight."""
    keep = weights > 0  # zero-weight rows do not exist in the expanded data
    truth, score, weight = y_true[keep], scores[keep], weights[keep]
    if not (truth.any() and (~truth).any()):
        return None, None
    from sklearn.metrics import average_precision_score, roc_auc_score  # deferred: a slow import

    roc = float(roc_auc_score(truth, score, sample_weight=weight))
    ap = float(average_precision_score(truth, score, sample_weight=weight))
    return roc, ap


def hindsight_f1(y_true: ArrayLike, scores: ArrayLike, weights: ArrayLike | None = None) -> tuple[float, float]:
    """The best F1 of any threshold on ``scores`` and that threshold (flag when score > threshold).

    A diagnostic, never a result: it picks the threshold with the test labels, so it shows the ceiling
    of a score, what no honestly calibrated threshold on the same score can beat.
    """
    truth, score, weight, _ = validate_inputs(y_true, scores, weights)
    order = np.argsort(-score, kind="stable")
    score, truth, weight = score[order], truth[order], weight[order]
    tp = np.cumsum(np.where(truth, weight, 0.0))
    fp = np.cumsum(np.where(truth, 0.0, weight))
    positives = tp[-1] if tp.size else 0.0
    last = np.r_[score[1:] != score[:-1], True]  # cut only between distinct scores
    if not positives or not last.any():
        return 0.0, float("inf")
    f1 = np.where(last, 2 * tp / (tp + fp + positives), -1.0)
    best = int(np.argmax(f1))
    threshold = float(score[best + 1]) if best + 1 < score.size else float(score[best]) - 1.0
    return float(f1[best]), threshold


def template_breakdown(items: Iterable[tuple[str, float]], top: int | None = 10) -> list[tuple[str, float]]:
    """Sum weights per template (or reason); the `top` heaviest, ties by name; `top=None` keeps all."""
    totals: dict[str, float] = {}
    for name, weight in items:
        totals[name] = totals.get(name, 0.0) + float(weight)
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    return ranked if top is None else ranked[: max(top, 0)]


def format_metrics_table(metrics: Metrics, title: str = "Evaluation") -> str:
    """Readable text block: the scores, then the confusion matrix as a 2x2 table."""
    m = metrics
    rows = [
        ("precision", _fmt(m.precision)),
        ("recall", _fmt(m.recall)),
        ("F1", _fmt(m.f1)),
        ("ROC-AUC", _fmt(m.roc_auc)),
        ("PR-AUC (AP)", _fmt(m.pr_auc)),
        ("false-positive rate", "n/a (no normal rows)" if m.fpr is None else f"{m.fpr:.4f}"),
        ("normal / anomalous", f"{format_count(m.n_normal)} / {format_count(m.n_anomalous)}"),
    ]
    cells = [["", "pred normal", "pred anomalous"]]
    cells.append(["true normal", format_count(m.tn), format_count(m.fp)])
    cells.append(["true anomalous", format_count(m.fn), format_count(m.tp)])
    widths = [max(len(row[i]) for row in cells) for i in range(3)]
    matrix = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in cells
    ]
    label_w = max(len(k) for k, _ in rows)
    lines = [title, "=" * len(title)]
    lines += [f"{k.ljust(label_w)}  {v}" for k, v in rows]
    lines += ["", "confusion matrix (TN FP / FN TP):", *("  " + line for line in matrix)]
    return "\n".join(lines)


def format_count(value: float) -> str:
    """A (weighted) count: whole numbers without decimals, fractional weights with three."""
    value = float(value)
    return f"{value:,.0f}" if value.is_integer() else f"{value:,.3f}"


def _as_labels(values: ArrayLike, name: str) -> NDArray[np.bool_]:
    arr = np.asarray(values).reshape(-1)
    if arr.dtype != np.bool_:
        if arr.size and not np.all(np.isin(arr, (0, 1))):
            raise ValueError(f"{name} must be 0/1 or bool")
        arr = arr.astype(bool)
    return arr


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else 0.0


def _fmt(value: float | None) -> str:
    return "n/a (one class)" if value is None else f"{value:.4f}"


@dataclass(frozen=True)
class Evaluation:
    """Session-level results of ``evaluate_sessions``: metrics, the per-session truth and scores, and what
    lay behind the errors (false positives by the template that made them anomalous, and by reason code;
    false negatives by their first templates)."""

    metrics: Metrics
    y_true: NDArray[np.bool_]
    scores: NDArray[np.float64]
    false_positives: list[tuple[str, float]]
    false_negatives: list[tuple[str, float]]
    false_positive_reasons: list[tuple[str, float]] = field(default_factory=list)


def evaluate_sessions(detector: Detector, records: Iterable[LogRecord], labels: Mapping[str, int]) -> Evaluation:
    """Score ``records`` by session and compare with ``labels`` (session key → 1/0), else per-line labels.

    Sessions with neither are left out; ``LogWardenError`` when no session is labelled.
    """
    from logwarden.core.errors import LogWardenError
    from logwarden.core.parsing.sessions import build_sessions
    from logwarden.core.pipeline.score import anomalous_template, score_sessions

    sessions = build_sessions([detector.parse(r) for r in records], detector.rule)
    y, pred, scores, fps, fns, fp_codes = [], [], [], [], [], []
    for session, verdict in score_sessions(detector, sessions):
        label = labels.get(session.key, session.label)
        if label is None:
            continue
        y.append(label)
        pred.append(int(verdict.anomalous))
        scores.append(verdict.score)
        if verdict.anomalous and not label:
            first = verdict.first_anomalous
            if first is not None:
                fps.append((anomalous_template(detector, session, verdict, first), 1.0))
            elif verdict.end is not None and verdict.end.anomalous:
                fps.append(("<end of session>", 1.0))
            else:
                fps.append(("<combination of templates>", 1.0))
            fp_codes.append((verdict.reason_code or "unknown", 1.0))
        elif label and not verdict.anomalous:
            fns.append((" → ".join(detector.template(e.key) for e in session.events[:3]) + " …", 1.0))
    if not y:
        raise LogWardenError("no labelled sessions: pass --labels, or use a format with per-line labels")
    metrics = compute_metrics(np.array(y), np.array(pred), np.array(scores))
    return Evaluation(
        metrics,
        np.array(y, dtype=bool),
        np.array(scores, dtype=np.float64),
        template_breakdown(fps),
        template_breakdown(fns),
        template_breakdown(fp_codes, top=None),
    )
