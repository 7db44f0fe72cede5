"""What the subcommands share: registering a command with its settings, reading log inputs, loading a model."""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import AliasChoices, Field

from logwarden.core.errors import LogWardenError
from logwarden.core.settings import CommandSettings, add_flags, load

S = TypeVar("S", bound=CommandSettings)
LABEL_WORDS = {"anomaly": 1, "anomalous": 1, "abnormal": 1, "1": 1, "true": 1, "normal": 0, "0": 0, "false": 0}
BOOKKEEPING = ("command", "func", "labels_command")  # argparse's own entries, not settings


def alias(*names: str) -> AliasChoices:
    """A setting's field name plus the shorter flag / key it is also known by."""
    return AliasChoices(*names)


def subcommand(
    subparsers,
    name: str,
    settings_cls: type[S],
    run: Callable[[S, argparse.Namespace], int],
    *,
    help: str,
    description: str | None = None,
    inputs: bool = False,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.ArgumentParser:
    """Add ``name`` with one flag per field of ``settings_cls``; ``run(settings, args)`` executes it.

    ``inputs`` adds the positional log inputs (``args.inputs``); ``extra(parser)`` adds arguments that are
    not settings (lists of files): both stay in ``args`` and out of the settings object.
    """
    parser = subparsers.add_parser(name, help=help, description=description or help)
    if inputs:
        parser.add_argument("inputs", nargs="+", help="log files, globs or gzip files; '-' reads standard input")
    if extra is not None:
        extra(parser)
    own = {action.dest for action in parser._actions}  # positionals and extras, not settings
    source = add_flags(parser, settings_cls)

    def execute(args: argparse.Namespace) -> int:
        skip = own | set(BOOKKEEPING)
        flags = argparse.Namespace(**{k: v for k, v in vars(args).items() if k not in skip})
        return run(load(settings_cls, args=flags, source=source), args)

    parser.set_defaults(func=execute)
    return parser


class InputSettings(CommandSettings):
    """How log inputs are read (train, score, evaluate)."""

    max_line_bytes: int = Field(65536, ge=1, description="longer lines are skipped and reported")
    json_message: str = Field("message", description="JSON lines: field holding the message (dotted path)")
    json_timestamp: str | None = Field(None, description="JSON lines: field holding the timestamp")
    json_session: str | None = Field(None, description="JSON lines: field holding the session key")
    json_label: str | None = Field(None, description="JSON lines: field holding a per-line label")


def line_format(spec: str, settings: InputSettings):
    """The ``LineFormat`` of ``spec``; plain ``json`` takes the ``--json-*`` fields."""
    from logwarden.core.parsing.formats import get_format

    if spec == "json":
        return get_format(
            spec,
            message_field=settings.json_message,
            timestamp_field=settings.json_timestamp,
            session_field=settings.json_session,
            label_field=settings.json_label,
        )
    return get_format(spec)


def read_inputs(paths: list[str], fmt, settings: InputSettings, stats) -> Iterator[Any]:
    """Records of ``paths``; the first bad lines are reported on standard error as they are met."""
    from logwarden.core.parsing.reader import read_records

    def report(source: str, line_no: int, reason: str) -> None:
        if stats.bad_lines <= 5:
            print(f"warning: {source}:{line_no}: {reason}", file=sys.stderr)

    return read_records(paths, fmt, max_line_bytes=settings.max_line_bytes, stats=stats, on_bad_line=report)


def check_input(stats, fmt) -> None:
    """Refuse a run that read nothing usable, saying why."""
    if stats.records == 0:
        if stats.lines == 0:
            raise LogWardenError("no input: the files are empty")
        raise LogWardenError(f"none of the {stats.lines} lines could be read as format {fmt.spec!r}: {stats.summary()}")


def load_detector(settings):
    """The model version ``settings`` (a ``ModelChoice``) name, and the line format to read inputs with (the
    model's; ``--format`` must agree)."""
    from logwarden.core.detect.detector import Detector

    detector = Detector.load(
        settings.model,
        version=settings.model_version,
        backend=settings.backend,
        device=settings.device,
        threads=settings.threads,
    )
    spec = detector.line_format
    fmt_spec = settings.format
    if fmt_spec and fmt_spec != spec:
        fmt = line_format(fmt_spec, settings)
        if fmt.spec != spec:
            raise LogWardenError(f"model {detector.version} was trained on format {spec!r}, not {fmt.spec!r}")
    return detector, line_format(spec, settings)


def read_session_labels(path: Path) -> dict[str, int]:
    """A CSV of ``session,label`` (loghub's ``BlockId,Label`` with Anomaly/Normal works as is)."""
    labels: dict[str, int] = {}
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            for row_no, row in enumerate(csv.reader(handle), start=1):
                if len(row) < 2 or not row[0].strip():
                    continue
                word = row[1].strip().lower()
                if word not in LABEL_WORDS:
                    if row_no == 1:
                        continue  # header
                    raise LogWardenError(f"{path}:{row_no}: unknown label {row[1]!r} (use Anomaly/Normal or 1/0)")
                labels[row[0].strip()] = LABEL_WORDS[word]
    except OSError as exc:
        raise LogWardenError(f"cannot read labels file {path}: {exc.strerror}") from exc
    return labels
