"""Evaluation report: score/ROC/PR plots, report.json, and one self-contained, mailable report.html."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from sklearn.metrics import precision_recall_curve, roc_curve

from logwarden.core.pipeline.evaluate import Metrics, format_count, validate_inputs

NORMAL_COLOR = "#1f77b4"
ANOMALY_COLOR = "#d62728"


def write_report(
    out_dir: Path,
    *,
    title: str,
    metrics: Metrics,
    y_true: ArrayLike,
    scores: ArrayLike,
    weights: ArrayLike | None = None,
    threshold: float | None,
    false_positive_templates: list[tuple[str, float]],
    false_negative_templates: list[tuple[str, float]],
    extra: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write plots, report.json and report.html into `out_dir`; return {name: path} of what was written.

    Names: score_distribution, roc, pr (the curves only when both classes are present), json, html.
    """
    if threshold is not None and not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite or None, got {threshold}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    truth, score, weight, _ = validate_inputs(y_true, scores, weights)
    keep = weight > 0
    truth, score, weight = truth[keep], score[keep], weight[keep]
    both_classes = bool(truth.any() and (~truth).any())

    paths: dict[str, Path] = {}
    figures = {"score_distribution": _score_figure(truth, score, weight, threshold)}
    if both_classes:
        figures["roc"] = _roc_figure(truth, score, weight, metrics)
        figures["pr"] = _pr_figure(truth, score, weight, metrics)
    png: dict[str, bytes] = {}
    for name, fig in figures.items():
        paths[name] = out_dir / f"{name}.png"
        png[name] = _save_png(fig, paths[name])

    payload = {
        "title": title,
        "threshold": threshold,
        "metrics": metrics.to_dict(),
        "false_positive_templates": [{"template": t, "weight": w} for t, w in false_positive_templates],
        "false_negative_templates": [{"template": t, "weight": w} for t, w in false_negative_templates],
        "extra": extra or {},
    }
    paths["json"] = out_dir / "report.json"
    paths["json"].write_text(json.dumps(payload, indent=2, default=_json_default) + "\n", encoding="utf-8")

    page = _html_page(
        title,
        metrics,
        threshold,
        png,
        both_classes,
        false_positive_templates,
        false_negative_templates,
        extra,
    )
    paths["html"] = out_dir / "report.html"
    paths["html"].write_text(page, encoding="utf-8")
    return paths


# --- plots -------------------------------------------------------------------------------------------


