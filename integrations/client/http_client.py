"""The HTTP/JSON client (``POST /v1/score``, ``POST|GET /v1/labels``, ``POST /v1/labels/retract``,
``GET /v1/model``): the standard library only, so it runs where grpcio cannot be loaded (Splunk's bundled
Python 3.9 / 3.13)."""

from __future__ import annotations

import base64
import email.utils
import http.client
import json
import logging
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from typing import Any

from .common import (
    INVALID,
    SCORED,
    UNSCORED,
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

RETRYABLE = {429: "scorer overloaded", 500: "scorer unavailable", 502: "scorer unavailable", 503: "scorer unavailable"}
MAX_ERROR_BYTES = 64 * 1024


class HttpClient(LabelPages):
    """Blocking client of the HTTP/JSON gateway, e.g. ``HttpClient("https://logwarden:8080", token=...)``.

    ``score`` never raises for server or network trouble (see the package docs). TLS: ``ca_file`` to
    trust a private CA, ``cert_file`` + ``key_file`` for mTLS, ``verify=False`` only for testing.
    ``max_in_flight``: sequence-mode requests sent at once (each on its own connection), so the server
    scores one batch while this process encodes the next and decodes the last; stream mode always sends
    one at a time, in order.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        verify: bool = True,
        timeout_s: float = 5.0,
        budget_s: float = 30.0,
        retry: RetryPolicy | None = None,
        max_batch_events: int = 500,
        max_batch_bytes: int = 1 << 20,
        max_in_flight: int = 1,
    ) -> None:
        if min(max_batch_events, max_batch_bytes, max_in_flight) < 1 or timeout_s <= 0 or budget_s <= 0:
            raise ValueError(
                "max_batch_events, max_batch_bytes, max_in_flight, timeout_s and budget_s must be positive"
            )
        if (cert_file is None) != (key_file is None):
            raise ValueError("cert_file and key_file (mTLS) go together")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http:// or https:// URL")
        self.base_url = base_url.rstrip("/")
        self.timeout_s, self.budget_s = timeout_s, budget_s
        self.retry = retry or RetryPolicy()
        self.max_batch_events, self.max_batch_bytes = max_batch_events, max_batch_bytes
        self.max_in_flight = max_in_flight
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "logwarden-client",
        }
        if token:
            self._headers["Authorization"] = f"Bearer {token}"  # never logged
        context = None
        if self.base_url.startswith("https:"):
            context = ssl.create_default_context(cafile=ca_file)
            if not verify:
                context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            if cert_file:
                context.load_cert_chain(cert_file, key_file)
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))

    def __repr__(self) -> str:
        return f"HttpClient({self.base_url!r})"

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
        check_mode(mode)
        plan = Plan([as_event(e) for e in events], mode, _encode, self.max_batch_events, self.max_batch_bytes)
        deadline = time.monotonic() + (budget_s or self.budget_s)
        if mode == "sequence" and self.max_in_flight > 1:
            self._send_concurrently(plan, mode, options, deadline)
        else:
            while (batch := plan.next()) is not None:
                _settle(plan, batch, lambda b=batch: self._send(plan, b, mode, options, deadline))
        return plan.done(log), plan.sessions

    def _send_concurrently(self, plan: Plan, mode: str, options: ScoreOptions, deadline: float) -> None:
        """Up to ``max_in_flight`` batches on the wire at once; each is settled as it comes back (a batch
        split because it was too large queues its halves)."""
        with ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="logwarden-client") as pool:
            pending: dict[Future, Batch] = {}
            while True:
                while len(pending) < self.max_in_flight and (batch := plan.next()) is not None:
                    pending[pool.submit(self._send, plan, batch, mode, options, deadline)] = batch
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    _settle(plan, pending.pop(future), future.result)

    def _send(
        self, plan: Plan, batch: Batch, mode: str, options: ScoreOptions, deadline: float
    ) -> tuple[list[ScoredEvent], list[SessionVerdict]]:
        """One batch's request, with retries; its results and session verdicts (``CallFailed`` when it failed
        for good, ``KeyError`` and friends when the answer was not the expected shape)."""
        head = _request_head(mode, options, options.request_key(batch.label, plan.planned)).encode()
        body = b'{%s,"events":[%s]}' % (head, b",".join(plan.payloads[i] for i in batch.indices))
        response = call_with_retries(
            lambda t: self._call("POST", "/v1/score", body, t), self.retry, deadline, self.timeout_s
        )
        return [_result(r) for r in response.get("results", [])], [_session(s) for s in response.get("sessions", [])]

    def submit_labels(self, labels: Iterable[Mapping[str, Any]], *, budget_s: float | None = None) -> list[dict]:
        """Store analysts' labels (dicts with the Label fields); one result each (``accepted``, ``label_id``,
        ``duplicate``: stored before under its ``external_id``, ``replaced``: it replaced a changed one);
        ``ScorerUnavailable`` when that fails."""
        body = json.dumps({"labels": list(labels)}, ensure_ascii=False).encode()
        return self._must("POST", "/v1/labels", body, budget_s)["results"]

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
        """One page of stored labels, oldest first: ``{"labels": [{"label_id", "label", "retracted"}],
        "next_after_id"}`` (0 when it was the last page). ``since``: the analyst's time (epoch seconds,
        datetime or ISO 8601 text); ``limit``: page size (0: the server's default, 100; at most 10,000)."""
        query = label_filters(since, after_id, source, limit, include_retracted)
        if include_retracted:
            query["include_retracted"] = "true"
        path = "/v1/labels" + ("?" + urllib.parse.urlencode(query) if query else "")
        return self._must("GET", path, None, budget_s)

    def retract_labels(
        self,
        *,
        label_ids: Iterable[str] = (),
        external_ids: Iterable[str] = (),
        analyst: str,
        budget_s: float | None = None,
    ) -> list[dict]:
        """Withdraw labels by store id and/or external id; one result per id (``retracted``, else ``error``)."""
        body = {"label_ids": [str(x) for x in label_ids], "external_ids": list(external_ids), "analyst": analyst}
        return self._must("POST", "/v1/labels/retract", json.dumps(body, ensure_ascii=False).encode(), budget_s)[
            "results"
        ]

    def model_info(self, *, budget_s: float | None = None) -> dict:
        return self._must("GET", "/v1/model", None, budget_s)

    def _must(self, method: str, path: str, body: bytes | None, budget_s: float | None) -> Any:
        deadline = time.monotonic() + (budget_s or self.budget_s)
        try:
            return call_with_retries(lambda t: self._call(method, path, body, t), self.retry, deadline, self.timeout_s)
        except CallFailed as exc:
            raise ScorerUnavailable(exc.reason) from None

    def _call(self, method: str, path: str, body: bytes | None, timeout: float) -> Any:
        headers = dict(self._headers, **{"X-Request-Timeout-Ms": str(max(1, int(timeout * 900)))})
        request = urllib.request.Request(self.base_url + path, data=body, headers=headers, method=method)
        try:
            with self._opener.open(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise _http_failure(exc) from None
        except urllib.error.URLError as exc:
            raise _network_failure(exc.reason, timeout) from None
        except (OSError, http.client.HTTPException) as exc:
            raise _network_failure(exc, timeout) from None
        except ValueError as exc:
            raise CallFailed(f"bad response: not JSON ({exc})") from None


def _settle(plan: Plan, batch: Batch, answer: Any) -> None:
    """Record one batch's outcome in the plan: ``answer()`` gives its results or raises why it failed."""
    try:
        plan.fill(batch, *answer())
    except CallFailed as exc:
        plan.failed(batch, exc)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        plan.fail(batch, f"bad response: {type(exc).__name__}: {exc}")


# -- errors and conversions ---------------------------------------------------------------------------


def _http_failure(exc: urllib.error.HTTPError) -> CallFailed:
    try:
        message = json.loads(exc.read(MAX_ERROR_BYTES))["error"]["message"]
    except Exception:
        message = exc.reason
    finally:
        exc.close()
    if exc.code == 504:
        return CallFailed(f"deadline exceeded: HTTP 504: {message}")
    if exc.code == 413:  # the body is over the server's max_request_bytes: smaller requests may pass
        return CallFailed(f"scorer refused the call: HTTP 413: {message}", too_large=True)
    if exc.code in RETRYABLE:
        return CallFailed(
            f"{RETRYABLE[exc.code]}: HTTP {exc.code}: {message}",
            retryable=True,
            retry_after=_retry_after(exc.headers.get("Retry-After")),
        )
    return CallFailed(f"scorer refused the call: HTTP {exc.code}: {message}")


def _network_failure(reason: Any, timeout: float) -> CallFailed:
    if isinstance(reason, (socket.timeout, TimeoutError)):  # socket.timeout is not TimeoutError on 3.9
        return CallFailed(f"deadline exceeded: no answer within {timeout:.3g} s")
    if isinstance(reason, ssl.SSLError):
        return CallFailed(f"scorer refused the call: TLS: {reason}")
    return CallFailed(f"scorer unavailable: {reason}", retryable=True)


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds or as an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)  # noqa: UP017 - datetime.UTC is Python 3.11+
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())  # noqa: UP017


