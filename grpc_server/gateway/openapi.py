"""The OpenAPI 3.1 description of the HTTP/JSON gateway (served at ``GET /openapi.json``).

Built in code so that it follows the schema dataclasses: the label request lists every ``LabelIn``
field, and the limits are the served ones. ``tests/test_server_http.py`` checks that every route is
described, that each request example is accepted, and that answers match the response schemas.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from logwarden.grpc_server.service.schema import LabelIn

HDFS_LINE_1 = (
    "081109 203518 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_-1608999687919862906 "
    "src: /10.250.19.102:54106 dest: /10.250.19.102:50010"
)
HDFS_LINE_2 = (
    "081109 203519 145 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block "
    "blk_-1608999687919862906 terminating"
)

STR = {"type": "string"}
NUM = {"type": "number"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
TIME = {
    "anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
    "description": "RFC 3339 time or epoch seconds",
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict, *, required: bool | list[str] = True, closed: bool = False, **extra: Any) -> dict:
    """An object schema; ``required=True`` requires every property (what the server always sends)."""
    out: dict[str, Any] = {"type": "object", "properties": properties}
    names = list(properties) if required is True else (required or [])
    if names:
        out["required"] = names
    if closed:
        out["additionalProperties"] = False
    out.update(extra)
    return out


def label_fields() -> dict[str, tuple[str, tuple]]:
    """Each ``LabelIn`` field's JSON kind: time, string, enum (with its words), bool, number, strings, any."""
    hints = typing.get_type_hints(LabelIn)
    out: dict[str, tuple[str, tuple]] = {}
    for f in dataclasses.fields(LabelIn):
        hint, args = hints[f.name], typing.get_args(hints[f.name])
        if f.name == "time" or f.name.endswith(("_time", "_at")):
            out[f.name] = ("time", ())
        elif typing.get_origin(hint) is typing.Literal:
            out[f.name] = ("enum", args)
        elif hint is str:
            out[f.name] = ("string", ())
        elif hint is bool:
            out[f.name] = ("bool", ())
        elif typing.get_origin(hint) is list:
            out[f.name] = ("strings", ())
        elif hint in (int, float) or (args and set(args) <= {int, float, type(None)}):
            out[f.name] = ("number", ())
        else:
            out[f.name] = ("any", ())
    return out


LABEL_REQUIRED = ("target", "value")


def _label_schema() -> dict:
    kinds = {
        "time": TIME,
        "string": STR,
        "bool": BOOL,
        "number": NUM,
        "strings": {"type": "array", "items": STR},
        "any": {"type": ["string", "number", "boolean", "null"]},
    }
    props: dict[str, Any] = {}
    for name, (kind, words) in label_fields().items():
        if kind == "enum":
            props[name] = {"type": "string", "enum": [w for w in words if w or name not in LABEL_REQUIRED]}
        else:
            props[name] = kinds[kind]
    return _obj(
        props,
        required=list(LABEL_REQUIRED),
        closed=True,
        description="An analyst's verdict on an event or a session (the proto's Label).",
    )


