"""``logwarden es-proxy``: every setting is a flag (see ``settings``)."""

from __future__ import annotations

import argparse

from logwarden.core.cli.common import subcommand
from logwarden.integrations.elasticsearch.settings import ProxySettings


def register(subparsers) -> None:
    subcommand(
        subparsers,
        "es-proxy",
        ProxySettings,
        run_proxy,
        help="bulk-compatible Elasticsearch proxy that adds anomaly fields to indexed documents",
    )


def run_proxy(settings: ProxySettings, args: argparse.Namespace) -> int:
    import asyncio

    from logwarden.grpc_server.observability import configure_logging
    from logwarden.integrations.elasticsearch.proxy import EsProxy

    configure_logging(settings.log_level)
    asyncio.run(EsProxy(settings).serve())
    return 0
