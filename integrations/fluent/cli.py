"""``logwarden fluent-receiver``: the Forward receiver that scores, enriches and re-emits Fluent Bit's records
(every setting is a flag; see ``settings.FluentReceiverSettings``)."""

from __future__ import annotations

import argparse
import asyncio

from logwarden.core.cli.common import subcommand


def register(subparsers) -> None:
    from logwarden.integrations.fluent.settings import FluentReceiverSettings

    subcommand(
        subparsers,
        "fluent-receiver",
        FluentReceiverSettings,
        run,
        help="receive Fluent Bit's forward output, score and enrich each record, re-emit it, then ack",
        description=__doc__,
    )


def run(settings, _args: argparse.Namespace) -> int:
    from logwarden.grpc_server.observability import configure_logging
    from logwarden.integrations.fluent.receiver import FluentReceiver

    configure_logging(settings.log_level)
    asyncio.run(FluentReceiver(settings).serve())
    return 0
