"""``logwarden score``: JSON lines out, one per event and one per session."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from logwarden.core.cli.common import InputSettings, alias, check_input, load_detector, read_inputs, subcommand


class ModelChoice(InputSettings):
    """Which model version to use, and how to run it (score, evaluate)."""

    model: Path = Field(description="model root or version directory")
    model_version: str | None = Field(
        None, validation_alias=alias("model_version", "version"), description="model version (default: the newest)"
    )
    format: str | None = Field(None, description="must match the model's line format (default: the model's)")
    backend: Literal["onnx", "torch"] = Field("onnx", description="inference backend (both give the same verdicts)")
    device: str = Field("auto", description="torch backend device: auto, cpu, cuda")
    threads: int = Field(
        0, ge=0, description="inference threads of the backend (0: one per core; fewer is faster on a busy machine)"
    )


class ScoreSettings(ModelChoice):
    model_config = SettingsConfigDict(env_prefix="LOGWARDEN_SCORE_", extra="forbid", validate_default=True)
    flag_shortcuts: ClassVar[dict[str, str]] = {"output": "o"}

    output: str = Field("-", description="output file ('-' = standard output)")
    events: Literal["all", "anomalous", "none"] = Field("all", description="which event lines to write")
    batch_sessions: int = Field(512, ge=1, description="sessions per model call")


def register(subparsers) -> None:
    subcommand(
        subparsers,
        "score",
        ScoreSettings,
        run,
        help="score logs; JSON lines out, one per event and one per session",
        inputs=True,
    )


def run(s: ScoreSettings, args) -> int:
    from logwarden.core.parsing.reader import ReadStats
    from logwarden.core.pipeline.score import score_records

    detector, fmt = load_detector(s)
    stats = ReadStats()
    out = sys.stdout if s.output == "-" else open(s.output, "w", encoding="utf-8")  # noqa: SIM115
    counts: Counter[str] = Counter()
    try:
        records = read_inputs(args.inputs, fmt, s, stats)
        for item in score_records(detector, records, events=s.events, batch_sessions=s.batch_sessions):
            counts[item["type"]] += 1
            counts["anomalous_" + item["type"]] += bool(item.get("anomalous"))
            out.write(json.dumps(item, ensure_ascii=False) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    check_input(stats, fmt)
    print(stats.summary(), file=sys.stderr)
    print(
        f"scored {counts['session']} sessions ({counts['anomalous_session']} anomalous), "
        f"{counts['event']} event lines written",
        file=sys.stderr,
    )
    return 0
