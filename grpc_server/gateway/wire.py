"""The HTTP/JSON wire format: pydantic models of every body the gateway reads or writes, and the decoding
of request bodies into the scoring service's types. ``openapi.py`` builds the API document from them.

Conventions (the proto's JSON mapping): field names as in the proto (snake_case; camelCase accepted
too), ``null`` meaning the field's default, times as RFC 3339 text or epoch seconds, bytes as base64
(standard or URL-safe, padding optional), enums as words or proto names (``stream`` or
``SCORING_MODE_STREAM``; numbers too for the mode). Requests are strict: a value of the wrong type or
a field the model does not have is refused, naming its path (``events[3].message``,
``events[0].attributes['k']``); text must be valid Unicode (no lone surrogate such as ``"\\ud800"``).

A bad *event* or *label* does not fail its batch: ``decode_score`` and ``decode_labels`` return an
``InvalidRequest`` in its place and the others are scored or stored. Anything wrong with the request
as a whole raises ``InvalidRequest`` (answered 400).

Responses are built from the service's dataclasses (``to_dict()``); the response models here document
them, and the tests check every answer against them (each closed to unknown fields).
"""

from __future__ import annotations

import base64
import binascii
import math
import types
import typing
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    AliasGenerator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

from logwarden.core.detect.reasons import ReasonCode
from logwarden.core.parsing.sessions import in_time_range
from logwarden.grpc_server.service.errors import InvalidRequest
from logwarden.grpc_server.service.schema import EventIn, LabelIn, LabelQuery
from logwarden.grpc_server.service.validation import Limits, check_batch

MAX_PATH_CHARS = 200
Q = TypeVar("Q", bound=BaseModel)

# -- value types ---------------------------------------------------------------------------------------


def _unicode(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"not valid Unicode: a lone surrogate at character {exc.start}") from None
    return text


def _time(value: Any) -> Any:
    """RFC 3339 text (the proto JSON mapping of Timestamp) or epoch seconds, as epoch seconds."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("must be an RFC 3339 time or epoch seconds, not a boolean")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:
            raise ValueError("out of range: not a time between the years 1 and 9999") from None
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("not an RFC 3339 time (e.g. 2026-11-02T10:00:00Z)") from None
        seconds = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    else:
        raise ValueError(f"must be an RFC 3339 time or epoch seconds, not {kind(value)}")
    if not math.isfinite(seconds):
        raise ValueError("not a finite time")
    if not in_time_range(seconds):
        raise ValueError("out of range: not a time between the years 1 and 9999")
    return seconds


def _base64(value: Any) -> Any:
    if not isinstance(value, str):
        return value  # the bytes validation names the type
    text = value.replace("-", "+").replace("_", "/")  # proto JSON accepts URL-safe base64 and no padding
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64") from None


def _mode(value: Any) -> Any:
    words = {"": "stream", "stream": "stream", "sequence": "sequence"}
    names = {"SCORING_MODE_UNSPECIFIED": "stream", "SCORING_MODE_STREAM": "stream", "SCORING_MODE_SEQUENCE": "sequence"}
    numbers = {0: "stream", 1: "stream", 2: "sequence"}  # proto JSON may send enum numbers
    if isinstance(value, str) and (value in words or value in names):
        return words.get(value) or names[value]
    if type(value) is int and value in numbers:
        return numbers[value]
    raise ValueError("unknown mode: use stream or sequence")


def _label_word(prefix: str) -> Any:
    def word(value: Any) -> Any:
        """A proto enum name (``LABEL_TARGET_EVENT``) as its word (``event``); anything else unchanged."""
        if isinstance(value, str) and value.startswith(prefix):
            return value[len(prefix) :].lower()
        return value

    return word


Text = Annotated[str, AfterValidator(_unicode)]
Time = Annotated[
    float | None,
    BeforeValidator(_time),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}, {"type": "null"}]},
        mode="validation",
    ),
]
Base64 = Annotated[
    bytes | None,
    BeforeValidator(_base64),
    WithJsonSchema({"type": ["string", "null"], "contentEncoding": "base64"}, mode="validation"),
]
Mode = Annotated[Literal["stream", "sequence"], BeforeValidator(_mode)]


def _enum(prefix: str, words: list[str]) -> Any:
    """A text field for a proto enum: its words, or its proto names (``prefix`` + the word upper-cased)."""
    return Annotated[Text, BeforeValidator(_label_word(prefix)), WithJsonSchema({"type": "string", "enum": words})]


REASON_CODES = ["", *(code.value for code in ReasonCode)]
COMPLETION_SEPARATOR = "\u001f"
Target = _enum("LABEL_TARGET_", ["event", "session"])
Verdict = _enum("LABEL_VALUE_", ["anomaly", "normal"])
Predicted = _enum("LABEL_VALUE_", ["anomaly", "normal", ""])
Reason = _enum("REASON_CODE_", REASON_CODES)
ReasonCodeText = Annotated[str, WithJsonSchema({"type": "string", "enum": REASON_CODES})]  # in answers


class Request(BaseModel):
    """A request body: strict, closed, camelCase names accepted, ``null`` is the default."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        alias_generator=AliasGenerator(validation_alias=lambda name: AliasChoices(name, to_camel(name))),
    )

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


