"""``logwarden labels export``: stored analyst labels as JSON lines or CSV."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from logwarden.core.cli.common import subcommand
from logwarden.core.errors import LogWardenError
from logwarden.core.settings import CommandSettings


class ExportSettings(CommandSettings):
    model_config = SettingsConfigDict(env_prefix="LOGWARDEN_LABELS_", extra="forbid", validate_default=True)
    flag_shortcuts: ClassVar[dict[str, str]] = {"output": "o"}

    db: Path = Field(description="label database (SQLite file)")
    format: Literal["jsonl", "csv"] = Field("jsonl", description="output format")
    output: str = Field("-", description="output file ('-' = standard output)")
    source: str | None = Field(None, description="only labels of this source")
    since: str | None = Field(None, description="only labels created at or after this ISO 8601 time (UTC unless zoned)")


def register(subparsers) -> None:
    labels = subparsers.add_parser("labels", help="work with the analysts' label store")
    sub = labels.add_subparsers(dest="labels_command", required=True, metavar="COMMAND")
    subcommand(sub, "export", ExportSettings, run_export, help="write stored labels as JSON lines or CSV")


def run_export(s: ExportSettings, args) -> int:
    from logwarden.core.labels.sqlite import SqliteLabelStore

    with SqliteLabelStore(s.db, create=False) as store:
        filters = {"source": s.source, "since": s.since}
        if s.output == "-":
            n = store.export(sys.stdout, s.format, **filters)
        else:
            try:
                handle = open(s.output, "w", encoding="utf-8", newline="")  # noqa: SIM115
            except OSError as exc:
                raise LogWardenError(f"cannot write {s.output}: {exc.strerror}") from exc
            with handle:
                n = store.export(handle, s.format, **filters)
    print(f"exported {n} labels", file=sys.stderr)
    return 0
