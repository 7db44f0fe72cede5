"""The gRPC client: ``LogWardenClient`` (blocking, for adapters' worker threads) and
``AsyncLogWardenClient`` (``grpc.aio``, for asyncio receivers). Same options, same results."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

from logwarden.protos.logwarden.v1 import labels_pb2, labels_pb2_grpc, model_pb2, model_pb2_grpc, reasons_pb2
from logwarden.protos.logwarden.v1 import scoring_pb2 as pb
from logwarden.protos.logwarden.v1 import scoring_pb2_grpc as pbg

from .common import (
    INVALID,
    SCORED,
    UNSCORED,
    Attempts,
    Batch,
    CallFailed,
    Event,
    EventLike,
    Expected,
    LabelPages,
    Plan,
    RetryPolicy,
    ScoredEvent,
    ScoreOptions,
    ScorerUnavailable,
    SessionVerdict,
    as_event,
    call_with_retries,
    check_mode,
    label_filters,
)

log = logging.getLogger("logwarden.client")

MODES = {"stream": pb.SCORING_MODE_STREAM, "sequence": pb.SCORING_MODE_SEQUENCE}
RETRYABLE = {grpc.StatusCode.UNAVAILABLE: "scorer unavailable", grpc.StatusCode.RESOURCE_EXHAUSTED: "scorer overloaded"}
OVERLOADED_KEY = "logwarden-overloaded"  # the server's mark on a RESOURCE_EXHAUSTED that means overload
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
LABEL_ENUMS = {
    "target": "LABEL_TARGET_",
    "value": "LABEL_VALUE_",
    "predicted": "LABEL_VALUE_",
    "reason_code": "REASON_CODE_",
}


class _Base:
    """Options, conversions and error mapping shared by the blocking and the asyncio client."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        tls: bool = False,
        ca_file: str | Path | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        server_name: str | None = None,
        timeout_s: float = 5.0,
        budget_s: float = 30.0,
        retry: RetryPolicy | None = None,
        max_batch_events: int = 500,
        max_batch_bytes: int = 1 << 20,
        load_balancing: str | None = None,
    ) -> None:
        if max_batch_events < 1 or max_batch_bytes < 1 or timeout_s <= 0 or budget_s <= 0:
            raise ValueError("max_batch_events, max_batch_bytes, timeout_s and budget_s must be positive")
        self.target = target
        self.timeout_s, self.budget_s = timeout_s, budget_s
        self.retry = retry or RetryPolicy()
        self.max_batch_events, self.max_batch_bytes = max_batch_events, max_batch_bytes
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()  # never logged
        self._options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            # a restarted scorer is found again within seconds (gRPC's default reconnect backoff grows to 120 s,
            # and every call meanwhile fails open: events unscored long after the scorer is back)
            ("grpc.initial_reconnect_backoff_ms", 250),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]
        if load_balancing:  # e.g. "round_robin" over every address of a dns:/// target
            self._options.append(("grpc.lb_policy_name", load_balancing))
        if server_name:
            self._options.append(("grpc.ssl_target_name_override", server_name))
        self._credentials = None
        if tls or ca_file or cert_file:
            if (cert_file is None) != (key_file is None):
                raise ValueError("cert_file and key_file (mTLS) go together")
            self._credentials = grpc.ssl_channel_credentials(
                root_certificates=Path(ca_file).read_bytes() if ca_file else None,
                private_key=Path(key_file).read_bytes() if key_file else None,
                certificate_chain=Path(cert_file).read_bytes() if cert_file else None,
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.target!r}, tls={self._credentials is not None})"

    def _plan(self, events: Iterable[EventLike], mode: str) -> Plan:
        check_mode(mode)
        return Plan([as_event(e) for e in events], mode, _encode, self.max_batch_events, self.max_batch_bytes)

    @staticmethod
    def _request(plan: Plan, batch: Batch, mode: str, options: ScoreOptions) -> pb.ScoreRequest:
        return pb.ScoreRequest(
            events=[plan.payloads[i] for i in batch.indices],
            mode=MODES[mode],
            request_id=uuid.uuid4().hex,
            idempotency_key=options.request_key(batch.label, plan.planned),
            model=options.model,
            window_scope=options.window_scope,
            partial_sessions=options.partial_sessions,
        )

    @staticmethod
    def _results(response: pb.ScoreResponse) -> tuple[list[ScoredEvent], list[SessionVerdict]]:
        return [_result(r) for r in response.results], [_session(s) for s in response.sessions]


