"""The OpenAPI 3.1 description of the HTTP/JSON gateway (served at ``GET /openapi.json``), generated from
the wire models (``wire.py``, ``logstash.Query``) with pydantic's JSON Schema; only the routes, their
status codes and the examples are written here. The limits are the served ones.
``tests/grpc_server/test_server_http.py`` checks that every route is described, that each request
example is accepted, and that answers match the response schemas.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from logwarden.grpc_server.gateway import wire
from logwarden.grpc_server.gateway.logstash import Query

HDFS_LINE_1 = (
    "081109 203518 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_-1608999687919862906 "
    "src: /10.250.19.102:54106 dest: /10.250.19.102:50010"
)
HDFS_LINE_2 = (
    "081109 203519 145 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block "
    "blk_-1608999687919862906 terminating"
)
REQUESTS = (
    wire.ScoreRequest,
    wire.SubmitLabelsRequest,
    wire.ReloadRequest,
    wire.LogstashEvent,
    wire.CompletionRequest,
)
RESPONSES = (
    wire.ScoreResponse,
    wire.LogstashResponse,
    wire.CompletionResponse,
    wire.SubmitLabelsResponse,
    wire.ModelInfo,
    wire.ReloadResponse,
    wire.Error,
    wire.Health,
    wire.Ready,
)
ERRORS = {
    "400": "Input that can never succeed (names the field)",
    "401": "Missing or invalid bearer token (WWW-Authenticate: Bearer)",
    "403": "A scoring token on an admin call",
    "404": "Unknown model version",
    "408": "The body did not arrive within http_read_timeout_s",
    "409": "The version cannot be loaded",
    "413": "Body larger than max_request_bytes",
    "429": "Overloaded: the queue is full; retry",
    "500": "Internal error; retry",
    "501": "No label store configured",
    "503": "Draining or not ready; retry (elsewhere)",
    "504": "The deadline passed",
}
RETRY_AFTER = ("429", "503")
TIMEOUT_PARAMS = [
    {
        "name": "timeout_ms",
        "in": "query",
        "schema": {"type": "number", "minimum": 0},
        "description": "deadline in milliseconds",
    },
    {
        "name": "X-Request-Timeout-Ms",
        "in": "header",
        "schema": {"type": "number", "minimum": 0},
        "description": "deadline in milliseconds (wins over timeout_ms)",
    },
]


def _ref(model: type[BaseModel] | str) -> dict:
    return {"$ref": f"#/components/schemas/{model if isinstance(model, str) else model.__name__}"}


def schemas(max_events: int) -> dict[str, Any]:
    """Every request and response model as a JSON Schema (2020-12), the batch limits filled in."""
    models = [(m, "validation") for m in REQUESTS] + [(m, "serialization") for m in RESPONSES]
    _, top = models_json_schema(models, ref_template="#/components/schemas/{model}")
    defs = top["$defs"]
    for name, field in (("ScoreRequest", "events"), ("SubmitLabelsRequest", "labels")):
        defs[name]["properties"][field].update(minItems=1, maxItems=max_events)
    defs["Event"]["description"] += " camelCase names are accepted; null means the default."
    return defs


def _query(model: type[BaseModel]) -> list[dict]:
    return [
        {"name": name, "in": "query", "schema": {"type": "string"}, "description": field.description or ""}
        for name, field in model.model_fields.items()
    ]


def _json(schema: type[BaseModel] | dict, examples: dict | None = None) -> dict:
    media: dict[str, Any] = {"schema": schema if isinstance(schema, dict) else _ref(schema)}
    if examples:
        media["examples"] = {name: {"value": value} for name, value in examples.items()}
    return {"application/json": media}


def _op(
    op_id: str,
    summary: str,
    ok: type[BaseModel] | dict,
    errors: tuple[str, ...],
    *,
    body: dict | None = None,
    params: list | None = None,
    open_: bool = False,
    extra: dict | None = None,
) -> dict:
    responses: dict[str, Any] = {"200": {"description": "OK", "content": ok if isinstance(ok, dict) else _json(ok)}}
    for code in errors:
        responses[code] = {"description": ERRORS[code], "content": _json(wire.Error)}
        if code in RETRY_AFTER:
            responses[code]["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
    responses.update(extra or {})
    op: dict[str, Any] = {"operationId": op_id, "summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, "content": body}
    if open_:
        op["security"] = [{}, {"bearerAuth": []}]
    return op


def _examples() -> tuple[dict, dict, dict]:
    score = {
        "stream": {"events": [{"id": "e1", "message": HDFS_LINE_1, "source": "hdfs-1"}], "mode": "stream"},
        "sequence": {
            "events": [
                {"id": "e1", "message": HDFS_LINE_1, "source": "hdfs-1"},
                {"id": "e2", "message": HDFS_LINE_2, "source": "hdfs-1", "timestamp": "2008-11-09T20:35:19Z"},
            ],
            "mode": "sequence",
            "request_id": "r-42",
        },
    }
    event = _json(
        wire.LogstashEvent,
        {"logstash": {"message": HDFS_LINE_1, "host": {"name": "dn-7"}, "@timestamp": "2008-11-09T20:35:18.000Z"}},
    )
    event["text/plain"] = {
        "schema": {"type": "string", "description": "the raw line"},
        "examples": {"line": {"value": HDFS_LINE_2}},
    }
    label = {
        "id": "a1",
        "target": "session",
        "value": "normal",
        "session_key": "blk_-1608999687919862906",
        "analyst": "ann",
        "source": "hdfs-1",
        "comment": "maintenance window",
    }
    return score, event, {"labels": [label]}


def document(max_events: int = 2000) -> dict:
    score, event_body, labels = _examples()
    scoring_errors = ("400", "401", "408", "413", "429", "500", "503", "504")
    paths = {
        "/v1/score": {
            "post": _op(
                "score",
                "Score a batch of events (per-event status; sequence mode adds session verdicts)",
                wire.ScoreResponse,
                scoring_errors,
                body=_json(wire.ScoreRequest, score),
                params=TIMEOUT_PARAMS,
            )
        },
        "/v1/score/event": {
            "post": _op(
                "scoreEvent",
                "Score one Logstash event (stream mode); the answer is meant for the http filter's target_body",
                wire.LogstashResponse,
                scoring_errors,
                body=event_body,
                params=TIMEOUT_PARAMS + _query(Query),
            )
        },
        "/v1/score/completion": {
            "post": _op(
                "scoreCompletion",
                "Score one line for Elasticsearch's custom inference service (completion task, stream mode)",
                wire.CompletionResponse,
                scoring_errors,
                body=_json(
                    wire.CompletionRequest,
                    {
                        "line": {"input": HDFS_LINE_1},
                        "packed": {"input": f"dn-7{wire.COMPLETION_SEPARATOR}{wire.COMPLETION_SEPARATOR}{HDFS_LINE_2}"},
                    },
                ),
                params=TIMEOUT_PARAMS,
            )
        },
        "/v1/labels": {
            "post": _op(
                "submitLabels",
                "Submit analysts' labels (validated one by one)",
                wire.SubmitLabelsResponse,
                ("400", "401", "408", "413", "500", "501", "503"),
                body=_json(wire.SubmitLabelsRequest, {"session": labels}),
            )
        },
        "/v1/model": {"get": _op("getModelInfo", "The served model", wire.ModelInfo, ("401",))},
        "/v1/model/reload": {
            "post": _op(
                "reloadModel",
                "Hot-swap the model version (empty body: the newest); needs an admin token",
                wire.ReloadResponse,
                ("400", "401", "403", "404", "408", "409", "500"),
                body=_json(wire.ReloadRequest, {"newest": {}}),
            )
        },
        "/healthz": {"get": _op("healthz", "Liveness (open unless auth_health)", wire.Health, (), open_=True)},
        "/readyz": {
            "get": _op(
                "readyz",
                "Readiness: a model is loaded and the server is not draining (open unless auth_health)",
                wire.Ready,
                (),
                open_=True,
                extra={"503": {"description": "Not ready", "content": _json(wire.Ready)}},
            )
        },
        "/metrics": {
            "get": _op(
                "metrics",
                "Prometheus metrics (text exposition format)",
                {"text/plain": {"schema": {"type": "string"}}},
                ("401",),
            )
        },
        "/openapi.json": {
            "get": {
                **_op("openapi", "This document", {"application/json": {"schema": {"type": "object"}}}, ()),
                "security": [{}],
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "LogWarden HTTP/JSON gateway",
            "version": "1",
            "description": "Log anomaly scoring over HTTP: the same service as the gRPC API "
            "(package logwarden.v1), with the proto's field names.",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": schemas(max_events),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
