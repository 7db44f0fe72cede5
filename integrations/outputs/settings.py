"""The next hop's settings (shared by ``logwarden fluent-receiver`` and the server's OTLP ingest) and the
factory that builds the configured writer. Secrets (shared key, passwords, API key, HEC token) come from the
config file, the environment or a ``*_file`` flag naming a file that holds them, never from a flag."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import CliSuppress

if TYPE_CHECKING:  # the server's settings import this module: no msgpack needed until a next hop is built
    from logwarden.integrations.outputs.base import NextHop

SECRETS = ("forward_shared_key", "forward_password", "es_api_key", "es_password", "hec_token")


def _secret(description: str):
    return Field(None, description=description)


class NextHopSettings(BaseModel):
    """Where enriched records go, and how."""

    next_hop: Literal["forward", "elasticsearch", "splunk_hec"] = Field(
        "forward", description="next hop: forward (Fluentd/Fluent Bit in_forward), elasticsearch (_bulk), splunk_hec"
    )
    next_hop_timeout_s: float = Field(10.0, gt=0, description="next hop: seconds per try")
    next_hop_budget_s: float = Field(
        30.0, gt=0, description="next hop: seconds to keep retrying a chunk before giving up (the chunk is not acked)"
    )

    forward_host: str = Field("127.0.0.1", description="forward: aggregator host")
    forward_port: int = Field(24224, ge=1, le=65535, description="forward: aggregator port")
    forward_shared_key: CliSuppress[SecretStr | None] = _secret("forward: shared key (handshake when set)")
    forward_shared_key_file: Path | None = Field(None, description="forward: file holding the shared key")
    forward_self_hostname: str = Field("logwarden", description="forward: our hostname in the handshake")
    forward_username: str = Field("", description="forward: username (with a shared key)")
    forward_password: CliSuppress[SecretStr | None] = _secret("forward: password")
    forward_password_file: Path | None = Field(None, description="forward: file holding the password")
    forward_tls: bool = Field(False, description="forward: TLS to the aggregator")
    forward_ca_file: Path | None = Field(None, description="forward: CA bundle to verify the aggregator")
    forward_tls_verify: bool = Field(True, description="forward: verify the aggregator's certificate")
    forward_compress: Literal["none", "gzip"] = Field(
        "none", description="forward: gzip = CompressedPackedForward frames"
    )
    forward_retain_metadata: bool = Field(
        True,
        description="forward: keep Fluent Bit's [[time, metadata], record] entry shape (off for Fluentd "
        "and other receivers that only read [time, record])",
    )
    forward_connections: int = Field(4, ge=1, description="forward: connections to the aggregator")

    es_url: str = Field("http://127.0.0.1:9200", description="elasticsearch: cluster URL")
    es_index: str = Field("logs-logwarden", description="elasticsearch: index or data stream")
    es_api_key: CliSuppress[SecretStr | None] = _secret("elasticsearch: API key")
    es_api_key_file: Path | None = Field(None, description="elasticsearch: file holding the API key")
    es_username: str | None = Field(None, description="elasticsearch: basic auth user")
    es_password: CliSuppress[SecretStr | None] = _secret("elasticsearch: basic auth password")
    es_password_file: Path | None = Field(None, description="elasticsearch: file holding the password")
    es_ca_file: Path | None = Field(None, description="elasticsearch: CA bundle")
    es_tls_verify: bool = Field(True, description="elasticsearch: verify the cluster's certificate")
    es_pipeline: str | None = Field(None, description="elasticsearch: ingest pipeline")
    es_tag_key: str | None = Field(None, description="elasticsearch: add the tag to documents under this key")
    es_max_retries: int = Field(3, ge=0, description="elasticsearch: retries of retryable item refusals")

    hec_url: str = Field("https://127.0.0.1:8088", description="splunk_hec: HEC base URL")
    hec_token: CliSuppress[SecretStr | None] = _secret("splunk_hec: HEC token")
    hec_token_file: Path | None = Field(None, description="splunk_hec: file holding the HEC token")
    hec_index: str | None = Field(None, description="splunk_hec: index (null = the token's default)")
    hec_sourcetype: str | None = Field("logwarden", description="splunk_hec: sourcetype")
    hec_channel: str | None = Field(None, description="splunk_hec: X-Splunk-Request-Channel")
    hec_ca_file: Path | None = Field(None, description="splunk_hec: CA bundle")
    hec_tls_verify: bool = Field(True, description="splunk_hec: verify Splunk's certificate")

    @model_validator(mode="after")
    def _read_secret_files(self) -> NextHopSettings:
        for name in SECRETS:
            path = getattr(self, f"{name}_file")
            if path is not None:
                try:
                    value = Path(path).read_text("utf-8").strip()
                except OSError as exc:
                    raise ValueError(f"cannot read {name}_file {path}: {exc.strerror}") from None
                setattr(self, name, SecretStr(value))
                setattr(self, f"{name}_file", None)
        if self.next_hop == "splunk_hec" and self.hec_token is None:
            raise ValueError("next_hop splunk_hec needs hec_token (or hec_token_file)")
        return self


def _plain(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


def build_next_hop(s: NextHopSettings) -> NextHop:
    """The configured next-hop writer (not started)."""
    if s.next_hop == "forward":
        from logwarden.integrations.outputs.forward import ForwardConfig, ForwardOutput

        return ForwardOutput(
            ForwardConfig(
                host=s.forward_host,
                port=s.forward_port,
                shared_key=_plain(s.forward_shared_key),
                self_hostname=s.forward_self_hostname,
                username=s.forward_username,
                password=_plain(s.forward_password) or "",
                tls=s.forward_tls,
                ca_file=s.forward_ca_file,
                tls_verify=s.forward_tls_verify,
                compress=s.forward_compress,
                retain_metadata=s.forward_retain_metadata,
                connections=s.forward_connections,
                timeout_s=s.next_hop_timeout_s,
                budget_s=s.next_hop_budget_s,
            )
        )
    if s.next_hop == "elasticsearch":
        from logwarden.integrations.outputs.elasticsearch import ElasticsearchConfig, ElasticsearchOutput

        return ElasticsearchOutput(
            ElasticsearchConfig(
                url=s.es_url,
                index=s.es_index,
                api_key=_plain(s.es_api_key),
                username=s.es_username,
                password=_plain(s.es_password),
                ca_file=s.es_ca_file,
                tls_verify=s.es_tls_verify,
                pipeline=s.es_pipeline,
                tag_key=s.es_tag_key,
                max_retries=s.es_max_retries,
                timeout_s=s.next_hop_timeout_s,
            )
        )
    from logwarden.integrations.outputs.splunk_hec import HecConfig, SplunkHecOutput

    return SplunkHecOutput(
        HecConfig(
            url=s.hec_url,
            token=_plain(s.hec_token) or "",
            index=s.hec_index,
            sourcetype=s.hec_sourcetype,
            channel=s.hec_channel,
            ca_file=s.hec_ca_file,
            tls_verify=s.hec_tls_verify,
            timeout_s=s.next_hop_timeout_s,
            budget_s=s.next_hop_budget_s,
        )
    )
