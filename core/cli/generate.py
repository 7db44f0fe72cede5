"""``logwarden generate``: a generated corpus: HDFS-style block sessions (demo data for the default model, tests)
or syslog-like BGL/Thunderbird lines for time and count windows (``core.synthetic_syslog``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from logwarden.core.cli.common import subcommand
from logwarden.core.settings import CommandSettings


class GenerateSettings(CommandSettings):
    model_config = SettingsConfigDict(env_prefix="LOGWARDEN_GENERATE_", extra="forbid", validate_default=True)
    out: Path = Field(description="log file to write")
    flavour: Literal["hdfs", "bgl", "thunderbird"] = Field(
        "hdfs",
        description="hdfs: block sessions (format hdfs); bgl, thunderbird: syslog-like lines of many nodes with "
        "drifting benign templates and labelled faults (formats bgl, thunderbird; sessions are time windows)",
    )
    sessions: int = Field(1000, ge=1, description="hdfs: block sessions to generate")
    anomaly_rate: float = Field(0.0, ge=0.0, le=1.0, description="hdfs: share of anomalous sessions")
    hours: float = Field(24.0, gt=0, le=24 * 365, description="bgl, thunderbird: hours of logs")
    nodes: int = Field(16, ge=1, le=10_000, description="bgl, thunderbird: nodes logging")
    faults_per_hour: float = Field(1.0, ge=0, description="bgl, thunderbird: fault episodes per hour")
    seed: int = Field(0, description="random seed (the same seed writes the same corpus)")
    labels: Path | None = Field(None, description="hdfs: also write a session,label CSV here")


def register(subparsers) -> None:
    subcommand(
        subparsers,
        "generate",
        GenerateSettings,
        run,
        help="write a generated corpus (HDFS-style sessions, or BGL/Thunderbird-like lines)",
    )


def run(s: GenerateSettings, args) -> int:
    from logwarden.core.synthetic import generate

    if s.flavour != "hdfs":
        from logwarden.core import synthetic_syslog

        lines = synthetic_syslog.generate(
            s.flavour, hours=s.hours, nodes=s.nodes, faults_per_hour=s.faults_per_hour, seed=s.seed
        ).lines
        s.out.parent.mkdir(parents=True, exist_ok=True)
        s.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        faults = sum(not line.startswith("- ") for line in lines)
        print(f"wrote {len(lines):,} lines ({faults:,} fault lines) of {s.nodes} nodes to {s.out}", file=sys.stderr)
        return 0
    corpus = generate(s.sessions, anomaly_rate=s.anomaly_rate, seed=s.seed)
    s.out.parent.mkdir(parents=True, exist_ok=True)
    s.out.write_text("\n".join(corpus.lines) + "\n", encoding="utf-8")
    if s.labels:
        rows = "".join(f"{blk},{'Anomaly' if y else 'Normal'}\n" for blk, y in corpus.labels.items())
        s.labels.write_text("BlockId,Label\n" + rows, encoding="utf-8")
    print(f"wrote {len(corpus.lines):,} lines of {s.sessions:,} sessions to {s.out}", file=sys.stderr)
    return 0