class Response(BaseModel):
    """A response body (documentation: answers are built by the service's ``to_dict()``)."""

    model_config = ConfigDict(extra="forbid")


# -- requests ------------------------------------------------------------------------------------------


class Event(Request):
    """One log line; set message or raw."""

    id: Text = Field("", description="the caller's id, echoed in the result")
    message: Text | None = Field(None, description="the raw log line")
    raw: Base64 = Field(None, description="the raw line as base64, for bytes that are not UTF-8 (instead of message)")
    timestamp: Time = Field(None, description="RFC 3339 time or epoch seconds")
    source: Text = Field("", description="where the line comes from (host, file, stream)")
    session_key: Text = Field("", description="the session; empty: the model's session rule finds it in the line")
    attributes: dict[Text, Text] = Field(default_factory=dict)
    session_end: bool = Field(
        False,
        description="stream mode: the last event of its session; its end is judged too (a session result "
        "comes back) and its window is dropped",
    )

    def to_service(self) -> EventIn:
        return EventIn(
            self.id,
            self.message,
            self.raw,
            self.timestamp,
            self.source,
            self.session_key,
            self.attributes,
            self.session_end,
        )


class ScoreRequest(Request):
    events: list[Event] = Field(description="the events, at most max_events_per_request")
    mode: Mode = Field("stream", description="stream (windows continue across calls) or sequence (whole sessions)")
    request_id: Text = Field("", description="echoed in the response")
    idempotency_key: Text = Field("", description="a key for this exact request: a resend gets the stored answer")
    model: Text = Field("", description="the model route to score with (empty: the routing rules, else the default)")
    window_scope: Text = Field("", description="stream mode: the scope of the windows (own TTL and quota)")
    partial_sessions: bool = Field(
        False, description="sequence mode: sessions without an event marked session_end are open (not judged whole)"
    )


class Label(Request):
    """An analyst's verdict on an event or a session (the proto's Label)."""

    id: Text = ""
    target: Target = ""
    value: Verdict = ""
    analyst: Text = ""
    time: Time = None
    comment: Text = ""
    source: Text = ""
    session_key: Text = ""
    template_id: Text = ""
    event_id: Text = ""
    message: Text = ""
    model_version: Text = ""
    keys: list[Text] = Field(default_factory=list, description="the session's log keys, in order")
    predicted: Predicted = Field("", description="the model's verdict at the time (empty: unknown)")
    reason: Text = Field("", description="the model's alert reason")
    reason_code: Reason = Field("", description="its reason code (empty: unknown)")
    external_id: Text = Field(
        "",
        description="your stable id of what is labelled (e.g. <index>/<_id>): the same label again is stored "
        "once (duplicate), a changed one replaces it",
    )
    attributes: dict[Text, Text] = Field(
        default_factory=dict, description="where the labelled event lives (index, document id, search id); at most 16"
    )

    def to_service(self) -> LabelIn:
        return LabelIn(**{name: getattr(self, name) for name in type(self).model_fields})


