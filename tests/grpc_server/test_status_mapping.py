"""The server never answers a 4xx for a transient condition: every error type of the scoring service is in the
documented table (docs/shippers.md) with the HTTP status and gRPC code it really carries, each transient one
is retried by every shipper that retries (their own libraries' rules where they run here: the OpenTelemetry
exporter's retryable codes, elastic-transport's retry statuses, the LogWarden client's), and every permanent
one is a client error that none of those libraries retries."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import elastic_transport
import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.exporter import _RETRYABLE_ERROR_CODES as OTEL_RETRYABLE

import logwarden.grpc_server
from logwarden.grpc_server.service.errors import ServiceError
from logwarden.integrations.client import grpc_client, http_client

DOC = Path(__file__).resolve().parents[2] / "docs" / "shippers.md"
TRANSIENT_HTTP = {429, 503, 504}
TRANSIENT_GRPC = {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
ES_RETRY = set(inspect.signature(elastic_transport.Transport.__init__).parameters["retry_on_status"].default)

# the shippers' documented rules for a whole request's status (INTEGRATIONS.md §3.4, §4.1, §5.3, §8.3);
# True: retried, False: dropped
HTTP_SHIPPERS = {
    "Fluent Bit http output": lambda s: not 400 <= s < 500 or s in (408, 429),
    "Fluent Bit opentelemetry output (HTTP)": lambda s: s in (429, 502, 503, 504),
    "Fluent Bit es output": lambda s: s not in (200, 201),
    "syslog-ng http()": lambda s: not 200 <= s < 300,
    "Logstash elasticsearch output": lambda s: not 200 <= s < 300,
    "elasticsearch-py (elastic-transport)": lambda s: s in ES_RETRY,
}
FLUENT_BIT_OTLP_GRPC = {
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNAVAILABLE,
}


def service_errors() -> dict[str, type[ServiceError]]:
    """Every ServiceError subclass defined anywhere in the server package (all its modules imported)."""
    for module in pkgutil.walk_packages(logwarden.grpc_server.__path__, "logwarden.grpc_server."):
        importlib.import_module(module.name)
    found, todo = {}, [ServiceError]
    while todo:
        for sub in todo.pop().__subclasses__():
            found[sub.__name__] = sub
            todo.append(sub)
    return found


def documented() -> dict[str, tuple[str, int, str]]:
    """docs/shippers.md's table of error types: name -> (kind, HTTP status, gRPC code name)."""
    rows = re.findall(r"^\| `(\w+)` \| (transient|permanent) \| (\d{3}) \| `(\w+)` \|", DOC.read_text(), re.M)
    return {name: (kind, int(status), code) for name, kind, status, code in rows}


def test_every_error_type_is_documented_with_the_status_it_carries():
    errors, table = service_errors(), documented()
    assert set(errors) == set(table), "a new error type needs its row in docs/shippers.md (transient or permanent)"
    for name, cls in errors.items():
        _, status, code = table[name]
        assert (cls.http_status, cls.code.name) == (status, code), name


@pytest.mark.parametrize("name", sorted(documented()))
def test_transient_errors_are_retried_and_permanent_ones_are_client_errors(name):
    kind, status, code_name = documented()[name]
    code = grpc.StatusCode[code_name]
    if kind == "transient":
        assert status in TRANSIENT_HTTP and code in TRANSIENT_GRPC, name
        for shipper, retries in HTTP_SHIPPERS.items():
            assert retries(status), f"{shipper} would drop a {status} ({name})"
        assert code in OTEL_RETRYABLE and code in FLUENT_BIT_OTLP_GRPC
        assert status in http_client.RETRYABLE or status == 504  # the client: a deadline goes back unscored
        assert code in grpc_client.RETRYABLE or code == grpc.StatusCode.DEADLINE_EXCEEDED
    else:
        assert (400 <= status < 500 and status not in (408, 429)) or status == 501, name
        assert code not in TRANSIENT_GRPC and code not in OTEL_RETRYABLE and code not in FLUENT_BIT_OTLP_GRPC
        assert status not in http_client.RETRYABLE and code not in grpc_client.RETRYABLE
        assert not HTTP_SHIPPERS["elasticsearch-py (elastic-transport)"](status)
