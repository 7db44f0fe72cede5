"""Offline scoring: records → sessions → verdicts → JSON-ready dicts (one per event, one per session)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from logwarden.core.detect.detector import Detector, SessionVerdict
from logwarden.core.parsing.sessions import Session, build_sessions
from logwarden.core.records import LogRecord


def score_sessions(
    detector: Detector, sessions: list[Session], *, batch_sessions: int = 512
) -> Iterator[tuple[Session, SessionVerdict]]:
    """Score whole sessions in batches (the model packs each batch into padded tensors)."""
    for start in range(0, len(sessions), batch_sessions):
        chunk = sessions[start : start + batch_sessions]
        verdicts = detector.score_keys(
            [[e.key for e in s.events] for s in chunk],
            lines=[[detector.line(e.record) for e in s.events] for s in chunk],
        )
        yield from zip(chunk, verdicts, strict=True)


def score_records(
    detector: Detector, records: Iterable[LogRecord], *, events: str = "all", batch_sessions: int = 512
) -> Iterator[dict]:
    """JSON-ready results. ``events``: all | anomalous | none — which per-event lines to emit."""
    parsed = [detector.parse(r) for r in records]
    sessions = build_sessions(parsed, detector.rule)
    for session, verdict in score_sessions(detector, sessions, batch_sessions=batch_sessions):
        if events != "none":
            for event, v in zip(session.events, verdict.events, strict=True):
                if events == "all" or v.anomalous:
                    result = v.to_dict()
                    if event.key is None:  # a new template: show the line as the template it would be
                        result["template"] = detector.new_template_text(event.record.content)
                    yield event_result(session, event.record, result, detector.version)
        yield session_result(session, verdict, detector)


def anomalous_template(detector: Detector, session: Session, verdict: SessionVerdict, index: int) -> str:
    """The template of a session's ``index``-th event (a new one as its masked line)."""
    template = verdict.events[index].template
    return template or detector.new_template_text(session.events[index].record.content)


def event_result(session: Session, record: LogRecord, verdict: dict, version: str) -> dict:
    out = {"type": "event", "source": record.source, "line": record.line_no, "session": session.key}
    if record.timestamp is not None:
        out["timestamp"] = record.timestamp
    out.update(verdict)
    out["model_version"] = version
    return out


def session_result(session: Session, verdict: SessionVerdict, detector: Detector) -> dict:
    out = {
        "type": "session",
        "source": session.source,
        "session": session.key,
        "events": len(session.events),
        "anomalous_events": verdict.n_anomalous,
        "score": round(verdict.score, 6),
        "anomalous": verdict.anomalous,
    }
    if verdict.anomalous:
        out["reason"] = verdict.reason
        out["reason_code"] = verdict.reason_code.value if verdict.reason_code else None
        first = verdict.first_anomalous
        out["first_anomalous_line"] = None
        if first is not None:  # the line and template that made the session anomalous, named in its reason
            record = session.events[first].record
            template = anomalous_template(detector, session, verdict, first)
            out["reason"] = f"line {record.line_no} '{template}': {verdict.reason}"
            out["first_anomalous_line"] = record.line_no
            out["anomalous_template"] = template
    if verdict.end is not None and verdict.end.anomalous:
        out["end"] = verdict.end.to_dict()
    if verdict.combination:
        out["combination"] = verdict.combination
    if session.part:
        out["note"] = (
            f"part {session.part + 1} of a window that held more than {detector.rule.max_events} events "
            "(windows are cut at max_events)"
        )
    out["model_version"] = detector.version
    return out