class SubmitLabelsRequest(Request):
    labels: list[Label]


def _query_time(value: Any) -> Any:
    """A query parameter's time: epoch seconds, else RFC 3339."""
    try:
        return _time(float(value)) if isinstance(value, str) else _time(value)
    except ValueError:
        return _time(value)


def _id_text(value: Any) -> Any:
    return str(value) if type(value) is int else value  # a store id may come as a JSON number too


class ListLabelsQuery(BaseModel):
    """The query parameters of ``GET /v1/labels``."""

    model_config = ConfigDict(extra="forbid")

    since: Annotated[
        float | None,
        BeforeValidator(_query_time),
        WithJsonSchema({"type": "string", "description": "RFC 3339 or epoch seconds"}),
    ] = Field(None, description="only labels whose analyst time is at or after this (RFC 3339 or epoch seconds)")
    after_id: int = Field(0, ge=0, description="only labels with a store id above this (the previous next_after_id)")
    source: Text = Field("", description="only labels of this source")
    limit: int = Field(0, ge=0, description="page size (0: 100; at most 10,000)")
    include_retracted: bool = Field(False, description="list withdrawn labels too (retracted: true)")

    def to_service(self) -> LabelQuery:
        return LabelQuery(self.since, self.after_id, self.source, self.limit, self.include_retracted)


class RetractLabelsRequest(Request):
    """Withdraw labels (an analyst changed their mind): by store id and/or by external id."""

    label_ids: list[Annotated[Text, BeforeValidator(_id_text)]] = Field(
        default_factory=list, description="store ids (LabelResult.label_id)"
    )
    external_ids: list[Text] = Field(default_factory=list, description="external ids (Label.external_id)")
    analyst: Text = Field("", description="who withdraws them (required)")


class ReloadRequest(Request):
    version: Text = Field("", description="the version to serve; empty or null: the newest")
    model: Text = Field("", description="the model route to reload; empty: the default model")


class LogstashEvent(BaseModel):
    """A Logstash event (any other fields are ignored); the query parameters say where the line, the source
    and the session come from."""

    message: str = ""
    source: str = ""
    session_key: str = ""
    host: dict[str, Any] = Field(default_factory=dict)


class CompletionRequest(Request):
    """What Elasticsearch's ``inference`` processor sends through a ``custom`` completion endpoint whose request
    template is ``{"input": ${input}}`` (plugins/elasticsearch): one string per document, the log line or
    ``source␟session␟line`` (U+001F between them; source and session may be empty). Stream mode."""

    input: Text = Field(description="the log line, or source, session key and line joined by U+001F")

    def to_service(self) -> EventIn:
        parts = self.input.split(COMPLETION_SEPARATOR)
        if len(parts) == 1:
            return EventIn(message=parts[0])
        if len(parts) == 3:
            return EventIn(message=parts[2], source=parts[0], session_key=parts[1])
        raise InvalidRequest("input", "must be a line, or source, session key and line joined by two U+001F")


# -- responses -----------------------------------------------------------------------------------------


class ExpectedTemplate(Response):
    template_id: str
    template: str
    probability: float


class EventResult(Response):
    """One event's result; an invalid event has status invalid, error and error_field."""

    id: str
    status: Literal["scored", "invalid"]
    error: str
    error_field: str
    score: float
    verdict: Literal["normal", "anomalous", ""]
    anomalous: bool
    template_id: str
    template: str
    new_template: bool
    rank: int
    surprisal: float | None
    expected: list[ExpectedTemplate]
    reason: str
    model_version: str
    source: str
    session_key: str
    warnings: list[str]
    reason_code: ReasonCodeText
    model: str


