"""A model version's ``config.json`` as one typed object: its fields, the format number, the upgrade step.

Defaults live in the dataclasses the fields are made of (``ModelConfig``, ``TrainConfig``, ``Calibration``,
``SessionRule``) and in ``FitDefaults`` below; nothing else repeats them. ``ARTIFACT_FORMAT`` is bumped
whenever what a version directory holds changes meaning:

* format 1 (LogWarden 0.1): config.json as a plain mapping; versions written before end thresholds and the
  combination check lack ``score_end``, ``calibration.end_surprisal``, ``calibration.combination_fpr``,
  ``check_combinations``, ``min_template_sessions`` and ``combinations``.
* format 2: the same content, validated strictly (an unknown or mistyped key is refused).
* format 3: templates the model does not know are judged by their novelty (``novelty``, ``novelty_mode``,
  ``calibration.novelty_threshold`` and ``novelty_fpr``); windows by their templates' counts (``counts``,
  ``check_counts``, ``calibration.count_threshold`` and ``count_fpr``); the validation split (``val_split``); what
  training decided and warned about (``notes``); session rules may window per field or globally and cap
  long windows (``sessions.scope``, ``sessions.max_events``).

``parse_config`` reads all three: older configs go through the documented steps (``upgrade_1_to_2``: the
keys above get the values that reproduce how such a version judged sessions: the end by top-K, no
combination check; ``upgrade_2_to_3``: every unknown template alerts, as it did, and no count check). A newer
format is refused with a message naming both numbers.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from logwarden.core.detect.calibration import Calibration
from logwarden.core.errors import LogWardenError
from logwarden.core.model.config import ModelConfig, TrainConfig
from logwarden.core.parsing.sessions import SessionRule

ARTIFACT_FORMAT = 3


def package_version() -> str:
    """LogWarden's version from the installed package's metadata."""
    try:
        return importlib.metadata.version("logwarden")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


@dataclass(frozen=True)
class FitDefaults:
    """Training-run settings beside the model and optimiser (the CLI and FitSettings take them from here)."""

    val_fraction: float = 0.2  # share of normal sessions held out for calibration
    target_fpr: float = 0.005  # share of normal validation sessions allowed to be flagged (1 in 200)
    score_end: bool = True  # also check that a complete session ends where normal ones do
    min_template_sessions: int = 5  # rarer templates (and template combinations) alert like new ones
    check_combinations: bool = True  # also judge a complete session's set of templates
    novelty: Literal["graded", "always"] = "graded"  # how a template the model does not know is judged
    val_split: Literal["auto", "random", "chronological"] = "auto"  # auto: chronological for windows
    auto_min_template_sessions: bool = True  # lower min_template_sessions when rare templates fill validation
    check_counts: bool = True  # windows (time or count): also judge how often each template appears


FIT = FitDefaults()


class Fingerprint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sha256: str
    train_sessions: int
    val_sessions: int


class ArtifactConfig(BaseModel):
    """Everything ``config.json`` holds. ``version`` is "unsaved" until ``save_detector`` names it."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    artifact_format: int = ARTIFACT_FORMAT
    logwarden_version: str
    version: str = "unsaved"
    created: str
    model: ModelConfig
    train: TrainConfig
    vocab: list[str]
    calibration: Calibration
    score_end: bool = FIT.score_end
    val_fraction: float = FIT.val_fraction
    min_template_sessions: int = FIT.min_template_sessions
    check_combinations: bool = FIT.check_combinations
    combinations: dict[str, Any] | None = None  # Combinations.to_dict(); None: the check is off
    check_counts: bool = FIT.check_counts
    counts: dict[str, Any] | None = None  # Counts.to_dict(); None: the count check is off
    novelty_mode: Literal["graded", "always"] = FIT.novelty
    novelty: dict[str, Any] | None = None  # Novelty.to_dict(); None: unknown templates have no text to judge
    val_split: Literal["random", "chronological"] = "random"
    notes: list[dict[str, str]] = []  # what training decided or warns about: {"code", "message"}
    fingerprint: Fingerprint
    metrics: dict[str, Any]
    line_format: str = ""
    sessions: SessionRule = SessionRule()
    parser: dict[str, Any] = {}  # {"templates": number of mined templates}
    data: dict[str, Any] = {}  # what the training data held (events, sessions, templates, ...)
    labels: dict[str, Any] | None = None  # retrain: which labels were used
    parent_version: str | None = None  # retrain: the version it started from

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


def upgrade_1_to_2(data: dict[str, Any]) -> dict[str, Any]:
    """A format-1 config as format 2: missing keys get the values that keep its verdicts unchanged."""
    data = dict(data)
    data.setdefault("score_end", True)
    calibration = dict(data.get("calibration") or {})
    calibration.setdefault("end_surprisal", None)  # the end judged by top-K, like any event
    calibration.setdefault("combination_fpr", None)
    data["calibration"] = calibration
    data.setdefault("check_combinations", False)
    data.setdefault("combinations", None)
    data.setdefault("min_template_sessions", 1)  # its vocabulary holds every template it was trained on
    data.setdefault("val_fraction", FIT.val_fraction)
    data["artifact_format"] = 2
    return data


def upgrade_2_to_3(data: dict[str, Any]) -> dict[str, Any]:
    """A format-2 config as format 3: every template the model does not know alerts, as it did."""
    data = dict(data)
    calibration = dict(data.get("calibration") or {})
    calibration.setdefault("novelty_threshold", None)
    calibration.setdefault("novelty_fpr", None)
    calibration.setdefault("count_threshold", None)
    calibration.setdefault("count_fpr", None)
    data["calibration"] = calibration
    data.setdefault("novelty_mode", "always")
    data.setdefault("novelty", None)
    data.setdefault("check_counts", False)
    data.setdefault("counts", None)
    sessions = dict(data.get("sessions") or {})
    sessions.setdefault("max_events", 0)  # windows were never cut
    data["sessions"] = sessions
    data["artifact_format"] = 3
    return data


UPGRADES = {1: upgrade_1_to_2, 2: upgrade_2_to_3}


def parse_config(data: Any, where: str) -> ArtifactConfig:
    """The typed config of a version (``where`` names it in errors), upgraded from older formats."""
    if not isinstance(data, dict) or not isinstance(data.get("artifact_format"), int):
        raise LogWardenError(f"corrupt model {where}: config.json is not a LogWarden artifact (no artifact_format)")
    found = data["artifact_format"]
    if found > ARTIFACT_FORMAT:
        raise LogWardenError(
            f"model {where} has artifact format {found}, written by a newer LogWarden; this one reads formats up to "
            f"{ARTIFACT_FORMAT}: upgrade LogWarden or retrain the model with this version"
        )
    while data["artifact_format"] < ARTIFACT_FORMAT:
        step = UPGRADES.get(data["artifact_format"])
        if step is None:
            raise LogWardenError(
                f"model {where} has artifact format {data['artifact_format']}, which this LogWarden cannot upgrade: "
                "retrain it with `logwarden train`"
            )
        data = step(data)
    try:
        return ArtifactConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)[:5]
        )
        raise LogWardenError(f"corrupt model {where}: config.json has bad settings ({problems})") from None
