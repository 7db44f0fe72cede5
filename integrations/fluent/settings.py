"""``logwarden fluent-receiver`` settings: defaults < config file (optionally under ``fluent_receiver:``) <
``LOGWARDEN_FLUENT_RECEIVER_*`` environment < flags. Secrets (shared key, users' passwords, the scorer's token
and the next hop's) come from the file, the environment or ``*_file`` flags only."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import CliSuppress, SettingsConfigDict

from logwarden.core.settings import CommandSettings
from logwarden.integrations.outputs.settings import NextHopSettings


class FluentReceiverSettings(CommandSettings, NextHopSettings):
    """Everything ``logwarden fluent-receiver`` can be told; field descriptions are the reference."""

    model_config = SettingsConfigDict(env_prefix="LOGWARDEN_FLUENT_RECEIVER_", extra="forbid", validate_default=True)
    config_section: ClassVar[str] = "fluent_receiver"

    host: str = Field("127.0.0.1", description="interface to listen on (0.0.0.0 for all)")
    port: int = Field(24224, ge=0, le=65535, description="Forward protocol port (0 = pick a free one)")
    http_port: int | None = Field(
        2021, ge=0, le=65535, description="health (/healthz, /readyz) and Prometheus /metrics port (null = none)"
    )
    tls_cert: Path | None = Field(None, description="PEM certificate chain: TLS on the Forward port when set")
    tls_key: Path | None = Field(None, description="PEM private key")
    tls_client_ca: Path | None = Field(None, description="PEM CA bundle: clients must present a certificate (mTLS)")
    shared_key: CliSuppress[SecretStr | None] = Field(None, description="shared key: clients must handshake")
    shared_key_file: Path | None = Field(None, description="file holding the shared key")
    server_hostname: str = Field(
        "logwarden-receiver", description="our hostname in the handshake's PONG (must differ from the clients')"
    )
    users: CliSuppress[dict[str, SecretStr]] = Field(
        default_factory=dict, description="username -> password (with a shared key; empty = no user auth)"
    )
    users_file: Path | None = Field(None, description="file of 'username:password' lines (# comments)")

    scorer: str = Field("127.0.0.1:50051", description="scoring server's gRPC address")
    scorer_token: CliSuppress[SecretStr | None] = Field(None, description="bearer token for the scorer")
    scorer_token_file: Path | None = Field(None, description="file holding the scorer's token")
    scorer_tls: bool = Field(False, description="TLS to the scorer")
    scorer_ca_file: Path | None = Field(None, description="CA bundle to verify the scorer")
    passthrough: bool = Field(False, description="scoring off: records go on marked unscored (measures the receiver)")
    score_budget_s: float = Field(
        5.0, gt=0, description="seconds a chunk may wait for the scorer; then its records go on unscored"
    )
    score_timeout_s: float = Field(2.0, gt=0, description="seconds per scoring try")

    message_keys: list[str] = Field(["log", "message"], min_length=1, description="record keys holding the line")
    source_key: str | None = Field(None, description="record key (dotted) of the source; null = the tag")
    session_key: str | None = Field(None, description="record key (dotted) of the session; null = the model's rule")
    model: str = Field("", description="model route for every record ('' = the server's default or its rules)")
    model_key: str | None = Field(None, description="record key (dotted) whose value is the model route")

    max_frame_bytes: int = Field(32 << 20, ge=1024, description="largest Forward frame; larger ones close the link")
    max_chunk_bytes: int = Field(64 << 20, ge=1024, description="largest chunk once decompressed")
    max_connections: int = Field(1024, ge=1, description="open client connections; more wait")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")
    shutdown_grace_s: float = Field(30.0, ge=0, description="SIGTERM: seconds to finish and ack chunks in flight")

    @model_validator(mode="after")
    def _check(self) -> FluentReceiverSettings:
        if self.shared_key_file is not None:
            self.shared_key = SecretStr(_read(self.shared_key_file, "shared_key_file").strip())
            self.shared_key_file = None
        if self.scorer_token_file is not None:
            self.scorer_token = SecretStr(_read(self.scorer_token_file, "scorer_token_file").strip())
            self.scorer_token_file = None
        if self.users_file is not None:
            for line in _read(self.users_file, "users_file").splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    user, sep, password = line.strip().partition(":")
                    if not sep or not user:
                        raise ValueError("users_file lines are 'username:password'")
                    self.users[user] = SecretStr(password)
            self.users_file = None
        if self.users and self.shared_key is None:
            raise ValueError("users (username/password) need a shared_key, as in Fluent Bit")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        return self


def _read(path: Path, what: str) -> str:
    try:
        return Path(path).read_text("utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror}") from None
