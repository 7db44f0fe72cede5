"""Transport-independent request and result types of the scoring service (plain dataclasses).

The gRPC servicers and the HTTP/JSON gateway convert their wire formats to and from these;
``to_dict()`` gives the JSON shape (field names as in the proto, enums as lower-case words).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Mode = Literal["stream", "sequence"]
SCORED, INVALID = "scored", "invalid"


@dataclass(slots=True)
class EventIn:
    """One raw log line: ``message`` (text) or ``raw`` (bytes, any encoding)."""

    id: str = ""
    message: str | None = None
    raw: bytes | None = None
    timestamp: float | None = None  # epoch seconds
    source: str = ""
    session_key: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    session_end: bool = False  # stream mode: the last event of its session (its end is judged, its window dropped)


@dataclass(slots=True)
class Expected:
    template_id: str
    template: str
    probability: float


@dataclass(slots=True)
class EventOut:
    """The result for one event; ``status`` is ``scored`` or ``invalid`` (then ``error`` says why)."""

    id: str
    status: str = SCORED
    error: str = ""
    error_field: str = ""
    score: float = 0.0
    anomalous: bool = False
    template_id: str = ""
    template: str = ""
    new_template: bool = False
    rank: int = 0
    surprisal: float | None = None
    expected: list[Expected] = field(default_factory=list)
    reason: str = ""
    model_version: str = ""
    source: str = ""
    session_key: str = ""
    warnings: list[str] = field(default_factory=list)
    reason_code: str = ""  # ReasonCode value when anomalous, else ""
    model: str = ""  # the model route that scored it

    def to_dict(self) -> dict:
        # by hand, not dataclasses.asdict: its deep copy was 40 % of the HTTP gateway's time on big answers
        out = {name: getattr(self, name) for name in EventOut.__dataclass_fields__}
        out["expected"] = [
            {"template_id": e.template_id, "template": e.template, "probability": e.probability} for e in self.expected
        ]
        out["warnings"] = list(self.warnings)
        out["verdict"] = "" if self.status != SCORED else ("anomalous" if self.anomalous else "normal")
        return out

    @classmethod
    def from_dict(cls, data: dict) -> EventOut:
        """Back from ``to_dict`` (a stored idempotent answer)."""
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["expected"] = [Expected(**e) for e in data.get("expected") or []]
        return cls(**fields)


@dataclass(slots=True)
class SessionOut:
    """The verdict for one whole session (sequence mode), or for a stream-mode request's part of a
    session and its end (an event with ``session_end``)."""

    source: str
    session_key: str
    score: float
    anomalous: bool
    reason: str
    events: int
    anomalous_events: int
    end: EventOut | None
    model_version: str
    reason_code: str = ""
    event_ids: list[str] = field(default_factory=list)  # the ids of the request's events in the session
    open: bool = False  # partial sessions: no event marked the end, so the end and the template set were not judged
    model: str = ""

    def to_dict(self) -> dict:
        out = {name: getattr(self, name) for name in SessionOut.__dataclass_fields__}
        out["event_ids"] = list(self.event_ids)
        out["verdict"] = "anomalous" if self.anomalous else "normal"
        out["end"] = self.end.to_dict() if self.end else None
        return out

    @classmethod
    def from_dict(cls, data: dict) -> SessionOut:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["end"] = EventOut.from_dict(data["end"]) if data.get("end") else None
        return cls(**fields)


@dataclass(slots=True)
class ScoreOutput:
    results: list[EventOut]
    sessions: list[SessionOut]
    model_version: str
    replayed: bool = False  # the stored answer of an earlier request with the same idempotency key
    model: str = ""

    def to_dict(self) -> dict:
        return {
            "results": [r.to_dict() for r in self.results],
            "sessions": [s.to_dict() for s in self.sessions],
            "model_version": self.model_version,
            "replayed": self.replayed,
            "model": self.model,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ScoreOutput:
        return cls(
            [EventOut.from_dict(r) for r in data["results"]],
            [SessionOut.from_dict(s) for s in data["sessions"]],
            data["model_version"],
            bool(data.get("replayed")),
            data.get("model", ""),
        )


@dataclass(slots=True)
class LabelIn:
    """An analyst's verdict on an event or a session."""

    id: str = ""
    target: Literal["event", "session", ""] = ""
    value: Literal["anomaly", "normal", ""] = ""
    analyst: str = ""
    time: float | None = None
    comment: str = ""
    source: str = ""
    session_key: str = ""
    template_id: str = ""
    event_id: str = ""
    message: str = ""
    model_version: str = ""
    keys: list[str] = field(default_factory=list)  # the session's log keys, in order (empty: unknown)
    predicted: Literal["anomaly", "normal", ""] = ""  # the model's verdict at the time ("": unknown)
    reason: str = ""  # the model's alert reason
    reason_code: str = ""  # its ReasonCode value ("": unknown)
    external_id: str = ""  # the caller's stable id of what is labelled: unique among the store's live labels
    attributes: dict[str, str] = field(default_factory=dict)  # where the labelled event lives (index, _id, sid)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class LabelOut:
    id: str
    accepted: bool
    error: str = ""
    error_field: str = ""
    label_id: str = ""
    duplicate: bool = False  # the same label (external id and content) was stored before: nothing written
    replaced: bool = False  # a live label with the same external id and other content was replaced by this one

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class StoredLabelOut:
    """A label as the store keeps it: its store id, what it says, and whether it was withdrawn."""

    label_id: str
    label: LabelIn
    retracted: bool = False

    def to_dict(self) -> dict:
        return {"label_id": self.label_id, "label": self.label.to_dict(), "retracted": self.retracted}


@dataclass(slots=True)
class LabelQuery:
    """Which stored labels to list: analyst time at or after ``since`` (epoch seconds), store id after
    ``after_id``, of ``source``; ``limit`` per page; withdrawn ones only with ``include_retracted``."""

    since: float | None = None
    after_id: int = 0
    source: str = ""
    limit: int = 0  # 0: the default page size
    include_retracted: bool = False


@dataclass(slots=True)
class LabelPage:
    labels: list[StoredLabelOut]
    next_after_id: int = 0  # the after_id of the next page; 0 when this page was the last

    def to_dict(self) -> dict:
        return {"labels": [x.to_dict() for x in self.labels], "next_after_id": self.next_after_id}


@dataclass(slots=True)
class RetractOut:
    """What a retraction did with one id (a store id or an external id, as given)."""

    id: str
    retracted: bool
    error: str = ""
    error_field: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class ModelInfoOut:
    version: str
    path: str
    line_format: str
    backend: str
    k: int
    templates: int
    session_rule: dict
    available_versions: list[str]
    loaded_at: float
    max_context: int
    name: str = "default"  # the model route
    routes: list[dict] = field(default_factory=list)  # every served route: name, version, path, rules, is_default

    def to_dict(self) -> dict:
        return asdict(self)