class LogWardenClient(_Base, LabelPages):
    """Blocking client. ``score`` never raises for server or network trouble (see the package docs)."""

    def __init__(self, target: str, **options: Any) -> None:
        super().__init__(target, **options)
        if self._credentials is not None:
            self.channel = grpc.secure_channel(target, self._credentials, options=self._options)
        else:
            self.channel = grpc.insecure_channel(target, options=self._options)
        self._scoring = pbg.ScoringServiceStub(self.channel)
        self._labels = labels_pb2_grpc.LabelServiceStub(self.channel)
        self._model = model_pb2_grpc.ModelServiceStub(self.channel)

    def score(
        self, events: Iterable[EventLike], mode: str = "stream", *, budget_s: float | None = None, **options: Any
    ) -> list[ScoredEvent]:
        """One result per event, in input order, with the caller's ids; unscored ones say why.
        ``options``: ``ScoreOptions`` fields (idempotency_key, model, window_scope, partial_sessions)."""
        return self._score(events, mode, budget_s, ScoreOptions(**options))[0]

    def score_sessions(
        self, events: Iterable[EventLike], *, mode: str = "sequence", budget_s: float | None = None, **options: Any
    ) -> tuple[list[ScoredEvent], list[SessionVerdict]]:
        """The events' results and the session verdicts: one per session in sequence mode; in stream
        mode one per session an event ended (``session_end``)."""
        return self._score(events, mode, budget_s, ScoreOptions(**options))

    def _score(self, events, mode, budget_s, options: ScoreOptions) -> tuple[list[ScoredEvent], list[SessionVerdict]]:
        plan = self._plan(events, mode)
        deadline = time.monotonic() + (budget_s or self.budget_s)
        while (batch := plan.next()) is not None:
            request = self._request(plan, batch, mode, options)
            try:
                plan.fill(
                    batch,
                    *call_with_retries(
                        lambda t, r=request: self._results(self._call(self._scoring.Score, r, t)),
                        self.retry,
                        deadline,
                        self.timeout_s,
                    ),
                )
            except CallFailed as exc:
                plan.failed(batch, exc)
        return plan.done(log), plan.sessions

    def submit_labels(self, labels: Iterable[Mapping[str, Any]], *, budget_s: float | None = None) -> list[dict]:
        """Store analysts' labels (dicts with the Label fields); ``ScorerUnavailable`` when that fails."""
        request = labels_pb2.SubmitLabelsRequest(labels=[_label_pb(x) for x in labels])
        response = self._must(self._labels.SubmitLabels, request, budget_s)
        return [
            json_format.MessageToDict(r, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
            for r in response.results
        ]

    def list_labels(
        self,
        *,
        since: Any = None,
        after_id: int = 0,
        source: str = "",
        limit: int = 0,
        include_retracted: bool = False,
        budget_s: float | None = None,
    ) -> dict:
        """One page of stored labels, oldest first, shaped as the HTTP client's (``HttpClient.list_labels``)."""
        query = label_filters(since, after_id, source, limit, include_retracted)
        request = labels_pb2.ListLabelsRequest(**{k: v for k, v in query.items() if k != "since"})
        if "since" in query:
            request.since.FromNanoseconds(int(query["since"] * 1e9))
        response = self._must(self._labels.ListLabels, request, budget_s)
        return {"labels": [_stored_label(x) for x in response.labels], "next_after_id": response.next_after_id}

    def retract_labels(
        self,
        *,
        label_ids: Iterable[str] = (),
        external_ids: Iterable[str] = (),
        analyst: str,
        budget_s: float | None = None,
    ) -> list[dict]:
        """Withdraw labels by store id and/or external id; one result per id (``retracted``, else ``error``)."""
        request = labels_pb2.RetractLabelsRequest(
            label_ids=[str(x) for x in label_ids], external_ids=list(external_ids), analyst=analyst
        )
        response = self._must(self._labels.RetractLabels, request, budget_s)
        return [
            json_format.MessageToDict(r, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
            for r in response.results
        ]

    def model_info(self, *, budget_s: float | None = None) -> dict:
        info = self._must(self._model.GetModelInfo, model_pb2.GetModelInfoRequest(), budget_s)
        return json_format.MessageToDict(info, preserving_proto_field_name=True)

    def _must(self, method, request, budget_s):
        deadline = time.monotonic() + (budget_s or self.budget_s)
        try:
            return call_with_retries(lambda t: self._call(method, request, t), self.retry, deadline, self.timeout_s)
        except CallFailed as exc:
            raise ScorerUnavailable(exc.reason) from None

    def _call(self, method, request, timeout: float):
        try:
            return method(request, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise _failure(exc, timeout) from None
        except Exception as exc:  # fail open on anything else too, but leave a trace
            log.warning("logwarden: client error", exc_info=True)
            raise CallFailed(f"client error: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> LogWardenClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncLogWardenClient(_Base):
    """``grpc.aio`` client: create it inside the running event loop (``async with``)."""

    def __init__(self, target: str, **options: Any) -> None:
        super().__init__(target, **options)
        if self._credentials is not None:
            self.channel = grpc.aio.secure_channel(target, self._credentials, options=self._options)
        else:
            self.channel = grpc.aio.insecure_channel(target, options=self._options)
        self._scoring = pbg.ScoringServiceStub(self.channel)

    async def score(
        self, events: Iterable[EventLike], mode: str = "stream", *, budget_s: float | None = None, **options: Any
    ) -> list[ScoredEvent]:
        return (await self._score(events, mode, budget_s, ScoreOptions(**options)))[0]

    async def score_sessions(
        self, events: Iterable[EventLike], *, mode: str = "sequence", budget_s: float | None = None, **options: Any
    ) -> tuple[list[ScoredEvent], list[SessionVerdict]]:
        return await self._score(events, mode, budget_s, ScoreOptions(**options))

    async def _score(
        self, events, mode, budget_s, options: ScoreOptions
    ) -> tuple[list[ScoredEvent], list[SessionVerdict]]:
        plan = self._plan(events, mode)
        deadline = time.monotonic() + (budget_s or self.budget_s)
        while (batch := plan.next()) is not None:
            request = self._request(plan, batch, mode, options)
            attempts = Attempts(self.retry, deadline, self.timeout_s)
            last = CallFailed("")
            while (timeout := attempts.next_timeout()) is not None:
                try:
                    plan.fill(batch, *self._results(await self._call(request, timeout)))
                    break
                except CallFailed as exc:
                    last = exc
                    delay = attempts.failed(exc.reason, exc.retryable, exc.retry_after)
                    if delay is not None:
                        await asyncio.sleep(delay)
            else:
                plan.failed(batch, CallFailed(attempts.reason, too_large=last.too_large))
        return plan.done(log), plan.sessions

    async def _call(self, request: pb.ScoreRequest, timeout: float) -> pb.ScoreResponse:
        try:
            return await self._scoring.Score(request, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise _failure(exc, timeout) from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("logwarden: client error", exc_info=True)
            raise CallFailed(f"client error: {type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncLogWardenClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# -- conversions -----------------------------------------------------------------------------------


def _failure(exc: grpc.RpcError, timeout: float) -> CallFailed:
    code, details = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return CallFailed(f"deadline exceeded: no answer within {timeout:.3g} s")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and not _marked_overloaded(exc):
        # not the server's overload but gRPC's message size limit (the request is over its max_request_bytes)
        return CallFailed(f"scorer refused the call: {code.name}: {details}", too_large=True)
    if code in RETRYABLE:
        return CallFailed(f"{RETRYABLE[code]}: {details}", retryable=True, retry_after=_pushback(exc))
    return CallFailed(f"scorer refused the call: {code.name}: {details}")


def _marked_overloaded(exc: grpc.RpcError) -> bool:
    try:
        return any(key == OVERLOADED_KEY for key, _ in exc.trailing_metadata() or ())
    except (TypeError, ValueError, AttributeError):
        return False


def _pushback(exc: grpc.RpcError) -> float | None:
    """gRPC's retry pushback (``grpc-retry-pushback-ms`` trailer), when the server sends one."""
    try:
        for key, value in exc.trailing_metadata() or ():
            if key == "grpc-retry-pushback-ms":
                return max(0.0, int(value) / 1000)
    except (TypeError, ValueError, AttributeError):
        pass
    return None


def _encode(e: Event) -> tuple[pb.Event, int]:
    """An event's message and its size in a request (field tag and length prefix included)."""
    message = _event_pb(e)
    return message, message.ByteSize() + 8


def _event_pb(e: Event) -> pb.Event:
    # the map items and the timestamp's fields set directly: the constructor's map argument and
    # Timestamp.FromNanoseconds are Python loops in protobuf (7.2 -> 4.4 us per event)
    out = pb.Event(id=e.id, source=e.source, session_key=e.session_key, session_end=e.session_end)
    if e.raw is not None:
        out.raw = e.raw
    else:
        out.message = e.message or ""
    for key, value in e.attributes.items():
        out.attributes[key] = value
    if e.timestamp is not None:
        out.timestamp.seconds, out.timestamp.nanos = divmod(int(e.timestamp * 1e9), 1_000_000_000)
    return out


def _result(r: pb.EventResult) -> ScoredEvent:
    status = {pb.EVENT_STATUS_SCORED: SCORED, pb.EVENT_STATUS_INVALID: INVALID}.get(r.status, UNSCORED)
    out = ScoredEvent(
        id=r.id,
        status=status,
        template_id=r.template_id,
        template=r.template,
        new_template=r.new_template,
        rank=r.rank,
        reason=r.reason,
        model_version=r.model_version,
        source=r.source,
        session_key=r.session_key,
        error=r.error,
        error_field=r.error_field,
        warnings=list(r.warnings),
        expected=[Expected(e.template_id, e.template, e.probability) for e in r.expected],
        reason_code=_reason_code(r.reason_code),
        model=r.model,
    )
    if status == SCORED:
        out.score, out.anomalous = r.score, r.verdict == pb.VERDICT_ANOMALOUS
    elif status == UNSCORED:
        out.reason = "bad response: an event result without a status"
    return out


def _session(s: pb.SessionResult) -> SessionVerdict:
    return SessionVerdict(
        s.source,
        s.session_key,
        s.score,
        s.verdict == pb.VERDICT_ANOMALOUS,
        s.reason,
        s.events,
        s.anomalous_events,
        s.model_version,
        event_ids=list(s.event_ids),
        reason_code=_reason_code(s.reason_code),
        open=s.open,
        model=s.model,
    )


def _reason_code(value: int) -> str:
    """The JSON spelling of a ReasonCode: its lower-case name without the prefix ("" when unspecified)."""
    if not value:
        return ""
    return reasons_pb2.ReasonCode.Name(value).removeprefix("REASON_CODE_").lower()


def _stored_label(x: labels_pb2.StoredLabel) -> dict:
    """A stored label as the HTTP gateway lists it: enums as words ("" when unset), ``time`` epoch seconds."""
    label = json_format.MessageToDict(
        x.label, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    for name, prefix in LABEL_ENUMS.items():
        word = str(label.get(name, "")).removeprefix(prefix).lower()
        label[name] = "" if word == "unspecified" else word
    label["time"] = x.label.time.ToNanoseconds() / 1e9 if x.label.HasField("time") else None
    return {"label_id": x.label_id, "label": label, "retracted": x.retracted}


def _label_pb(label: Mapping[str, Any]) -> labels_pb2.Label:
    """A Label from a dict: enums as words ("event", "anomaly") or proto names, ``time`` as epoch seconds."""
    data = dict(label)
    for name, prefix in LABEL_ENUMS.items():
        value = data.get(name)
        if isinstance(value, str) and value and not value.startswith(prefix):
            data[name] = prefix + value.upper()
    when = data.pop("time", None)
    out = json_format.ParseDict(data, labels_pb2.Label())
    if when is not None:
        out.time.FromNanoseconds(int(float(when) * 1e9))
    return out
