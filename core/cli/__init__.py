"""The ``logwarden`` command: one module per subcommand, each with one typed settings object.

Every subcommand module has ``register(subparsers)``; ``main`` runs the chosen one and turns a
``LogWardenError`` into a one-line message and exit code 2. Heavy imports (torch, the model stack)
happen inside the commands, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from logwarden.core.errors import LogWardenError

SUBCOMMANDS = (
    "logwarden.core.cli.generate",
    "logwarden.core.cli.split",
    "logwarden.core.cli.train",
    "logwarden.core.cli.score",
    "logwarden.core.cli.evaluate",
    "logwarden.core.cli.info",
    "logwarden.core.cli.labels",
    "logwarden.core.cli.retrain",
    "logwarden.grpc_server.cli",
    "logwarden.integrations.elasticsearch.cli",
    "logwarden.integrations.fluent.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logwarden", description="Log anomaly detection with a small language model over log templates."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
    except ModuleNotFoundError as exc:  # `pip install logwarden` alone is the client library
        print(
            f"logwarden: the command needs the engine (missing module {exc.name!r}): pip install 'logwarden[server]'",
            file=sys.stderr,
        )
        return 2
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except LogWardenError as exc:
        print(f"logwarden {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


__all__ = ["build_parser", "main"]
