"""``logwarden serve``: flags override the config file and ``LOGWARDEN_*`` environment variables."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from logwarden.core.errors import LogWardenError

# flag → settings field (flags left out keep the file / environment / default value)
FLAGS = {
    "host": "host",
    "port": "grpc_port",
    "http_port": "http_port",
    "metrics_port": "metrics_port",
    "model": "model_path",
    "version": "model_version",
    "backend": "model_backend",
    "device": "model_device",
    "batch_wait_ms": "batch_wait_ms",
    "batch_max_events": "batch_max_events",
    "queue_max_events": "queue_max_events",
    "max_request_bytes": "max_request_bytes",
    "max_events_per_request": "max_events_per_request",
    "window_size": "window_size",
    "window_ttl": "window_ttl_s",
    "window_max_sessions": "window_max_sessions",
    "redis_url": "redis_url",
    "tls_cert": "tls_cert",
    "tls_key": "tls_key",
    "tls_client_ca": "tls_client_ca",
    "label_db": "label_db",
    "log_level": "log_level",
    "shutdown_grace": "shutdown_grace_s",
}


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="run the gRPC scoring server")
    p.add_argument("--config", type=Path, help="YAML or TOML settings file")
    p.add_argument("--host")
    p.add_argument("--port", type=int, help="gRPC port (0 = any free port; the log says which)")
    p.add_argument("--http-port", type=int, help="HTTP/JSON gateway port")
    p.add_argument("--metrics-port", type=int, help="standalone Prometheus /metrics port")
    p.add_argument("--model", type=Path, help="model root or version directory")
    p.add_argument("--version", help="model version (default: the newest)")
    p.add_argument("--backend", choices=["onnx", "torch"])
    p.add_argument("--device")
    p.add_argument("--batch-wait-ms", type=float)
    p.add_argument("--batch-max-events", type=int)
    p.add_argument("--queue-max-events", type=int)
    p.add_argument("--max-request-bytes", type=int)
    p.add_argument("--max-events-per-request", type=int)
    p.add_argument("--window-size", type=int)
    p.add_argument("--window-ttl", type=float, help="seconds")
    p.add_argument("--window-max-sessions", type=int)
    p.add_argument("--redis-url")
    p.add_argument("--tls-cert", type=Path)
    p.add_argument("--tls-key", type=Path)
    p.add_argument("--tls-client-ca", type=Path, help="require client certificates signed by this CA (mTLS)")
    p.add_argument(
        "--auth-tokens-file",
        type=Path,
        help="file with one bearer token per line (tokens never go on the command line)",
    )
    p.add_argument(
        "--label-db", type=Path, help="SQLite label store (created if absent); without it SubmitLabels is UNIMPLEMENTED"
    )
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument("--shutdown-grace", type=float, help="seconds to drain on SIGTERM")
    p.set_defaults(func=cmd_serve)


def _tokens(path: Path) -> list[str]:
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as exc:
        raise LogWardenError(f"cannot read auth tokens file {path}: {exc.strerror}") from exc
    return [t.strip() for t in lines if t.strip() and not t.startswith("#")]


def cmd_serve(args: argparse.Namespace) -> int:
    from logwarden.grpc_server.observability import configure_logging
    from logwarden.grpc_server.server import LogWardenServer
    from logwarden.grpc_server.settings import load_settings

    overrides = {field: getattr(args, flag) for flag, field in FLAGS.items()}
    if args.auth_tokens_file:
        overrides["auth_tokens"] = _tokens(args.auth_tokens_file)
    settings = load_settings(args.config, **overrides)
    configure_logging(settings.log_level)
    asyncio.run(LogWardenServer(settings).serve())
    return 0
