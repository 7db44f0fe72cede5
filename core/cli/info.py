"""``logwarden info``: a model version's settings, calibration and metrics."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from logwarden.core.cli.common import alias, subcommand
from logwarden.core.settings import CommandSettings


class InfoSettings(CommandSettings):
    model_config = SettingsConfigDict(env_prefix="LOGWARDEN_INFO_", extra="forbid", validate_default=True)
    model: Path = Field(description="model root or version directory")
    model_version: str | None = Field(
        None, validation_alias=alias("model_version", "version"), description="model version (default: the newest)"
    )


def register(subparsers) -> None:
    subcommand(subparsers, "info", InfoSettings, run, help="show a model version's settings and metrics")


def run(s: InfoSettings, args) -> int:
    from logwarden.core.artifact import store as artifact

    files = artifact.read_config(artifact.resolve(s.model, s.model_version))
    cfg = files.config.model_dump(mode="json")
    cfg.pop("vocab", None)
    cfg.get("metrics", {}).pop("history", None)
    if cfg.get("combinations"):  # the list itself is long; its size says enough here
        combinations = cfg["combinations"]
        cfg["combinations"] = {"min_sessions": combinations["min_sessions"], "known": len(combinations["known"])}
    if cfg.get("novelty"):  # the known templates and learned words are long too: their sizes say enough here
        novelty = cfg["novelty"]
        cfg["novelty"] = {
            "templates": len(novelty["templates"]),
            "words": len(novelty.get("severity") or {}),
            "level_field": novelty.get("level_field"),
        }
    if cfg.get("counts"):
        cfg["counts"] = {"templates": len(cfg["counts"]["most"])}
    cfg["versions"] = artifact.list_versions(files.path.parent)
    print(json.dumps(cfg, indent=2))
    return 0
