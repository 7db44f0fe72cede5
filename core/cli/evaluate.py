"""``logwarden evaluate``: score labelled logs; precision, recall, F1, ROC/PR and an HTML report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from logwarden.core.cli.common import check_input, load_detector, read_inputs, read_session_labels, subcommand
from logwarden.core.cli.score import ModelChoice


class EvaluateSettings(ModelChoice):
    model_config = SettingsConfigDict(env_prefix="LOGWARDEN_EVALUATE_", extra="forbid", validate_default=True)
    labels: Path | None = Field(None, description="CSV of session,label (else the format's per-line labels)")
    report: Path = Field(Path("reports/latest"), description="directory for report.html and report.json")


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

    detector, fmt = load_detector(s.model, s.model_version, s.backend, s.device, s.format, s)
    stats = ReadStats()
    labels = read_session_labels(s.labels) if s.labels else {}
    records = list(read_inputs(args.inputs, fmt, s, stats))
    check_input(stats, fmt)
    result = evaluate_sessions(detector, records, labels)
    print(format_metrics_table(result.metrics, f"LogWarden {detector.version}"))
    print("false positives, by reason:" if result.false_positives else "no false positives")
    for text, n in result.false_positives:
        print(f"  {int(n):6d}  {text}")
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
        extra={"model": str(detector.path), "k": detector.calibration.k, "input": stats.summary()},
    )
    print(f"report: {paths['html']}", file=sys.stderr)
    print(json.dumps(result.metrics.to_dict()))
    return 0