def _encode(e: Event) -> tuple[bytes, int]:
    """An event's JSON (UTF-8) and its size in a request body."""
    body = json.dumps(_event_json(e), ensure_ascii=False, separators=(",", ":")).encode()
    return body, len(body) + 1


def _request_head(mode: str, options: ScoreOptions, key: str) -> str:
    """The request's fields other than the events, as JSON object members."""
    head: dict[str, Any] = {"mode": mode, "idempotency_key": key}
    if options.model:
        head["model"] = options.model
    if options.window_scope:
        head["window_scope"] = options.window_scope
    if options.partial_sessions:
        head["partial_sessions"] = True
    return json.dumps(head, ensure_ascii=False, separators=(",", ":"))[1:-1]


def _event_json(e: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"id": e.id}
    if e.raw is not None:
        out["raw"] = base64.b64encode(e.raw).decode()
    else:
        out["message"] = e.message or ""
    for name in ("source", "session_key", "timestamp", "attributes", "session_end"):
        value = getattr(e, name)
        if value:
            out[name] = value
    return out


def _result(r: Mapping[str, Any]) -> ScoredEvent:
    status = r.get("status")
    status = status if status in (SCORED, INVALID) else UNSCORED
    out = ScoredEvent(
        id=r.get("id", ""),
        status=status,
        template_id=r.get("template_id", ""),
        template=r.get("template", ""),
        new_template=bool(r.get("new_template")),
        rank=int(r.get("rank") or 0),
        reason=r.get("reason", ""),
        model_version=r.get("model_version", ""),
        source=r.get("source", ""),
        session_key=r.get("session_key", ""),
        error=r.get("error", ""),
        error_field=r.get("error_field", ""),
        warnings=list(r.get("warnings") or []),
        expected=[Expected(e["template_id"], e["template"], e["probability"]) for e in r.get("expected") or []],
        reason_code=r.get("reason_code") or "",
        model=r.get("model") or "",
    )
    if status == SCORED:
        out.score, out.anomalous = float(r["score"]), bool(r["anomalous"])
    elif status == UNSCORED:
        out.reason = f"bad response: unknown event status {r.get('status')!r}"
    return out


def _session(s: Mapping[str, Any]) -> SessionVerdict:
    return SessionVerdict(
        s["source"],
        s["session_key"],
        float(s["score"]),
        bool(s["anomalous"]),
        s["reason"],
        int(s["events"]),
        int(s["anomalous_events"]),
        s.get("model_version", ""),
        event_ids=list(s.get("event_ids") or []),
        reason_code=s.get("reason_code") or "",
        open=bool(s.get("open")),
        model=s.get("model") or "",
    )
