"""``logwarden retrain``: a new model version from the current one, its normal logs and the analysts' labels."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from logwarden.core.cli.common import InputSettings, alias, read_inputs, subcommand
from logwarden.core.errors import LogWardenError

RETRAIN_HELP = """\
Train a NEW model version from the current one and the analysts' labels. The model artifact does not
keep its training data, so --data must give the original normal logs again (or newer normal logs of
the same format): they are parsed with the version's own template miner, so template ids stay the ones
the labels refer to. Sessions labelled 'anomaly' are left out; sessions labelled 'normal' (false
positives) that carry their key sequence are added, --fp-weight times each. Model, training,
windowing and calibration settings are the current version's; the labels used are recorded in the
new version's config.json."""


class RetrainSettings(InputSettings):
    model_config = SettingsConfigDict(env_prefix="LOGWARDEN_RETRAIN_", extra="forbid", validate_default=True)
    model: Path = Field(description="model root (the newest version is the base)")
    model_version: str | None = Field(
        None, validation_alias=alias("model_version", "version"), description="base version (default: the newest)"
    )
    db: Path = Field(description="label database (SQLite file)")
    format: str | None = Field(None, description="must match the model's line format (default: the model's)")
    epochs: int | None = Field(None, ge=1, description="training epochs (default: the base version's)")
    fp_weight: int = Field(5, ge=1, description="copies of each false-positive session in training")
    onnx: bool = Field(True, description="also export model.onnx")
    quiet: bool = Field(False, description="no progress bars")


def _data_arg(parser) -> None:
    parser.add_argument(
        "--data",
        nargs="+",
        required=True,
        metavar="LOGS",
        help="the normal training logs (files, globs, gzip); required, see above",
    )


def register(subparsers) -> None:
    subcommand(
        subparsers,
        "retrain",
        RetrainSettings,
        run,
        help="new model version from labels and the normal logs",
        description=RETRAIN_HELP,
        extra=_data_arg,
    )


def run(s: RetrainSettings, args) -> int:
    from logwarden.core.artifact import store as artifact
    from logwarden.core.cli.common import line_format
    from logwarden.core.labels.retrain import retrain
    from logwarden.core.labels.sqlite import SqliteLabelStore
    from logwarden.core.parsing.reader import ReadStats

    base = artifact.resolve(s.model, s.model_version)
    spec = artifact.read_config(base).config.line_format
    fmt = line_format(spec, s)
    if s.format and line_format(s.format, s).spec != fmt.spec:
        raise LogWardenError(f"model {base.name} was trained on format {spec!r}, not {s.format!r}")
    stats = ReadStats()
    records = read_inputs(args.data, fmt, s, stats)
    with SqliteLabelStore(s.db, create=False) as store:
        result = retrain(
            base, store, records, epochs=s.epochs, fp_weight=s.fp_weight, onnx=s.onnx, progress=not s.quiet
        )
    print(stats.summary(), file=sys.stderr)
    print(
        json.dumps(
            {
                "model": str(result.path),
                "version": result.version,
                "parent_version": result.parent_version,
                "k": result.k,
                "train_sessions": result.train_sessions,
                "labels": result.labels.to_dict(),
            }
        )
    )
    return 0
