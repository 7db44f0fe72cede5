"""Protobuf ↔ schema dataclasses for the gRPC servicers (the only module that knows both)."""

from __future__ import annotations

import json
from collections.abc import Callable

from google.protobuf.timestamp_pb2 import Timestamp

from logwarden.grpc_server.service.schema import (
    SCORED,
    EventIn,
    EventOut,
    LabelIn,
    LabelOut,
    LabelPage,
    LabelQuery,
    ModelInfoOut,
    RetractOut,
    ScoreOutput,
    SessionOut,
)
from logwarden.protos.logwarden.v1 import labels_pb2, model_pb2, reasons_pb2, scoring_pb2

MODES = {
    scoring_pb2.SCORING_MODE_UNSPECIFIED: "stream",
    scoring_pb2.SCORING_MODE_STREAM: "stream",
    scoring_pb2.SCORING_MODE_SEQUENCE: "sequence",
}
TARGETS = {labels_pb2.LABEL_TARGET_EVENT: "event", labels_pb2.LABEL_TARGET_SESSION: "session"}
VALUES = {labels_pb2.LABEL_VALUE_ANOMALY: "anomaly", labels_pb2.LABEL_VALUE_NORMAL: "normal"}


def _seconds(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def _timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def event_in(e: scoring_pb2.Event) -> EventIn:
    which = e.WhichOneof("payload")
    return EventIn(
        e.id,
        e.message if which == "message" else None,
        e.raw if which == "raw" else None,
        _seconds(e.timestamp) if e.HasField("timestamp") else None,
        e.source,
        e.session_key,
        dict(e.attributes) if e.attributes else {},  # iterating an empty protobuf map is not free
        e.session_end,
    )


def mode(request: scoring_pb2.ScoreRequest) -> str:
    return MODES.get(request.mode, f"unknown ({request.mode})")


def _event_result(r: EventOut, make: Callable[..., scoring_pb2.EventResult] = scoring_pb2.EventResult):
    """One result message, built in one call of ``make`` (the constructor, or a repeated field's ``add``):
    setting fields one by one costs per field."""
    if r.status != SCORED:
        return make(
            id=r.id,
            status=scoring_pb2.EVENT_STATUS_INVALID,
            error=r.error,
            error_field=r.error_field,
            model_version=r.model_version,
            source=r.source,
            session_key=r.session_key,
            warnings=r.warnings,
        )
    fields = {"surprisal": r.surprisal} if r.surprisal is not None else {}
    if r.expected:
        fields["expected"] = [
            scoring_pb2.ExpectedTemplate(template_id=e.template_id, template=e.template, probability=e.probability)
            for e in r.expected
        ]
    if r.warnings:
        fields["warnings"] = r.warnings
    if r.reason_code:
        fields["reason_code"] = reason_code_pb(r.reason_code)
    return make(
        id=r.id,
        status=scoring_pb2.EVENT_STATUS_SCORED,
        model_version=r.model_version,
        source=r.source,
        session_key=r.session_key,
        score=r.score,
        verdict=scoring_pb2.VERDICT_ANOMALOUS if r.anomalous else scoring_pb2.VERDICT_NORMAL,
        template_id=r.template_id,
        template=r.template,
        new_template=r.new_template,
        rank=r.rank,
        reason=r.reason,
        model=r.model,
        **fields,
    )


def _session_result(s: SessionOut) -> scoring_pb2.SessionResult:
    out = scoring_pb2.SessionResult(
        source=s.source,
        session_key=s.session_key,
        score=s.score,
        reason=s.reason,
        events=s.events,
        verdict=scoring_pb2.VERDICT_ANOMALOUS if s.anomalous else scoring_pb2.VERDICT_NORMAL,
        anomalous_events=s.anomalous_events,
        model_version=s.model_version,
        reason_code=reason_code_pb(s.reason_code),
        event_ids=s.event_ids,
        open=s.open,
        model=s.model,
    )
    if s.end is not None:
        out.end.CopyFrom(_event_result(s.end))
    return out


def score_response(out: ScoreOutput, request_id: str = "") -> scoring_pb2.ScoreResponse:
    response = scoring_pb2.ScoreResponse(
        sessions=[_session_result(s) for s in out.sessions],
        model_version=out.model_version,
        request_id=request_id,
        replayed=out.replayed,
        model=out.model,
    )
    add = response.results.add  # in place: messages given to the constructor in a list are copied one by one
    for r in out.results:
        _event_result(r, add)
    return response


def label_in(label: labels_pb2.Label) -> LabelIn:
    return LabelIn(
        id=label.id,
        target=TARGETS.get(label.target, ""),
        value=VALUES.get(label.value, ""),
        analyst=label.analyst,
        time=_seconds(label.time) if label.HasField("time") else None,
        comment=label.comment,
        source=label.source,
        session_key=label.session_key,
        template_id=label.template_id,
        event_id=label.event_id,
        message=label.message,
        model_version=label.model_version,
        keys=list(label.keys),
        predicted=_predicted(label.predicted),
        reason=label.reason,
        reason_code=reason_code_word(label.reason_code),
        external_id=label.external_id,
        attributes=dict(label.attributes) if label.attributes else {},
    )


def reason_code_pb(code: str) -> int:
    """A ReasonCode value ("new_template") as the proto enum number (0 for "")."""
    return reasons_pb2.ReasonCode.Value("REASON_CODE_" + code.upper()) if code else 0


def reason_code_word(value: int) -> str:
    """The proto enum number as a ReasonCode value; a number this server does not know stays visible, so the
    label's validation refuses it."""
    if value == reasons_pb2.REASON_CODE_UNSPECIFIED:
        return ""
    name = reasons_pb2.ReasonCode.Name(value) if value in reasons_pb2.ReasonCode.values() else ""
    return name.removeprefix("REASON_CODE_").lower() if name else f"unknown ({value})"


def _predicted(value: int) -> str:
    """UNSPECIFIED is "unknown"; a number this server does not know is kept visible so validation refuses it."""
    if value == labels_pb2.LABEL_VALUE_UNSPECIFIED:
        return ""
    return VALUES.get(value, f"unknown ({value})")


def labels_response(results: list[LabelOut]) -> labels_pb2.SubmitLabelsResponse:
    return labels_pb2.SubmitLabelsResponse(
        results=[
            labels_pb2.LabelResult(
                id=r.id,
                accepted=r.accepted,
                error=r.error,
                error_field=r.error_field,
                label_id=r.label_id,
                duplicate=r.duplicate,
                replaced=r.replaced,
            )
            for r in results
        ]
    )


# -- listing and retracting labels -------------------------------------------------------------------

TARGET_PB = {word: number for number, word in TARGETS.items()}
VALUE_PB = {word: number for number, word in VALUES.items()}


def label_query(request: labels_pb2.ListLabelsRequest) -> LabelQuery:
    return LabelQuery(
        since=_seconds(request.since) if request.HasField("since") else None,
        after_id=request.after_id,
        source=request.source,
        limit=request.limit,
        include_retracted=request.include_retracted,
    )


def _label_pb(label: LabelIn) -> labels_pb2.Label:
    out = labels_pb2.Label(
        target=TARGET_PB.get(label.target, 0),
        value=VALUE_PB.get(label.value, 0),
        analyst=label.analyst,
        comment=label.comment,
        source=label.source,
        session_key=label.session_key,
        template_id=label.template_id,
        event_id=label.event_id,
        message=label.message,
        model_version=label.model_version,
        keys=label.keys,
        predicted=VALUE_PB.get(label.predicted, 0),
        reason=label.reason,
        reason_code=reason_code_pb(label.reason_code),
        external_id=label.external_id,
        attributes=label.attributes,
    )
    if label.time is not None:
        out.time.CopyFrom(_timestamp(label.time))
    return out


def list_response(page: LabelPage) -> labels_pb2.ListLabelsResponse:
    return labels_pb2.ListLabelsResponse(
        labels=[
            labels_pb2.StoredLabel(label_id=x.label_id, label=_label_pb(x.label), retracted=x.retracted)
            for x in page.labels
        ],
        next_after_id=page.next_after_id,
    )


def retract_response(results: list[RetractOut]) -> labels_pb2.RetractLabelsResponse:
    return labels_pb2.RetractLabelsResponse(
        results=[
            labels_pb2.RetractResult(id=r.id, retracted=r.retracted, error=r.error, error_field=r.error_field)
            for r in results
        ]
    )


def model_info(info: ModelInfoOut) -> model_pb2.ModelInfo:
    return model_pb2.ModelInfo(
        version=info.version,
        path=info.path,
        line_format=info.line_format,
        backend=info.backend,
        k=info.k,
        templates=info.templates,
        session_rule_json=json.dumps(info.session_rule, sort_keys=True),
        available_versions=info.available_versions,
        loaded_at=_timestamp(info.loaded_at),
        max_context=info.max_context,
        name=info.name,
        routes=[
            model_pb2.ModelRoute(
                name=r["name"],
                version=r["version"],
                path=r["path"],
                rules=[model_pb2.RouteRule(attributes=rule) for rule in r["rules"]],
                is_default=r["is_default"],
            )
            for r in info.routes
        ],
    )
