"""Model routing: which served model scores an event.

A deployment with HDFS-like and syslog-like sources needs a model per index, sourcetype or Fluent Bit tag.
The server serves several named models (``Settings.models``: name → directory and match rules, beside the
default model of ``model_path``); a request picks one by name (``ScoreRequest.model``), otherwise each
event goes to the first route with a rule that its attributes match, otherwise to the default model. A rule
matches when every one of its attributes equals the event's; a value ending in ``*`` matches a prefix.

    models:
      hdfs:   {path: models/hdfs, rules: [{index: "hdfs-*"}, {tag: "hdfs.*"}]}
      syslog: {path: models/syslog, rules: [{sourcetype: "syslog"}]}
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT = "default"
MAX_NAME = 64


class RouteSpec(BaseModel):
    """One named model: where it lives and which events go to it."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="model root (versions inside) or a version directory")
    version: str | None = Field(None, description="version to serve (null = the newest)")
    rules: list[dict[str, str]] = Field(
        default_factory=list, description="attribute rules; any one matching routes the event here"
    )

    @field_validator("rules")
    @classmethod
    def _rules(cls, rules: list[dict[str, str]]) -> list[dict[str, str]]:
        if any(not rule for rule in rules):
            raise ValueError("an empty rule would match every event: give at least one attribute")
        return rules


def check_route_name(name: str) -> str:
    if not name or len(name) > MAX_NAME or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(f"model route name {name[:80]!r}: use 1 to {MAX_NAME} letters, digits, '-', '_' or '.'")
    return name


def _matches(rule: Mapping[str, str], attributes: Mapping[str, str]) -> bool:
    for key, wanted in rule.items():
        value = attributes.get(key)
        if value is None:
            return False
        if wanted.endswith("*"):
            if not value.startswith(wanted[:-1]):
                return False
        elif value != wanted:
            return False
    return True


class RouteTable:
    """Ordered routes (name → rules); ``route(attributes)`` is the first matching name, else the default."""

    def __init__(self, rules: Mapping[str, list[dict[str, str]]], default: str = DEFAULT) -> None:
        self.rules = {name: list(r) for name, r in rules.items()}
        self.default = default
        self._any = any(self.rules.values())

    def route(self, attributes: Mapping[str, str]) -> str:
        if self._any and attributes:
            for name, rules in self.rules.items():
                if any(_matches(rule, attributes) for rule in rules):
                    return name
        return self.default