def _schemas(max_events: int) -> dict:
    expected = _obj({"template_id": STR, "template": STR, "probability": NUM})
    event_result = _obj(
        {
            "id": STR,
            "status": {"type": "string", "enum": ["scored", "invalid"]},
            "error": STR,
            "error_field": STR,
            "score": NUM,
            "verdict": {"type": "string", "enum": ["normal", "anomalous", ""]},
            "anomalous": BOOL,
            "template_id": STR,
            "template": STR,
            "new_template": BOOL,
            "rank": INT,
            "surprisal": {"type": ["number", "null"]},
            "expected": {"type": "array", "items": _ref("ExpectedTemplate")},
            "reason": STR,
            "model_version": STR,
            "source": STR,
            "session_key": STR,
            "warnings": {"type": "array", "items": STR},
        },
        description="One event's result; an invalid event has status invalid, error and error_field.",
    )
    logwarden = {
        k: event_result["properties"][k]
        for k in (
            "status",
            "score",
            "verdict",
            "anomalous",
            "template",
            "template_id",
            "new_template",
            "rank",
            "reason",
            "expected",
            "model_version",
            "source",
            "session_key",
            "warnings",
        )
    }
    model_info = _obj(
        {
            "version": STR,
            "path": STR,
            "line_format": STR,
            "backend": STR,
            "k": INT,
            "templates": INT,
            "session_rule": {"type": "object"},
            "available_versions": {"type": "array", "items": STR},
            "loaded_at": NUM,
            "max_context": INT,
        }
    )
    return {
        "Event": _obj(
            {
                "id": STR,
                "message": {"type": "string", "description": "the raw log line"},
                "raw": {
                    "type": "string",
                    "contentEncoding": "base64",
                    "description": "the raw line as base64, for bytes that are not UTF-8 (instead of message)",
                },
                "timestamp": TIME,
                "source": STR,
                "session_key": STR,
                "attributes": {"type": "object", "additionalProperties": STR},
                "session_end": {
                    "type": "boolean",
                    "default": False,
                    "description": "stream mode: the last event of its session; its end is judged too "
                    "(a session result comes back) and its window is dropped",
                },
            },
            required=[],
            closed=True,
            description="One log line; set message or raw. camelCase names are accepted.",
        ),
        "ScoreRequest": _obj(
            {
                "events": {"type": "array", "items": _ref("Event"), "minItems": 1, "maxItems": max_events},
                "mode": {"type": "string", "enum": ["stream", "sequence"], "default": "stream"},
                "request_id": STR,
            },
            required=["events"],
            closed=True,
        ),
        "ExpectedTemplate": expected,
        "EventResult": event_result,
        "SessionResult": _obj(
            {
                "source": STR,
                "session_key": STR,
                "score": NUM,
                "verdict": {"type": "string", "enum": ["normal", "anomalous"]},
                "anomalous": BOOL,
                "reason": STR,
                "events": INT,
                "anomalous_events": INT,
                "end": {"anyOf": [_ref("EventResult"), {"type": "null"}]},
                "model_version": STR,
            },
            description="A whole session's verdict (sequence mode).",
        ),
        "ScoreResponse": _obj(
            {
                "results": {"type": "array", "items": _ref("EventResult")},
                "sessions": {"type": "array", "items": _ref("SessionResult")},
                "model_version": STR,
                "request_id": STR,
            }
        ),
        "LogstashEvent": _obj(
            {
                "message": STR,
                "source": STR,
                "session_key": STR,
                "host": {"type": "object"},
            },
            required=[],
            description="A Logstash event (any other fields are ignored); see the query parameters "
            "for where the line, source and session come from.",
        ),
        "LogstashResponse": _obj(
            {
                "logwarden": _obj(logwarden),
                "event": _obj(
                    {
                        "risk_score": {"type": "number", "minimum": 0, "maximum": 100},
                        "risk_score_norm": {"type": "number", "minimum": 0, "maximum": 100},
                    },
                    description="ECS event.risk_score and event.risk_score_norm",
                ),
            },
            description="Meant for the http filter's target_body (see the module docs).",
        ),
        "Label": _label_schema(),
        "SubmitLabelsRequest": _obj(
            {"labels": {"type": "array", "items": _ref("Label"), "minItems": 1, "maxItems": max_events}}, closed=True
        ),
        "LabelResult": _obj({"id": STR, "accepted": BOOL, "error": STR, "error_field": STR, "label_id": STR}),
        "SubmitLabelsResponse": _obj({"results": {"type": "array", "items": _ref("LabelResult")}}),
        "ModelInfo": model_info,
        "ReloadRequest": _obj(
            {"version": {"type": ["string", "null"], "description": "the version to serve; empty or null: the newest"}},
            required=[],
            closed=True,
        ),
        "ReloadResponse": _obj({"previous_version": STR, "model": _ref("ModelInfo"), "changed": BOOL}),
        "Error": _obj(
            {
                "error": _obj(
                    {
                        "message": STR,
                        "field": {"type": "string", "description": "the input at fault, if any"},
                        "code": {"type": "string", "description": "the gRPC status name"},
                    }
                )
            }
        ),
        "Health": _obj({"status": {"type": "string", "enum": ["ok"]}}),
        "Ready": _obj(
            {"status": {"type": "string", "enum": ["ready", "not ready"]}, "model_version": STR, "reason": STR},
            required=["status"],
        ),
    }


def _error(description: str, retry: bool = False) -> dict:
    out: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}
    if retry:
        out["headers"] = {"Retry-After": {"schema": INT, "description": "seconds"}}
    return out


