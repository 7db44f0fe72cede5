"""The configurations shipped in plugins/fluent-bit/ say what the docs promise: Fluent Bit's forward output
with acks, the shared key, gzip, filesystem buffering and no retry limit (INTEGRATIONS.md §3.2: the default
Retry_Limit drops data); the receiver's and the server's example files load into their settings."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from logwarden.core.settings import read_config_file
from logwarden.grpc_server.settings import Settings
from logwarden.integrations.fluent.settings import FluentReceiverSettings

PLUGIN = Path(__file__).resolve().parents[3] / "plugins" / "fluent-bit"


def _classic(path: Path) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if m := re.fullmatch(r"\[(\w+)\]", line):
            current = sections.setdefault(m.group(1), {})
        else:
            key, _, value = line.partition(" ")
            current[key.lower()] = value.strip()
    return sections


def test_edge_forward_output_yaml_and_classic_agree():
    yaml_out = yaml.safe_load((PLUGIN / "fluent-bit-edge.yaml").read_text())["pipeline"]["outputs"][0]
    classic = _classic(PLUGIN / "fluent-bit-edge.conf")
    for out in (yaml_out, classic["OUTPUT"]):
        out = {k.lower(): str(v).lower() for k, v in out.items()}
        assert out["name"] == "forward" and out["require_ack_response"] == "true"
        assert out["compress"] == "gzip" and out["retry_limit"] == "no_limits"
        assert out["shared_key"] == "${logwarden_shared_key}"
    inputs = yaml.safe_load((PLUGIN / "fluent-bit-edge.yaml").read_text())["pipeline"]["inputs"]
    assert inputs[0]["storage.type"] == classic["INPUT"]["storage.type"] == "filesystem"


def test_otlp_output_uses_grpc_with_the_bearer_token():
    out = yaml.safe_load((PLUGIN / "fluent-bit-otlp.yaml").read_text())["pipeline"]["outputs"][0]
    classic = {k.lower(): v for k, v in _classic(PLUGIN / "fluent-bit-otlp.conf")["OUTPUT"].items()}
    assert out["name"] == classic["name"] == "opentelemetry"
    assert out["grpc"] in (True, "on") and classic["grpc"] == "on"  # PyYAML reads YAML 1.1's on as true
    assert out["header"] == classic["header"] == "authorization Bearer ${LOGWARDEN_TOKEN}"


def test_receiver_and_server_examples_load(tmp_path):
    data = read_config_file(PLUGIN / "logwarden-receiver.yaml", FluentReceiverSettings.config_section)
    data = {k: v for k, v in data.items() if not k.endswith("_file")}
    settings = FluentReceiverSettings(**data)
    assert (settings.next_hop, settings.message_keys) == ("elasticsearch", ["log", "message"])
    server = read_config_file(PLUGIN / "logwarden-server-otlp.yaml", Settings.config_section)
    server.pop("auth_tokens_file")
    assert Settings(**server).otlp.enabled
