"""Server settings: one typed object (``core.settings``): defaults < config file (YAML/TOML/JSON, optionally
under ``server:``) < ``LOGWARDEN_*`` environment variables < ``logwarden serve`` flags.

Every field has a flag (``--kebab-case`` of its name; a few keep a short alias such as ``--model`` and
``--port``) whose ``--help`` shows this description and the default. Auth tokens are ``SecretStr``: they
never appear in logs, reprs or ``model_dump_json()``, and never on a command line (``--auth-tokens-file``
names a file of them). Environment lists are JSON (``LOGWARDEN_AUTH_TOKENS='["t1","t2"]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import CliSuppress

from logwarden.core.settings import CommandSettings, load
from logwarden.grpc_server.rpc.otlp import OtlpSettings
from logwarden.grpc_server.service.routing import DEFAULT, RouteSpec, check_route_name


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(CommandSettings):
    """Everything ``logwarden serve`` can be told; field descriptions are the reference."""

    config_section: ClassVar[str] = "server"

    host: str = Field("127.0.0.1", description="interface to listen on (0.0.0.0 for all)")
    grpc_port: int = Field(
        50051,
        ge=0,
        le=65535,
        validation_alias=_alias("grpc_port", "port"),
        description="gRPC port (0 = pick a free one; the log says which)",
    )
    http_port: int | None = Field(None, ge=0, le=65535, description="HTTP/JSON gateway port (null = no gateway)")
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="standalone Prometheus /metrics port (null = only on the HTTP gateway), served with the same "
        "TLS and bearer tokens as the gateway",
    )

    model_path: Path = Field(
        Path("models/default"),
        validation_alias=_alias("model_path", "model"),
        description="model root (versions inside) or a version directory",
    )
    model_version: str | None = Field(
        None, validation_alias=_alias("model_version", "version"), description="version to serve (null = the newest)"
    )
    model_backend: Literal["onnx", "torch"] = Field(
        "onnx", validation_alias=_alias("model_backend", "backend"), description="inference backend"
    )
    model_device: str = Field(
        "auto", validation_alias=_alias("model_device", "device"), description="torch backend device: auto, cpu, cuda"
    )

    batch_wait_ms: float = Field(
        0.0,
        ge=0,
        le=1000,
        description="longest wait to fill a model batch (0: a batch is "
        "what queued while the previous one ran; on a GPU a few ms fill bigger batches)",
    )
    batch_max_events: int = Field(4096, ge=1, description="events per model batch")
    queue_max_events: int = Field(65536, ge=1, description="queued events before callers get RESOURCE_EXHAUSTED")

    max_request_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="largest gRPC message or HTTP body")
    max_events_per_request: int = Field(2000, ge=1, description="events (or labels) per request")
    max_message_bytes: int = Field(64 * 1024, ge=1, description="largest single log line")
    max_field_bytes: int = Field(1024, ge=1, description="largest id / source / session key / attribute")
    max_attributes: int = Field(64, ge=0, description="attributes per event")
    max_concurrent_rpcs: int | None = Field(
        1024, ge=1, description="gRPC calls in progress; more get RESOURCE_EXHAUSTED (null = no limit)"
    )
    http_max_connections: int = Field(
        1024, ge=1, description="open HTTP connections (gateway, and metrics port each); more are closed at once"
    )
    http_header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="seconds an HTTP connection has to send a request's headers, from connecting or from its "
        "previous answer; slower (or idle) connections are closed",
    )
    http_read_timeout_s: float = Field(
        30.0, gt=0, description="seconds to receive an HTTP request's body; slower ones get 408 and are closed"
    )
    parser_cache_max_bytes: int = Field(
        64 * 1024 * 1024,
        ge=0,
        description="bytes of masked lines each template-parser cache (seen, unseen) keeps; the model bounds "
        "their entries too",
    )

    window_size: int = Field(128, ge=1, description="stream mode: log keys kept per (source, session)")
    window_ttl_s: float = Field(
        3600.0,
        gt=0,
        validation_alias=_alias("window_ttl_s", "window_ttl"),
        description="stream mode: idle window lifetime in seconds",
    )
    window_max_sessions: int = Field(100_000, ge=1, description="stream mode: windows kept (LRU eviction)")
    window_max_bytes: int = Field(
        256 * 1024 * 1024,
        ge=1,
        description="stream mode: bytes of windows kept in memory (estimated; LRU eviction); a Redis store is "
        "bounded by its own maxmemory",
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL of a window store shared by replicas (null = in memory); a URL with a password "
        "belongs in the config file or the environment; idempotent answers are shared there too",
    )
    window_scope_ttl_s: float = Field(
        600.0, gt=0, description="stream mode, ad-hoc window scopes (a search id): idle window lifetime in seconds"
    )
    window_scope_max_sessions: int = Field(
        10_000, ge=1, description="windows one ad-hoc scope may keep (its own LRU; it never evicts other scopes')"
    )
    window_scope_max_bytes: int = Field(
        32 * 1024 * 1024, ge=1, description="bytes one ad-hoc scope's windows may take in memory (estimated)"
    )
    window_scopes_max: int = Field(100, ge=1, description="ad-hoc window scopes kept (the least recently used go)")
    idempotency_ttl_s: float = Field(
        600.0, gt=0, description="how long the answer of a request with an idempotency key is kept for its replays"
    )
    idempotency_max_entries: int = Field(100_000, ge=1, description="idempotent answers kept in memory")
    idempotency_max_bytes: int = Field(
        64 * 1024 * 1024, ge=1, description="bytes of idempotent answers kept in memory (estimated)"
    )
    models: dict[str, RouteSpec] = Field(
        default_factory=dict,
        description='more models to serve, by route name, beside the default one (model_path): {"hdfs": {"path": '
        '"models/hdfs", "rules": [{"index": "hdfs-*"}]}}; events go to the first route with a rule their '
        "attributes match, else the default; a request may name its route (ScoreRequest.model)",
    )

    tls_cert: Path | None = Field(None, description="PEM certificate chain (TLS on gRPC and HTTP when set)")
    tls_key: Path | None = Field(None, description="PEM private key")
    tls_client_ca: Path | None = Field(
        None, description="PEM CA bundle: clients must present a certificate signed by it (mTLS)"
    )
    auth_tokens: CliSuppress[list[SecretStr]] = Field(
        default_factory=list, description="bearer tokens (empty = no auth); from the file or environment only"
    )
    auth_tokens_file: Path | None = Field(
        None,
        description="file with one bearer token per line (# comments), "
        "added to auth_tokens; tokens never go on the command line",
    )
    admin_tokens: CliSuppress[list[SecretStr]] = Field(
        default_factory=list,
        description="bearer tokens for admin calls (model reload), also good for every other call; with auth on "
        "and none set, reload is refused over the API (SIGHUP still reloads); from the file or environment only",
    )
    admin_tokens_file: Path | None = Field(
        None, description="file with one admin token per line (# comments), added to admin_tokens"
    )
    auth_health: bool = Field(False, description="also require a token for the health service and probes")

    label_db: Path | None = Field(
        None,
        description="SQLite label store, created if absent; labels recalibrate "
        "K per source (null = no label store: SubmitLabels answers UNIMPLEMENTED)",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")
    shutdown_grace_s: float = Field(
        30.0,
        ge=0,
        validation_alias=_alias("shutdown_grace_s", "shutdown_grace"),
        description="SIGTERM: seconds to drain in-flight calls",
    )

    otlp: OtlpSettings = Field(
        default_factory=OtlpSettings, description="OTLP/gRPC logs ingest and its next hop (grpc_server/rpc/otlp.py)"
    )

    @field_validator("models")
    @classmethod
    def _routes(cls, models: dict[str, RouteSpec]) -> dict[str, RouteSpec]:
        for name in models:
            check_route_name(name)
            if name == DEFAULT:
                raise ValueError(f"the route name {DEFAULT!r} is the model_path model's")
        return models

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.auth_tokens_file is not None:
            self.auth_tokens = [*self.auth_tokens, *(SecretStr(t) for t in read_tokens(self.auth_tokens_file))]
            self.auth_tokens_file = None  # read once: the object holds the tokens now
        if self.admin_tokens_file is not None:
            self.admin_tokens = [*self.admin_tokens, *(SecretStr(t) for t in read_tokens(self.admin_tokens_file))]
            self.admin_tokens_file = None
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca (mTLS) needs tls_cert and tls_key")
        if self.max_events_per_request > self.queue_max_events:
            raise ValueError("max_events_per_request must not exceed queue_max_events")
        if any(not t.get_secret_value().strip() for t in [*self.auth_tokens, *self.admin_tokens]):
            raise ValueError("auth_tokens and admin_tokens must not contain empty tokens")
        return self

    @property
    def tokens(self) -> list[str]:
        """Every token that may call the server (scoring and admin)."""
        return [t.get_secret_value() for t in [*self.auth_tokens, *self.admin_tokens]]

    @property
    def admin_token_values(self) -> list[str]:
        return [t.get_secret_value() for t in self.admin_tokens]


def read_tokens(path: Path) -> list[str]:
    """Tokens from a file, one per line; blank lines and ``#`` comments are skipped."""
    try:
        lines = Path(path).read_text("utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read auth tokens file {path}: {exc.strerror}") from None
    return [t.strip() for t in lines if t.strip() and not t.lstrip().startswith("#")]


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """The server settings from a config file, the environment and keyword overrides (None values left out)."""
    return load(Settings, config_file=config_file, **overrides)