class SessionResult(Response):
    """A whole session's verdict (sequence mode, or a stream whose event ended its session)."""

    source: str
    session_key: str
    score: float
    verdict: Literal["normal", "anomalous"]
    anomalous: bool
    reason: str
    events: int
    anomalous_events: int
    end: EventResult | None
    model_version: str
    reason_code: ReasonCodeText
    event_ids: list[str] = Field(description="the ids of the request's events in the session")
    open: bool = Field(description="partial sessions: no event ended it, so its end was not judged")
    model: str


class ScoreResponse(Response):
    results: list[EventResult]
    sessions: list[SessionResult]
    model_version: str
    request_id: str
    replayed: bool = Field(description="the stored answer of an earlier request with the same idempotency key")
    model: str


class LabelResult(Response):
    id: str
    accepted: bool
    error: str
    error_field: str
    label_id: str
    duplicate: bool = Field(description="the same label was stored before: nothing written, its label_id back")
    replaced: bool = Field(description="a label with the same external_id and other content was replaced")


class SubmitLabelsResponse(Response):
    results: list[LabelResult]


class StoredLabelFields(Response):
    """A stored label's fields (as submitted; ``time`` is the analyst's time, epoch seconds)."""

    id: str
    target: Literal["event", "session"]
    value: Literal["anomaly", "normal"]
    analyst: str
    time: float | None
    comment: str
    source: str
    session_key: str
    template_id: str
    event_id: str
    message: str
    model_version: str
    keys: list[str]
    predicted: Literal["anomaly", "normal", ""]
    reason: str
    reason_code: ReasonCodeText
    external_id: str
    attributes: dict[str, str]


class StoredLabel(Response):
    label_id: str = Field(description="the store's id (grows with insertion order)")
    label: StoredLabelFields
    retracted: bool = Field(description="withdrawn or replaced: it no longer counts")


class ListLabelsResponse(Response):
    labels: list[StoredLabel] = Field(description="oldest first (store order)")
    next_after_id: int = Field(description="the after_id of the next page; 0 when this page was the last")


class RetractResult(Response):
    id: str = Field(description="the label id or external id as given")
    retracted: bool
    error: str
    error_field: str


class RetractLabelsResponse(Response):
    results: list[RetractResult] = Field(description="one per id: the label_ids first, then the external_ids")


class ModelRoute(Response):
    name: str
    version: str
    path: str
    rules: list[dict[str, str]] = Field(description="attribute rules; an event matching any one goes here")
    is_default: bool


class ModelInfo(Response):
    version: str
    path: str
    line_format: str
    backend: str
    k: int
    templates: int
    session_rule: dict[str, Any]
    available_versions: list[str]
    loaded_at: float
    max_context: int
    name: str = Field(description="this model's route name")
    routes: list[ModelRoute] = Field(description="every served model and the rules that route events to it")


class ReloadResponse(Response):
    previous_version: str
    model: ModelInfo
    changed: bool


class LogstashSession(Response):
    """The verdict of the session the event ended (session_end)."""

    score: float
    verdict: Literal["normal", "anomalous"]
    anomalous: bool
    reason: str
    reason_code: ReasonCodeText
    events: int
    anomalous_events: int


class LogstashFields(Response):
    status: Literal["scored", "invalid"]
    score: float
    verdict: Literal["normal", "anomalous", ""]
    anomalous: bool
    template: str
    template_id: str
    new_template: bool
    rank: int
    reason: str
    reason_code: ReasonCodeText
    expected: list[ExpectedTemplate]
    model_version: str
    source: str
    session_key: str
    warnings: list[str]


