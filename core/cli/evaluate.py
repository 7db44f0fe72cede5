"""``logwarden evaluate``: score labelled logs; precision, recall, F1, ROC/PR and an HTML report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from logwarden.core.cli.common import (
    alias,
    check_input,
    load_detector,
    read_inputs,
    read_session_labels,
    subcommand,
)
from logwarden.core.cli.score import ModelChoice
from logwarden.core.errors import LogWardenError


class EvaluateSettings(ModelChoice):
    model_config = SettingsConfigDict(env_prefix="LOGWARDEN_EVALUATE_", extra="forbid", validate_default=True)
    labels: Path | None = Field(None, description="CSV of session,label (else the format's per-line labels)")
    report: Path = Field(Path("reports/latest"), description="directory for report.html and report.json")
    from_time: str | None = Field(
        None,
        validation_alias=alias("from_time", "from"),
        description="evaluate on the lines at or after this time only (epoch seconds or ISO 8601): the test part "
        "of `train --until` the same time",
    )


def register(subparsers) -> None:
    subcommand(
        subparsers,
        "evaluate",
        EvaluateSettings,
        run,
        help="score labelled logs and report precision, recall, F1, ROC/PR",
        inputs=True,
    )


def run(s: EvaluateSettings, args) -> int:
    from logwarden.core.parsing.reader import ReadStats
    from logwarden.core.pipeline.evaluate import evaluate_sessions, format_metrics_table
    from logwarden.core.pipeline.report import write_report
    from logwarden.core.pipeline.split import after, parse_time

    detector, fmt = load_detector(s)
    stats = ReadStats()
    labels = read_session_labels(s.labels) if s.labels else {}
    records = read_inputs(args.inputs, fmt, s, stats)
    if s.from_time is not None:
        records = after(records, parse_time(s.from_time))
    records = list(records)
    check_input(stats, fmt)
    if not records:
        raise LogWardenError(f"no lines at or after --from {s.from_time}")
    result = evaluate_sessions(detector, records, labels)
    m = result.metrics
    if not (m.n_normal and m.n_anomalous):
        only = "anomalous" if m.n_anomalous else "normal"
        print(
            f"warning: every labelled session is {only}: ROC-AUC and PR-AUC are undefined"
            + ("" if m.n_normal else ", and so is the false-positive rate"),
            file=sys.stderr,
        )
    print(format_metrics_table(m, f"LogWarden {detector.version}"))
    print(
        "false positives, by the template that made them anomalous:" if result.false_positives else "no false positives"
    )
    for text, n in result.false_positives:
        print(f"  {int(n):6d}  {text}")
    if result.false_positive_reasons:
        print(
            "false positives, by reason code: " + ", ".join(f"{c} {int(n)}" for c, n in result.false_positive_reasons)
        )
    print("false negatives, by first templates:" if result.false_negatives else "no false negatives")
    for text, n in result.false_negatives:
        print(f"  {int(n):6d}  {text}")
    paths = write_report(
        s.report,
        title=f"LogWarden evaluation — {detector.version}",
        metrics=result.metrics,
        y_true=result.y_true,
        scores=result.scores,
        threshold=0.5,
        false_positive_templates=result.false_positives,
        false_negative_templates=result.false_negatives,
        extra={
            "model": str(detector.path),
            "k": detector.calibration.k,
            "vocabulary": len(detector.vocab.keys),
            "false positives by reason code": dict(result.false_positive_reasons),
            "input": stats.summary(),
        },
    )
    print(f"report: {paths['html']}", file=sys.stderr)
    print(json.dumps(result.metrics.to_dict()))
    return 0
