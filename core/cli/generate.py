"""``logwarden generate``: a generated HDFS-style corpus (demo data for the default model, tests)."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from logwarden.core.cli.common import subcommand
from logwarden.core.settings import CommandSettings


class GenerateSettings(CommandSettings):
    model_config = SettingsConfigDict(env_prefix="LOGWARDEN_GENERATE_", extra="forbid", validate_default=True)
    out: Path = Field(description="log file to write")
    sessions: int = Field(1000, ge=1, description="block sessions to generate")
    anomaly_rate: float = Field(0.0, ge=0.0, le=1.0, description="share of anomalous sessions")
    seed: int = Field(0, description="random seed (the same seed writes the same corpus)")
    labels: Path | None = Field(None, description="also write a session,label CSV here")


def register(subparsers) -> None:
    subcommand(
        subparsers,
        "generate",
        GenerateSettings,
        run,
        help="write a generated HDFS-style corpus (demo data for the default model)",
    )


def run(s: GenerateSettings, args) -> int:
    from logwarden.core.synthetic import generate

    corpus = generate(s.sessions, anomaly_rate=s.anomaly_rate, seed=s.seed)
    s.out.parent.mkdir(parents=True, exist_ok=True)
    s.out.write_text("\n".join(corpus.lines) + "\n", encoding="utf-8")
    if s.labels:
        rows = "".join(f"{blk},{'Anomaly' if y else 'Normal'}\n" for blk, y in corpus.labels.items())
        s.labels.write_text("BlockId,Label\n" + rows, encoding="utf-8")
    print(f"wrote {len(corpus.lines):,} lines of {s.sessions:,} sessions to {s.out}", file=sys.stderr)
    return 0