class RiskScore(Response):
    """ECS event.risk_score and event.risk_score_norm (0-100)."""

    risk_score: float = Field(ge=0, le=100)
    risk_score_norm: float = Field(ge=0, le=100)


class LogstashResponse(Response):
    """Meant for the http filter's target_body (see logstash.py)."""

    logwarden: LogstashFields
    event: RiskScore


class CompletionResponse(Response):
    """Elasticsearch's completion task takes only a string back (``completion_result: "$.completion"``)."""

    completion: str = Field(description="the answer of POST /v1/score/event (LogstashResponse) as JSON text")


class ErrorDetail(Response):
    message: str
    field: str = Field(description="the input at fault, if any")
    code: str = Field(description="the gRPC status name")


class Error(Response):
    error: ErrorDetail


class Health(Response):
    status: Literal["ok"]


class Ready(Response):
    status: Literal["ready", "not ready"]
    model_version: str = ""
    reason: str = ""


# -- decoding ------------------------------------------------------------------------------------------


def decode_score(body: Any, limits: Limits) -> tuple[ScoreRequest, list[EventIn | InvalidRequest]]:
    """The request (its events left out) and each event as the service's ``EventIn`` or the error naming it."""
    events = _items(body, "events", limits)
    request, bad = _validate(ScoreRequest, body, "events")
    if bad:  # validate the good events alone; each bad one becomes its error
        good = [e for i, e in enumerate(events) if i not in bad]
        request, _ = _validate(ScoreRequest, {**body, "events": good}, "events")
    decoded: list[EventIn | InvalidRequest] = []
    good_events = iter(request.events)
    for i in range(len(events)):
        decoded.append(bad[i] if i in bad else next(good_events).to_service())
    return request, decoded


def decode_labels(body: Any, limits: Limits) -> list[LabelIn | InvalidRequest]:
    labels = _items(body, "labels", limits)
    request, bad = _validate(SubmitLabelsRequest, body, "labels")
    if bad:
        good = [x for i, x in enumerate(labels) if i not in bad]
        request, _ = _validate(SubmitLabelsRequest, {**body, "labels": good}, "labels")
    good_labels = iter(request.labels)
    return [bad[i] if i in bad else next(good_labels).to_service() for i in range(len(labels))]


def decode_query(model: type[Q], query: Mapping[str, str]) -> Q:
    """A route's query parameters as ``model``; a bad one raises ``InvalidRequest`` naming it."""
    try:
        return model.model_validate(dict(query))
    except ValidationError as exc:
        error = exc.errors()[0]
        problem = _QUERY_PROBLEMS.get(error["type"]) or describe(error)
        raise InvalidRequest(field_path(model, error["loc"]) or "query", problem) from None


def decode_label_query(query: Mapping[str, str]) -> LabelQuery:
    """``GET /v1/labels``'s query parameters (``timeout_ms`` aside); a bad one raises naming it."""
    return decode_query(ListLabelsQuery, {k: v for k, v in query.items() if k != "timeout_ms"}).to_service()


def reject_constant(name: str) -> float:
    """``json.loads``'s ``parse_constant``: NaN and Infinity are not JSON (the standard library takes them)."""
    raise ValueError(f"{name} is not valid JSON")


_QUERY_PROBLEMS = {
    "int_parsing": "must be an integer",
    "bool_parsing": "must be true or false",
    "greater_than_equal": "must not be negative",
    "extra_forbidden": "unknown query parameter",
}


def decode_retract(body: Any) -> RetractLabelsRequest:
    request, _ = _validate(RetractLabelsRequest, body, "")
    return request


def decode_completion(body: Any) -> EventIn:
    request, _ = _validate(CompletionRequest, body, "")
    return request.to_service()


def decode_reload(body: Any) -> tuple[str | None, str]:
    """The version (None: the newest) and the model route ("": the default) a reload asks for."""
    request, _ = _validate(ReloadRequest, body, "")
    return request.version or None, request.model


