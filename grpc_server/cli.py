"""``logwarden serve``: every server setting is a flag (see ``settings.Settings``)."""

from __future__ import annotations

import argparse
import asyncio

from logwarden.core.settings import add_flags, load


def register(subparsers) -> None:
    from logwarden.grpc_server.settings import Settings

    p = subparsers.add_parser(
        "serve",
        help="run the gRPC scoring server (and its HTTP/JSON gateway)",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    source = add_flags(p, Settings)
    p.set_defaults(func=lambda args: cmd_serve(args, source))


def cmd_serve(args: argparse.Namespace, source) -> int:
    from logwarden.grpc_server.observability import configure_logging
    from logwarden.grpc_server.server import LogWardenServer
    from logwarden.grpc_server.settings import Settings

    settings = load(Settings, args=_settings_args(args), source=source)
    configure_logging(settings.log_level)
    asyncio.run(LogWardenServer(settings).serve())
    return 0


def _settings_args(args: argparse.Namespace) -> argparse.Namespace:
    """The parsed flags without the CLI's own bookkeeping (the subcommand name and its function)."""
    return argparse.Namespace(**{k: v for k, v in vars(args).items() if k not in ("command", "func")})
