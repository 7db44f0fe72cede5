"""The HTTP/JSON client (``POST /v1/score``, ``POST /v1/labels``, ``GET /v1/model``): the standard library
only, so it runs where grpcio cannot be loaded (Splunk's bundled Python 3.9 / 3.13)."""

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
import urllib.request
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from .common import (
    INVALID,
    SCORED,
    UNSCORED,
    CallFailed,
    Event,
    EventLike,
    Expected,
    Plan,
    RetryPolicy,
    ScoredEvent,
    ScoreOptions,
    ScorerUnavailable,
    SessionVerdict,
    as_event,
    call_with_retries,
    check_mode,
)

log = logging.getLogger("logwarden.client")

RETRYABLE = {429: "scorer overloaded", 500: "scorer unavailable", 502: "scorer unavailable", 503: "scorer unavailable"}
MAX_ERROR_BYTES = 64 * 1024


class HttpClient:
    """Blocking client of the HTTP/JSON gateway, e.g. ``HttpClient("https://logwarden:8080", token=...)``.

    ``score`` never raises for server or network trouble (see the package docs). TLS: ``ca_file`` to
    trust a private CA, ``cert_file`` + ``key_file`` for mTLS, ``verify=False`` only for testing.
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
    ) -> None:
        if max_batch_events < 1 or max_batch_bytes < 1 or timeout_s <= 0 or budget_s <= 0:
            raise ValueError("max_batch_events, max_batch_bytes, timeout_s and budget_s must be positive")
        if (cert_file is None) != (key_file is None):
            raise ValueError("cert_file and key_file (mTLS) go together")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http:// or https:// URL")
        self.base_url = base_url.rstrip("/")
        self.timeout_s, self.budget_s = timeout_s, budget_s
        self.retry = retry or RetryPolicy()
        self.max_batch_events, self.max_batch_bytes = max_batch_events, max_batch_bytes
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
        while True:
            batch = plan.next()
            if batch is None:
                break
            head = _request_head(mode, options, options.request_key(batch.label, plan.planned)).encode()
            events = b",".join(plan.payloads[i] for i in batch.indices)
            body = b'{%s,"events":[%s]}' % (head, events)
            try:
                response = call_with_retries(
                    lambda t, b=body: self._call("POST", "/v1/score", b, t), self.retry, deadline, self.timeout_s
                )
                plan.fill(
                    batch,
                    [_result(r) for r in response.get("results", [])],
                    [_session(s) for s in response.get("sessions", [])],
                )
            except CallFailed as exc:
                plan.failed(batch, exc)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                plan.fail(batch, f"bad response: {type(exc).__name__}: {exc}")
        return plan.done(log), plan.sessions

    def submit_labels(self, labels: Iterable[Mapping[str, Any]], *, budget_s: float | None = None) -> list[dict]:
        """Store analysts' labels (dicts with the Label fields); ``ScorerUnavailable`` when that fails."""
        body = json.dumps({"labels": list(labels)}, ensure_ascii=False).encode()
        return self._must("POST", "/v1/labels", body, budget_s)["results"]

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