def _new_figure() -> tuple[Figure, Any]:
    fig = Figure(figsize=(6.4, 4.4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save_png(fig: Figure, path: Path) -> bytes:
    fig.savefig(path, format="png")
    fig.clear()  # object API: no pyplot registry to close, just drop the artists
    return path.read_bytes()


def _score_figure(truth: np.ndarray, score: np.ndarray, weight: np.ndarray, threshold: float | None) -> Figure:
    """Per-class weighted histograms, each normalised to its class total, on a log y axis."""
    fig, ax = _new_figure()
    if score.size:
        lo, hi = float(score.min()), float(score.max())
        if threshold is not None:
            lo, hi = min(lo, threshold), max(hi, threshold)
        bins = np.histogram_bin_edges(score, bins=50, range=(lo, hi) if hi > lo else None)
        for mask, label, color in ((~truth, "normal", NORMAL_COLOR), (truth, "anomalous", ANOMALY_COLOR)):
            total = weight[mask].sum()
            if total > 0:
                ax.hist(
                    score[mask],
                    bins=bins,
                    weights=weight[mask] / total,
                    histtype="stepfilled",
                    alpha=0.45,
                    color=color,
                    edgecolor=color,
                    label=f"{label} (n={format_count(total)})",
                )
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1.2, label=f"threshold = {threshold:.4g}")
    ax.set_xlabel("anomaly score")
    ax.set_ylabel("fraction of class (log scale)")
    ax.set_title("Score distribution by true class")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return fig


def _roc_figure(truth: np.ndarray, score: np.ndarray, weight: np.ndarray, metrics: Metrics) -> Figure:
    fig, ax = _new_figure()
    fpr, tpr, _ = roc_curve(truth, score, sample_weight=weight)
    ax.plot(fpr, tpr, color=ANOMALY_COLOR, linewidth=1.8, label=f"ROC (AUC = {_num(metrics.roc_auc)})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    ax.plot(
        metrics.fpr,
        metrics.recall,
        "ko",
        label=f"operating point (FPR {metrics.fpr:.3g}, TPR {metrics.recall:.3g})",
    )
    ax.set(
        xlim=(-0.01, 1.01),
        ylim=(-0.01, 1.01),
        xlabel="false-positive rate",
        ylabel="true-positive rate (recall)",
        title="ROC curve",
    )
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return fig


def _pr_figure(truth: np.ndarray, score: np.ndarray, weight: np.ndarray, metrics: Metrics) -> Figure:
    fig, ax = _new_figure()
    precision, recall, _ = precision_recall_curve(truth, score, sample_weight=weight)
    ax.step(
        recall,
        precision,
        where="post",
        color=ANOMALY_COLOR,
        linewidth=1.8,
        label=f"PR (AP = {_num(metrics.pr_auc)})",
    )
    prevalence = metrics.n_anomalous / max(metrics.n_normal + metrics.n_anomalous, 1e-300)
    ax.axhline(prevalence, color="grey", linestyle=":", label=f"chance (prevalence {prevalence:.3g})")
    ax.plot(
        metrics.recall,
        metrics.precision,
        "ko",
        label=f"operating point (P {metrics.precision:.3g}, R {metrics.recall:.3g})",
    )
    ax.set(
        xlim=(-0.01, 1.01),
        ylim=(-0.01, 1.01),
        xlabel="recall",
        ylabel="precision",
        title="Precision-recall curve",
    )
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    return fig


# --- html --------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1000px;
color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ccc;padding:.3em .7em;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f3f3f3}
td.tpl{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em;word-break:break-all}
img{max-width:100%;height:auto;border:1px solid #eee}
.note{color:#8a5a00;background:#fff6e0;padding:.5em .8em;border-left:3px solid #e0a000}
"""


def _html_page(
    title: str,
    m: Metrics,
    threshold: float | None,
    png: dict[str, bytes],
    both_classes: bool,
    fp_templates: list[tuple[str, float]],
    fn_templates: list[tuple[str, float]],
    extra: dict[str, Any] | None,
) -> str:
    e = html.escape
    metric_rows = [
        ("Precision", _num(m.precision)),
        ("Recall", _num(m.recall)),
        ("F1", _num(m.f1)),
        ("ROC-AUC", _num(m.roc_auc)),
        ("PR-AUC (average precision)", _num(m.pr_auc)),
        ("False-positive rate", "n/a (no normal rows)" if m.fpr is None else _num(m.fpr)),
        ("Threshold", "n/a" if threshold is None else f"{threshold:.6g}"),
        ("Normal / anomalous", f"{format_count(m.n_normal)} / {format_count(m.n_anomalous)}"),
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        "<h2>Metrics</h2>",
        _table(["metric", "value"], metric_rows, numeric_cols={1}),
        "<h2>Confusion matrix</h2>",
        _table(
            ["", "predicted normal", "predicted anomalous"],
            [
                ("true normal", format_count(m.tn), format_count(m.fp)),
                ("true anomalous", format_count(m.fn), format_count(m.tp)),
            ],
            numeric_cols={1, 2},
            row_headers=True,
        ),
    ]
    if not both_classes:
        only = "anomalous" if m.n_anomalous > 0 else "normal" if m.n_normal > 0 else "no"
        parts.append(
            f'<p class="note">Only {only} rows are present: ROC and precision-recall curves '
            "(and their AUCs) are undefined and were skipped.</p>"
        )
    parts.append("<h2>Plots</h2>")
    for name, alt in (("score_distribution", "score distribution"), ("roc", "ROC curve"), ("pr", "PR curve")):
        if name in png:
            data = base64.b64encode(png[name]).decode("ascii")
            parts.append(f'<p><img alt="{alt}" src="data:image/png;base64,{data}"></p>')
    for heading, rows in (
        ("Templates behind false positives", fp_templates),
        ("Templates behind false negatives", fn_templates),
    ):
        parts.append(f"<h2>{heading}</h2>")
        if rows:
            parts.append(
                _table(
                    ["template", "weight"],
                    [(t, format_count(w)) for t, w in rows],
                    numeric_cols={1},
                    classes={0: "tpl"},
                )
            )
        else:
            parts.append("<p>None.</p>")
    if extra:
        parts.append("<h2>Details</h2>")
        parts.append(_table(["key", "value"], [(str(k), _extra_value(v)) for k, v in extra.items()]))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _table(
    header: list[str],
    rows: list[tuple[str, ...]],
    *,
    numeric_cols: Collection[int] = (),
    classes: dict[int, str] | None = None,
    row_headers: bool = False,
) -> str:
    """HTML table; every cell is escaped here, so callers pass raw text."""
    e = html.escape
    out = ["<table>", "<tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>"]
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            if row_headers and i == 0:
                cells.append(f"<th>{e(cell)}</th>")
                continue
            cls = "num" if i in numeric_cols else (classes or {}).get(i)
            attr = f' class="{cls}"' if cls else ""
            cells.append(f"<td{attr}>{e(cell)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


# --- formatting ----------------------------------------------------------------------------------------


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _extra_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=_json_default)


def _json_default(value: Any) -> Any:
    """numpy scalars/arrays and Paths into JSON; anything else as its str()."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