ERRORS = {
    "400": _error("Input that can never succeed (names the field)"),
    "401": _error("Missing or invalid bearer token (WWW-Authenticate: Bearer)"),
    "413": _error("Body larger than max_request_bytes"),
    "429": _error("Overloaded: the queue is full; retry", retry=True),
    "500": _error("Internal error; retry"),
    "503": _error("Draining or not ready; retry (elsewhere)", retry=True),
    "504": _error("The deadline passed"),
}
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
LOGSTASH_PARAMS = [
    {
        "name": "message_field",
        "in": "query",
        "schema": STR,
        "description": "field path(s) of the line, comma-separated (default: message, event.original)",
    },
    {
        "name": "source_field",
        "in": "query",
        "schema": STR,
        "description": "field path(s) of the source (default: source, host.name, host.hostname, host)",
    },
    {
        "name": "session_field",
        "in": "query",
        "schema": STR,
        "description": "field path(s) of the session key (default: session_key)",
    },
    {"name": "source", "in": "query", "schema": STR, "description": "the source itself"},
    {"name": "session_key", "in": "query", "schema": STR, "description": "the session key itself"},
]


def _json(schema: str, examples: dict | None = None) -> dict:
    media: dict[str, Any] = {"schema": _ref(schema)}
    if examples:
        media["examples"] = {name: {"value": value} for name, value in examples.items()}
    return {"application/json": media}


def _op(
    op_id: str,
    summary: str,
    ok: str | dict,
    errors: tuple[str, ...],
    *,
    body: dict | None = None,
    params: list | None = None,
    open_: bool = False,
    extra: dict | None = None,
) -> dict:
    responses = {"200": {"description": "OK", "content": _json(ok) if isinstance(ok, str) else ok}}
    responses.update({code: ERRORS[code] for code in errors})
    responses.update(extra or {})
    op: dict[str, Any] = {"operationId": op_id, "summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"required": True, "content": body}
    if open_:
        op["security"] = [{}, {"bearerAuth": []}]
    return op


def document(max_events: int = 2000) -> dict:
    score_examples = {
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
    event_body = _json(
        "LogstashEvent",
        {"logstash": {"message": HDFS_LINE_1, "host": {"name": "dn-7"}, "@timestamp": "2008-11-09T20:35:18.000Z"}},
    )
    event_body["text/plain"] = {
        "schema": {"type": "string", "description": "the raw line"},
        "examples": {"line": {"value": HDFS_LINE_2}},
    }
    labels_example = {
        "labels": [
            {
                "id": "a1",
                "target": "session",
                "value": "normal",
                "session_key": "blk_-1608999687919862906",
                "analyst": "ann",
                "source": "hdfs-1",
                "comment": "maintenance window",
            }
        ]
    }
    paths = {
        "/v1/score": {
            "post": _op(
                "score",
                "Score a batch of events (per-event status; sequence mode adds session verdicts)",
                "ScoreResponse",
                ("400", "401", "413", "429", "500", "503", "504"),
                body=_json("ScoreRequest", score_examples),
                params=TIMEOUT_PARAMS,
            )
        },
        "/v1/score/event": {
            "post": _op(
                "scoreEvent",
                "Score one Logstash event (stream mode); the answer is meant for the http filter's target_body",
                "LogstashResponse",
                ("400", "401", "413", "429", "500", "503", "504"),
                body=event_body,
                params=TIMEOUT_PARAMS + LOGSTASH_PARAMS,
            )
        },
        "/v1/labels": {
            "post": _op(
                "submitLabels",
                "Submit analysts' labels (validated one by one)",
                "SubmitLabelsResponse",
                ("400", "401", "413", "500"),
                body=_json("SubmitLabelsRequest", {"session": labels_example}),
                extra={"501": _error("No label store configured")},
            )
        },
        "/v1/model": {"get": _op("getModelInfo", "The served model", "ModelInfo", ("401",))},
        "/v1/model/reload": {
            "post": _op(
                "reloadModel",
                "Hot-swap the model version (empty body: the newest)",
                "ReloadResponse",
                ("400", "401", "500"),
                body=_json("ReloadRequest", {"newest": {}}),
                extra={"404": _error("Unknown model version"), "409": _error("The version cannot be loaded")},
            )
        },
        "/healthz": {"get": _op("healthz", "Liveness (open unless auth_health)", "Health", (), open_=True)},
        "/readyz": {
            "get": _op(
                "readyz",
                "Readiness: a model is loaded and the server is not draining (open unless auth_health)",
                "Ready",
                (),
                open_=True,
                extra={"503": {"description": "Not ready", "content": _json("Ready")}},
            )
        },
        "/metrics": {
            "get": _op(
                "metrics", "Prometheus metrics (text exposition format)", {"text/plain": {"schema": STR}}, ("401",)
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
            "schemas": _schemas(max_events),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
