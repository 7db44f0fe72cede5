"""Settings of ``logwarden es-proxy`` and ``logwarden es-worker`` (``core.settings``: defaults < ``--config``
file < ``LOGWARDEN_ES_PROXY_*`` / ``LOGWARDEN_ES_WORKER_*`` environment < flags).

Secrets (the scorer's token, Elasticsearch API key and password) never go on a command line: they come
from the environment, the config file or a ``*_file`` flag naming a file that holds them.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import CliSuppress, SettingsConfigDict

from logwarden.core.settings import CommandSettings


def _secret_file(path: Path | None, what: str) -> SecretStr | None:
    if path is None:
        return None
    try:
        text = Path(path).read_text("utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read {what} file {path}: {exc.strerror}") from None
    if not text:
        raise ValueError(f"{what} file {path} is empty")
    return SecretStr(text)


class IndexRule(BaseModel):
    """Which documents of which indices are scored, and how their fields map onto a scoring event."""

    model_config = {"extra": "forbid"}

    pattern: str = Field("*", description="index, alias or data stream name pattern (fnmatch: logs-*)")
    message_field: str = Field("message", description="field holding the raw log line (dotted path)")
    source_field: str | None = Field(None, description="field naming the log source (per-source K); default the index")
    session_field: str | None = Field(None, description="field holding the session key; default the model's rule")
    model: str = Field("", description="model route; empty: the server routes by the event's 'index' attribute")
    score: bool = Field(True, description="false: documents of these indices pass through unscored and untouched")


def rule_for(rules: list[IndexRule], index: str | None) -> IndexRule | None:
    """The first rule whose pattern matches ``index`` (None: the document is not scored)."""
    if index is None:
        return None
    for rule in rules:
        if fnmatch.fnmatchcase(index, rule.pattern):
            return rule if rule.score else None
    return None


class ScorerSettings(CommandSettings):
    """How a command reaches the LogWarden scoring server (gRPC)."""

    scorer: str = Field("127.0.0.1:50051", description="scoring server gRPC target (host:port, dns:///name:port)")
    scorer_token: CliSuppress[SecretStr | None] = Field(None, description="bearer token (environment or config only)")
    scorer_token_file: Path | None = Field(None, description="file holding the scorer's bearer token")
    scorer_tls: bool = Field(False, description="TLS to the scorer")
    scorer_ca: Path | None = Field(None, description="PEM CA bundle to verify the scorer's certificate")
    scorer_timeout_s: float = Field(5.0, gt=0, description="seconds per scoring try")

    @model_validator(mode="after")
    def _scorer_secrets(self):
        token = _secret_file(self.scorer_token_file, "scorer token")
        if token is not None:
            self.scorer_token, self.scorer_token_file = token, None
        return self

    def scorer_options(self, budget_s: float) -> dict:
        """Keyword arguments of ``LogWardenClient`` / ``AsyncLogWardenClient``."""
        return {
            "token": self.scorer_token.get_secret_value() if self.scorer_token else None,
            "tls": self.scorer_tls,
            "ca_file": self.scorer_ca,
            "timeout_s": min(self.scorer_timeout_s, budget_s),
            "budget_s": budget_s,
        }


class ProxySettings(ScorerSettings):
    """``logwarden es-proxy``: a bulk-compatible proxy in front of an Elasticsearch cluster."""

    model_config = SettingsConfigDict(env_prefix="LOGWARDEN_ES_PROXY_", extra="forbid", validate_default=True)
    config_section: ClassVar[str] = "es_proxy"

    host: str = Field("127.0.0.1", description="interface to listen on (0.0.0.0 for all)")
    port: int = Field(9201, ge=0, le=65535, description="port shippers send to (0 = pick a free one)")
    upstream: str = Field("http://127.0.0.1:9200", description="the Elasticsearch cluster (http:// or https:// URL)")
    upstream_ca: Path | None = Field(None, description="PEM CA bundle to verify an https upstream")
    upstream_verify: bool = Field(True, description="verify the upstream's TLS certificate")
    upstream_timeout_s: float = Field(120.0, gt=0, description="seconds to wait for the cluster's answer")
    upstream_connections: int = Field(64, ge=1, description="connections kept to the cluster")
    tls_cert: Path | None = Field(None, description="PEM certificate chain: the proxy itself speaks https")
    tls_key: Path | None = Field(None, description="PEM private key")
    tls_client_ca: Path | None = Field(None, description="PEM CA bundle: shippers must present a certificate (mTLS)")
    score: bool = Field(True, description="score bulk documents (false: every request passes through untouched)")
    rules: list[IndexRule] = Field(
        default_factory=lambda: [IndexRule()],
        description='per index pattern, first match wins (JSON list: [{"pattern": "logs-*", "message_field": '
        '"message", "source_field": "host.name", "session_field": null, "model": ""}])',
    )
    score_budget_s: float = Field(
        2.0, gt=0, description="seconds a bulk may wait for scores; then its documents go on unscored"
    )
    max_body_bytes: int = Field(100 * 1024 * 1024, ge=1024, description="largest request body (Elasticsearch's own)")
    replay_cache_bytes: int = Field(
        64 * 1024 * 1024,
        ge=0,
        description="bytes of enriched bulks kept so that a shipper's retry of the same bulk is not scored twice",
    )
    retry_429: int = Field(
        0,
        ge=0,
        le=10,
        description="retry items the cluster answered 429 this many times inside the proxy before answering "
        "(off by default; for Fluent Bit, which drops them when another item of the chunk succeeded)",
    )
    retry_429_backoff_s: float = Field(0.5, ge=0, description="first wait before retrying 429 items (doubles)")
    metrics_port: int | None = Field(
        9465, ge=0, le=65535, description="port of /metrics, /healthz and /readyz (null: none)"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")
    shutdown_grace_s: float = Field(30.0, ge=0, description="SIGTERM: seconds to finish requests in flight")

    @model_validator(mode="after")
    def _check(self) -> ProxySettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if not self.upstream.startswith(("http://", "https://")):
            raise ValueError("upstream must be an http:// or https:// URL")
        return self


class EsConnectionSettings(CommandSettings):
    """How a command reaches Elasticsearch with the official client."""

    es_url: str = Field("http://127.0.0.1:9200", description="Elasticsearch URL(s), comma-separated")
    es_api_key: CliSuppress[SecretStr | None] = Field(None, description="API key (environment or config only)")
    es_api_key_file: Path | None = Field(None, description="file holding an Elasticsearch API key")
    es_username: str | None = Field(None, description="basic-auth user")
    es_password: CliSuppress[SecretStr | None] = Field(None, description="basic-auth password (environment or config)")
    es_password_file: Path | None = Field(None, description="file holding the basic-auth password")
    es_ca_certs: Path | None = Field(None, description="PEM CA bundle for an https cluster")
    es_verify_certs: bool = Field(True, description="verify the cluster's TLS certificate")
    es_timeout_s: float = Field(60.0, gt=0, description="seconds per Elasticsearch request")

    @model_validator(mode="after")
    def _es_secrets(self):
        key = _secret_file(self.es_api_key_file, "Elasticsearch API key")
        if key is not None:
            self.es_api_key, self.es_api_key_file = key, None
        password = _secret_file(self.es_password_file, "Elasticsearch password")
        if password is not None:
            self.es_password, self.es_password_file = password, None
        return self

    def es_client(self, **options):
        """An ``elasticsearch.Elasticsearch`` client for these settings (transport retries 429/502/503/504)."""
        from elasticsearch import Elasticsearch

        kwargs: dict = {
            "request_timeout": self.es_timeout_s,
            "retry_on_status": (429, 502, 503, 504),
            "retry_on_timeout": True,
            "max_retries": 5,
            "verify_certs": self.es_verify_certs,
        }
        if self.es_ca_certs:
            kwargs["ca_certs"] = str(self.es_ca_certs)
        if self.es_api_key:
            kwargs["api_key"] = self.es_api_key.get_secret_value()
        elif self.es_username:
            kwargs["basic_auth"] = (self.es_username, self.es_password.get_secret_value() if self.es_password else "")
        kwargs.update(options)
        return Elasticsearch([u.strip() for u in self.es_url.split(",") if u.strip()], **kwargs)


class WorkerSettings(ScorerSettings, EsConnectionSettings):
    """``logwarden es-worker``: session verdicts, back-fill and labels, written back into Elasticsearch."""

    model_config = SettingsConfigDict(env_prefix="LOGWARDEN_ES_WORKER_", extra="forbid", validate_default=True)
    config_section: ClassVar[str] = "es_worker"

    index: str = Field("logs-*", description="index pattern, alias or data stream the worker reads and writes")
    mode: Literal["window", "pending"] = Field(
        "window",
        description="window: documents of a lagging time window after the checkpoint; pending: documents an "
        "ingest pipeline marked logwarden.status: pending",
    )
    time_field: str = Field("@timestamp", description="the documents' time field (a date)")
    message_field: str = Field("message", description="field holding the raw log line")
    source_field: str | None = Field(None, description="field naming the log source; default the index name")
    session_field: str | None = Field(
        "logwarden.session_key",
        description="field holding the session key (the proxy writes logwarden.session_key); documents "
        "without it get the key the model's rule finds in the line",
    )
    model: str = Field("", description="model route (empty: the server routes by the 'index' attribute)")
    lag_s: float = Field(60.0, ge=0, description="documents younger than this are left for later (ingest delay)")
    lookback_s: float = Field(3600.0, ge=0, description="window mode, first start: how far back to begin")
    idle_gap_s: float = Field(300.0, gt=0, description="a session with no event for this long is complete")
    poll_s: float = Field(10.0, gt=0, description="seconds between passes when caught up")
    page_size: int = Field(1000, ge=1, le=10000, description="documents per search page")
    pass_docs: int = Field(
        20000, ge=1, description="documents per pass (a pass is scored, written and checkpointed at once)"
    )
    pit_keep_alive: str = Field("5m", description="point-in-time keep-alive between pages")
    max_session_events: int = Field(10000, ge=1, description="events of one open session carried between passes")
    checkpoint_index: str = Field("logwarden-checkpoints", description="index holding the worker's checkpoints")
    name: str | None = Field(None, description="checkpoint id (default: mode and index pattern)")
    write_retries: int = Field(5, ge=0, description="retries of items Elasticsearch answered 429")
    retry_on_conflict: int = Field(3, ge=0, description="update retries on a concurrent change")
    labels: bool = Field(True, description="forward analysts' labels (logwarden.label) to the scoring server")
    label_batch: int = Field(500, ge=1, description="labels per request")
    score_budget_s: float = Field(60.0, gt=0, description="seconds a pass may wait for scores before retrying later")
    metrics_port: int | None = Field(
        9466, ge=0, le=65535, description="port of /metrics, /healthz and /readyz (null: none)"
    )
    metrics_host: str = Field("127.0.0.1", description="interface of the metrics port")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")
    progress: bool = Field(True, description="back-fill: a progress bar on standard error")

    def checkpoint_id(self) -> str:
        return self.name or f"{self.mode}:{self.index}"
