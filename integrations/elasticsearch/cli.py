"""``logwarden es-proxy`` and ``logwarden es-worker``: every setting is a flag (see ``settings``)."""

from __future__ import annotations

import argparse

from logwarden.core.cli.common import subcommand
from logwarden.integrations.elasticsearch.settings import ProxySettings, WorkerSettings


def register(subparsers) -> None:
    subcommand(
        subparsers,
        "es-proxy",
        ProxySettings,
        run_proxy,
        help="bulk-compatible Elasticsearch proxy that adds anomaly fields to indexed documents",
    )
    subcommand(
        subparsers,
        "es-worker",
        WorkerSettings,
        run_worker,
        help="write session verdicts back into Elasticsearch, back-fill, and forward analysts' labels",
        extra=_worker_arguments,
    )


def _worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backfill",
        nargs=2,
        metavar=("FROM", "TO"),
        help="score the documents of this time range (ISO 8601 or epoch ms), then exit",
    )
    parser.add_argument("--once", action="store_true", help="one pass (and one label round), then exit")


def run_proxy(settings: ProxySettings, args: argparse.Namespace) -> int:
    import asyncio

    from logwarden.grpc_server.observability import configure_logging
    from logwarden.integrations.elasticsearch.proxy import EsProxy

    configure_logging(settings.log_level)
    asyncio.run(EsProxy(settings).serve())
    return 0


def run_worker(settings: WorkerSettings, args: argparse.Namespace) -> int:
    from logwarden.grpc_server.observability import configure_logging
    from logwarden.integrations.elasticsearch.worker import run

    configure_logging(settings.log_level)
    return run(settings, backfill=args.backfill, once=args.once)
