"""``logwarden labels export`` and ``logwarden retrain``: the label store from the command line.

``register(subparsers)`` adds both commands to the ``logwarden`` CLI; ``main`` runs them alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from logwarden.core.errors import LogWardenError

RETRAIN_HELP = """\
Train a NEW model version from the current one and the analysts' labels. The model artifact does not
keep its training data, so --data must give the original normal logs again (or newer normal logs of
the same format): they are parsed with the version's own template miner, so template ids stay the ones
the labels refer to. Sessions labelled 'anomaly' are left out; sessions labelled 'normal' (false
positives) that carry their key sequence are added, --fp-weight times each. Model, training,
windowing and calibration settings are the current version's; the labels used are recorded in the
new version's config.json."""


def register(subparsers) -> None:
    """Add ``labels export`` and ``retrain`` to an argparse subparsers object."""
    labels = subparsers.add_parser("labels", help="work with the analysts' label store")
    sub = labels.add_subparsers(dest="labels_command", required=True)
    e = sub.add_parser("export", help="write stored labels as JSON lines or CSV")
    e.add_argument("--db", type=Path, required=True, help="label database (SQLite file)")
    e.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    e.add_argument("--output", "-o", default="-", help="output file ('-' = standard output)")
    e.add_argument("--source", help="only labels of this source")
    e.add_argument("--since", help="only labels created at or after this ISO 8601 time (UTC unless zoned)")
    e.set_defaults(func=cmd_export)

    r = subparsers.add_parser(
        "retrain", help="new model version from labels and the normal logs", description=RETRAIN_HELP
    )
    r.add_argument("--model", type=Path, required=True, help="model root (the newest version is the base)")
    r.add_argument("--version", help="base version (default: the newest)")
    r.add_argument("--db", type=Path, required=True, help="label database (SQLite file)")
    r.add_argument(
        "--data",
        nargs="+",
        required=True,
        metavar="LOGS",
        help="the normal training logs (files, globs, gzip); required, see above",
    )
    r.add_argument("--format", help="must match the model's line format (default: the model's)")
    r.add_argument("--epochs", type=int, help="training epochs (default: the base version's)")
    r.add_argument("--fp-weight", type=int, default=5, help="copies of each false-positive session in training")
    r.add_argument("--max-line-bytes", type=int, default=65536, help="longer lines are skipped and reported")
    r.add_argument("--no-onnx", action="store_true", help="skip the ONNX export")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(func=cmd_retrain)


def cmd_export(args) -> int:
    from logwarden.core.labels.sqlite import SqliteLabelStore

    with SqliteLabelStore(args.db, create=False) as store:
        filters = {"source": args.source, "since": args.since}
        if args.output == "-":
            n = store.export(sys.stdout, args.format, **filters)
        else:
            try:
                handle = open(args.output, "w", encoding="utf-8", newline="")  # noqa: SIM115
            except OSError as exc:
                raise LogWardenError(f"cannot write {args.output}: {exc.strerror}") from exc
            with handle:
                n = store.export(handle, args.format, **filters)
    print(f"exported {n} labels", file=sys.stderr)
    return 0


def cmd_retrain(args) -> int:
    from logwarden.core.artifact import store as artifact
    from logwarden.core.labels.retrain import retrain
    from logwarden.core.labels.sqlite import SqliteLabelStore
    from logwarden.core.parsing.formats import get_format
    from logwarden.core.parsing.reader import ReadStats, read_records

    base = artifact.resolve(args.model, args.version)
    spec = artifact.read_config(base).config["line_format"]
    fmt = get_format(spec)
    if args.format and get_format(args.format).spec != fmt.spec:
        raise LogWardenError(f"model {base.name} was trained on format {spec!r}, not {args.format!r}")
    stats = ReadStats()

    def report(source: str, line_no: int, reason: str) -> None:
        if stats.bad_lines <= 5:
            print(f"warning: {source}:{line_no}: {reason}", file=sys.stderr)

    records = read_records(args.data, fmt, max_line_bytes=args.max_line_bytes, stats=stats, on_bad_line=report)
    with SqliteLabelStore(args.db, create=False) as store:
        result = retrain(
            base,
            store,
            records,
            epochs=args.epochs,
            fp_weight=args.fp_weight,
            onnx=not args.no_onnx,
            progress=not args.quiet,
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logwarden", description=__doc__)
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LogWardenError as exc:
        print(f"logwarden {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
