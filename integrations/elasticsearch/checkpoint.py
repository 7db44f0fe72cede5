"""The worker's checkpoint: one document in an index of its own, written only after a pass's write-backs were
acknowledged, and only if nobody else wrote it since it was read (``if_seq_no``/``if_primary_term``).

It holds the watermark (window mode: every document older than it is done) and the sessions still open at
the watermark (their documents' references), so a killed worker redoes at most the pass it was in: the
same documents, the same sessions, the same results — which the write-back finds already written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from logwarden.core.errors import LogWardenError

MAPPINGS = {
    "dynamic": False,
    "properties": {
        "watermark_ms": {"type": "long"},
        "updated": {"type": "date"},
        "open": {"type": "object", "enabled": False},
    },
}


class CheckpointConflict(LogWardenError):
    """Another worker wrote this checkpoint since it was read: two workers must not share one."""


@dataclass
class OpenSession:
    """A session whose end was not seen yet: its key, source, documents (oldest first) and last event time."""

    key: str
    source: str
    docs: list[tuple[str, str]]
    last_ms: int | None

    def to_dict(self) -> dict:
        return {"key": self.key, "source": self.source, "docs": [list(d) for d in self.docs], "last_ms": self.last_ms}

    @classmethod
    def from_dict(cls, data: dict) -> OpenSession:
        return cls(data["key"], data.get("source", ""), [tuple(d) for d in data.get("docs", [])], data.get("last_ms"))


@dataclass
class Checkpoint:
    watermark_ms: int | None = None
    open: list[OpenSession] = field(default_factory=list)
    seq_no: int | None = None
    primary_term: int | None = None

    def body(self, now_iso: str) -> dict[str, Any]:
        return {
            "watermark_ms": self.watermark_ms,
            "open": [s.to_dict() for s in self.open],
            "updated": now_iso,
        }


class CheckpointStore:
    def __init__(self, client, index: str, checkpoint_id: str) -> None:
        self.client, self.index, self.id = client, index, checkpoint_id

    def load(self) -> Checkpoint:
        from elasticsearch import NotFoundError

        try:
            doc = self.client.get(index=self.index, id=self.id)
        except NotFoundError:
            return Checkpoint()
        source = doc["_source"]
        return Checkpoint(
            watermark_ms=source.get("watermark_ms"),
            open=[OpenSession.from_dict(s) for s in source.get("open", [])],
            seq_no=doc["_seq_no"],
            primary_term=doc["_primary_term"],
        )

    def ensure_index(self) -> None:
        from elasticsearch import BadRequestError

        if self.client.indices.exists(index=self.index):
            return
        try:
            self.client.indices.create(index=self.index, mappings=MAPPINGS)
        except BadRequestError as exc:  # created meanwhile by another worker
            if "resource_already_exists_exception" not in str(exc.error):
                raise

    def save(self, checkpoint: Checkpoint, now_iso: str) -> Checkpoint:
        """Write ``checkpoint`` if the stored one is still the one it was read from; the saved version."""
        from elasticsearch import ConflictError

        kwargs: dict[str, Any] = {"index": self.index, "id": self.id, "document": checkpoint.body(now_iso)}
        if checkpoint.seq_no is None:
            kwargs["op_type"] = "create"
        else:
            kwargs.update(if_seq_no=checkpoint.seq_no, if_primary_term=checkpoint.primary_term)
        try:
            answer = self.client.index(**kwargs)
        except ConflictError:
            raise CheckpointConflict(
                f"checkpoint {self.index}/{self.id} was written by someone else since it was read: is another "
                "worker running with the same name?"
            ) from None
        checkpoint.seq_no, checkpoint.primary_term = answer["_seq_no"], answer["_primary_term"]
        return checkpoint
