"""``logwarden split``: a log cut in two by time, a training part and a test part (chronological split)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from logwarden.core.cli.common import InputSettings, check_input, line_format, read_inputs, subcommand
from logwarden.core.errors import LogWardenError


class SplitSettings(InputSettings):
    """Which lines go to the training part: those before a time, given or found from a share of the lines."""

    model_config = SettingsConfigDict(env_prefix="LOGWARDEN_SPLIT_", extra="forbid", validate_default=True)
    format: str = Field(
        "plain", description="preset (hdfs, bgl, thunderbird), json or a format string; it must read a timestamp"
    )
    train_out: Path = Field(description="file for the lines before the cut (training)")
    test_out: Path = Field(description="file for the lines at or after the cut (testing)")
    train_share: float = Field(0.8, gt=0, lt=1, description="share of the timed lines before the cut")
    at: str | None = Field(
        None, description="cut at this time instead (epoch seconds or ISO 8601); needed to split standard input"
    )


def register(subparsers) -> None:
    subcommand(
        subparsers,
        "split",
        SplitSettings,
        run,
        help="split logs by time into a training and a test part",
        description="Split logs by time: lines before the cut go to --train-out, the others to --test-out, each "
        "in input order and unchanged (a line without a readable timestamp goes where the line before it went). "
        "Train on the first part and evaluate on the second, or pass the printed cut to `train --until` and "
        "`evaluate --from`.",
        inputs=True,
    )


def run(s: SplitSettings, args) -> int:
    from logwarden.core.parsing.reader import STDIN, ReadStats, expand_paths
    from logwarden.core.pipeline.split import cut_time, format_time, parse_time

    fmt = line_format(s.format, s)
    if s.at is not None:
        cut = parse_time(s.at)
    else:
        if STDIN in args.inputs:
            raise LogWardenError("splitting standard input needs --at TIME (the cut cannot be found in one pass)")
        stats = ReadStats()
        cut = cut_time((r.timestamp for r in read_inputs(args.inputs, fmt, s, stats)), s.train_share)
        check_input(stats, fmt)
    counts = {"train": 0, "test": 0, "untimed": 0}
    with open(s.train_out, "wb") as train, open(s.test_out, "wb") as test:
        side = train
        for path in expand_paths(args.inputs):
            side = _copy(path, fmt, cut, s.max_line_bytes, train, test, counts, side)
    print(
        f"cut at {format_time(cut)} ({cut:g}): {counts['train']:,} lines to {s.train_out}, {counts['test']:,} to "
        f"{s.test_out}; {counts['untimed']:,} without a readable time went with the line before them",
        file=sys.stderr,
    )
    print(json.dumps({"cut": cut, "cut_iso": format_time(cut), **counts}))
    return 0


def _copy(path: str, fmt, cut: float, max_line_bytes: int, train, test, counts: dict, side):
    """Copy one input's lines, unchanged, to the side of the cut their time says."""
    from logwarden.core.errors import BadLineError
    from logwarden.core.parsing.reader import open_input

    stream = open_input(path)
    try:
        whole = True  # the previous read ended a line
        while raw := stream.readline(max_line_bytes + 2):
            if whole:
                try:
                    when = fmt.parse(raw.decode("utf-8", errors="replace").rstrip("\r\n")).timestamp
                except BadLineError:
                    when = None
                if when is None:
                    counts["untimed"] += 1
                else:
                    side = train if when < cut else test
                counts["train" if side is train else "test"] += 1
            side.write(raw)
            whole = raw.endswith(b"\n")
        if not whole:
            side.write(b"\n")
    finally:
        if path != "-":
            stream.close()
    return side