def _items(body: Any, name: str, limits: Limits) -> list:
    """``body[name]`` (camelCase too) when it is a list, checked against the batch limits before decoding."""
    if not isinstance(body, dict):
        raise InvalidRequest("body", f"must be an object, not {kind(body)}")
    items = body.get(name)
    if isinstance(items, list):
        check_batch(items, limits, name)
        return items
    if items is None:
        raise InvalidRequest(name, "missing or not an array")
    raise InvalidRequest(name, f"must be an array, not {kind(items)}")


def _validate(model: type[Request], body: Any, items: str) -> tuple[Any, dict[int, InvalidRequest]]:
    """``model`` from ``body``; errors inside ``body[items][i]`` are returned by index, any other is raised."""
    try:
        return model.model_validate(body), {}
    except ValidationError as exc:
        bad: dict[int, InvalidRequest] = {}
        for error in exc.errors():
            loc = error["loc"]
            if items and len(loc) >= 2 and loc[0] == items and isinstance(loc[1], int):
                bad.setdefault(loc[1], as_invalid(model, error))
            else:
                raise as_invalid(model, error) from None
        return None, bad


def as_invalid(model: type[BaseModel], error: Any) -> InvalidRequest:
    """A pydantic error as the service's ``InvalidRequest``: the field's path and what is wrong."""
    return InvalidRequest(field_path(model, error["loc"]) or "body", describe(error))


def field_path(model: type[BaseModel], loc: Sequence[Any]) -> str:
    """``('events', 3, 'sessionKey')`` as ``events[3].session_key``; a dict key as ``attributes['k']``."""
    out, current = "", _strip(model)
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
            current = _strip(_args(current)[0]) if _args(current) else None
        elif part == "[key]" or (i + 1 < len(loc) and loc[i + 1] == "[key]"):  # the dict key itself is at fault
            break
        elif isinstance(current, type) and issubclass(current, BaseModel):
            name = _field_name(current, part)
            out += f".{name or printable(part)}"
            current = _strip(current.model_fields[name].annotation) if name else None
        elif typing.get_origin(current) is dict:
            out += f"[{printable(part[:100])!r}]"
            current = _strip(_args(current)[1])
        else:
            out += f".{printable(part)}"
    return out.lstrip(".")[:MAX_PATH_CHARS]


def printable(text: str) -> str:
    """``text`` with any lone surrogate written as an escape, so that it can be sent back."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _field_name(model: type[BaseModel], key: str) -> str | None:
    if key in model.model_fields:
        return key
    return next((name for name in model.model_fields if to_camel(name) == key), None)


def _strip(annotation: Any) -> Any:
    """The type inside ``Annotated[...]`` and ``X | None``."""
    while True:
        if typing.get_origin(annotation) is Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
            annotation = args[0]
            continue
        return annotation


def _args(annotation: Any) -> tuple:
    return typing.get_args(annotation)


_EXPECTED = {
    "string_type": "a string",
    "bool_type": "a boolean",
    "int_type": "an integer",
    "float_type": "a number",
    "bytes_type": "a base64 string",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
}


def describe(error: Any) -> str:
    """What is wrong, from the error's machine-readable type (never from pydantic's English text)."""
    kind_of = error["type"]
    if kind_of == "missing":
        return "missing"
    if kind_of == "extra_forbidden":
        return "unknown field"
    if kind_of in _EXPECTED:
        return f"must be {_EXPECTED[kind_of]}, not {kind(error.get('input'))}"
    if kind_of == "value_error":
        return str(error["ctx"]["error"])
    if kind_of == "string_unicode":  # a key (or text) with a lone surrogate, where pydantic cannot name it
        return "not valid Unicode: a lone surrogate in a field name or text"
    if kind_of == "literal_error":
        return f"must be one of {error['ctx']['expected']}"
    return str(error.get("msg", kind_of))


def kind(value: Any) -> str:
    """A JSON value's kind, for messages."""
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
