"""Server settings: one typed object. Precedence: defaults < config file (YAML/TOML) < ``LOGWARDEN_*``
environment variables < CLI flags (passed as overrides).

Auth tokens are ``SecretStr``: they never appear in logs, reprs or ``model_dump_json()``.
Environment lists are JSON (``LOGWARDEN_AUTH_TOKENS='["t1","t2"]'``).
"""

from __future__ import annotations

import json
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from logwarden.core.errors import LogWardenError

_FILE_DATA: ContextVar[dict[str, Any] | None] = ContextVar("logwarden_settings_file", default=None)


class Settings(BaseSettings):
    """Everything ``logwarden serve`` can be told; field docs are the reference."""

    model_config = SettingsConfigDict(env_prefix="LOGWARDEN_", extra="forbid", validate_default=True)

    host: str = Field("127.0.0.1", description="interface to listen on (0.0.0.0 for all)")
    grpc_port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 = pick a free one)")
    http_port: int | None = Field(None, ge=0, le=65535, description="HTTP/JSON gateway port (None = no gateway)")
    metrics_port: int | None = Field(None, ge=0, le=65535, description="standalone Prometheus /metrics port")

    model_path: Path = Field(Path("models/hdfs-demo"), description="model root (versions inside) or a version dir")
    model_version: str | None = Field(None, description="version to serve (None = the newest)")
    model_backend: Literal["onnx", "torch"] = "onnx"
    model_device: str = Field("auto", description="torch backend device: auto, cpu, cuda")

    batch_wait_ms: float = Field(
        0.0,
        ge=0,
        le=1000,
        description="longest wait to fill a model batch (0: a batch is "
        "what queued while the previous one ran; on a GPU a few ms fill bigger batches)",
    )
    batch_max_events: int = Field(4096, ge=1, description="events per model batch")
    queue_max_events: int = Field(65536, ge=1, description="queued events before callers get RESOURCE_EXHAUSTED")

    max_request_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="largest gRPC message accepted")
    max_events_per_request: int = Field(2000, ge=1)
    max_message_bytes: int = Field(64 * 1024, ge=1, description="largest single log line")
    max_field_bytes: int = Field(1024, ge=1, description="largest id / source / session key / attribute")
    max_attributes: int = Field(64, ge=0, description="attributes per event")
    max_concurrent_rpcs: int | None = Field(1024, ge=1, description="calls in progress; more get RESOURCE_EXHAUSTED")

    window_size: int = Field(128, ge=1, description="stream mode: log keys kept per (source, session)")
    window_ttl_s: float = Field(3600.0, gt=0, description="stream mode: idle window lifetime")
    window_max_sessions: int = Field(100_000, ge=1, description="stream mode: windows kept (LRU eviction)")
    redis_url: str | None = Field(None, description="shared window store (None = in memory)")

    tls_cert: Path | None = Field(None, description="PEM certificate chain (TLS when set)")
    tls_key: Path | None = Field(None, description="PEM private key")
    tls_client_ca: Path | None = Field(None, description="PEM CA bundle: clients must present a cert (mTLS)")
    auth_tokens: list[SecretStr] = Field(default_factory=list, description="bearer tokens (empty = no auth)")
    auth_health: bool = Field(False, description="also require a token for the health service")

    label_db: Path | None = Field(
        None,
        description="SQLite label store, created if absent; labels recalibrate K per "
        "source (None = no label store: SubmitLabels answers UNIMPLEMENTED)",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_grace_s: float = Field(30.0, ge=0, description="SIGTERM: time to drain in-flight calls")

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca (mTLS) needs tls_cert and tls_key")
        if self.max_events_per_request > self.queue_max_events:
            raise ValueError("max_events_per_request must not exceed queue_max_events")
        if any(not t.get_secret_value().strip() for t in self.auth_tokens):
            raise ValueError("auth_tokens must not contain empty tokens")
        return self

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _FileSource(settings_cls)


class _FileSource(PydanticBaseSettingsSource):
    """The config file's values (read by ``load_settings``), below the environment."""

    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ is used instead
        return (_FILE_DATA.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_DATA.get() or {})


def read_config_file(path: Path) -> dict[str, Any]:
    """A YAML (.yaml/.yml), TOML (.toml) or JSON file holding one mapping of settings."""
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise LogWardenError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text) or {}
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise LogWardenError(f"config file {path} does not parse: {exc}") from exc
    if not isinstance(data, dict):
        raise LogWardenError(f"config file {path} must hold a mapping of settings")
    return data.get("server", data) if isinstance(data.get("server"), dict) else data


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; ``overrides`` (CLI flags) with value None are left out."""
    data = read_config_file(config_file) if config_file else {}
    token = _FILE_DATA.set(data)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise LogWardenError(f"invalid server settings: {exc}") from exc
    finally:
        _FILE_DATA.reset(token)
