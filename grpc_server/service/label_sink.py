"""The label store behind ``ScoringService.labels``: wire labels become core ``Label``s, are written
durably, and move their source's K at once.

    sink = await open_label_sink(path, holder)        # SQLite store + thresholds for the served version
    ScoringService(..., labels=sink, k_lookup=sink.k_for_source, on_model_change=sink.model_changed)
    await sink.close()

SQLite blocks (fsync on commit), so writes and the rebuild at startup / after a reload run in a worker
thread; ``k_for_source`` only reads a dict under a lock and never blocks the event loop. Submits and
rebuilds are serialized, so a label written while the thresholds are being rebuilt for a new model
version is never lost between the two. A label without ``model_version`` is taken to be about the
served version (the one whose K it recalibrates).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import grpc
import structlog

from logwarden.core.errors import LogWardenError
from logwarden.core.labels import KBounds, Label, LabelError, LabelStore, SourceThresholds, SqliteLabelStore
from logwarden.grpc_server.service.errors import InvalidRequest, ServiceError
from logwarden.grpc_server.service.model_holder import ModelHolder, ServedModel
from logwarden.grpc_server.service.schema import LabelIn

log = structlog.get_logger("logwarden.labels")

# core Label field → the wire (proto / JSON) field name, where they differ
WIRE_FIELDS = {"verdict": "value", "created_at": "time"}


class LabelStoreUnavailable(ServiceError):
    """The store could not write (disk full, locked by another process past the timeout): retry later."""

    code = grpc.StatusCode.UNAVAILABLE
    http_status = 503


def wire_field(core_field: str) -> str:
    return WIRE_FIELDS.get(core_field, core_field)


def to_label(label: LabelIn, default_model_version: str = "") -> Label:
    """The core label of a wire label; ``LabelError.field`` names the core field at fault."""
    created_at = None
    if label.time is not None:
        try:
            created_at = datetime.fromtimestamp(label.time, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise LabelError("created_at", f"not a representable time: {label.time!r}") from exc
    return Label(
        target=label.target,
        verdict=label.value,
        source=label.source,
        analyst=label.analyst,
        session_key=label.session_key,
        template_id=label.template_id or None,
        event_id=label.event_id or None,
        message=label.message or None,
        model_version=label.model_version or default_model_version,
        predicted=label.predicted or None,
        reason=label.reason,
        reason_code=label.reason_code or None,
        comment=label.comment,
        keys=label.keys or None,
        created_at=created_at,
    )


def thresholds_for(store: LabelStore, model: ServedModel) -> SourceThresholds:
    """Per-source K for ``model`` from the labels on its version (blocking: reads the whole store)."""
    det = model.detector
    k = det.calibration.k
    return SourceThresholds.from_store(store, k, KBounds.around(k, len(det.vocab)), model_version=model.version)


class StoreLabelSink:
    """A ``LabelSink`` over a ``LabelStore`` that keeps ``SourceThresholds`` for the served version."""

    def __init__(self, store: LabelStore, served_version: Callable[[], str]) -> None:
        self.store = store
        self.served_version = served_version
        self.thresholds: SourceThresholds | None = None
        self._lock = asyncio.Lock()

    async def use_model(self, model: ServedModel) -> None:
        """Rebuild the thresholds for ``model`` (its K, its vocabulary, the labels on its version).
        On failure the new version runs on its calibrated K, and the error is raised."""
        async with self._lock:
            if model.version != self.served_version():
                return  # overtaken by a later reload, whose own rebuild follows
            try:
                built = await asyncio.to_thread(thresholds_for, self.store, model)
            except LogWardenError:
                k = model.detector.calibration.k
                self.thresholds = SourceThresholds(
                    k, KBounds.around(k, len(model.detector.vocab)), model_version=model.version
                )
                raise
            self.thresholds = built
        log.info(
            "label thresholds",
            model_version=model.version,
            base_k=built.base_k,
            bounds=[built.bounds.min_k, built.bounds.max_k],
            sources=built.snapshot(),
        )

    async def model_changed(self, model: ServedModel) -> None:
        """Reload hook: never fails the reload (the model has changed already); errors are logged."""
        try:
            await self.use_model(model)
        except LogWardenError as exc:
            log.error(
                "label thresholds rebuild failed; serving the calibrated K", model_version=model.version, error=str(exc)
            )

    def k_for_source(self, source: str) -> int | None:
        thresholds = self.thresholds
        return None if thresholds is None else thresholds.k_for_source(source)

    async def submit(self, labels: Sequence[LabelIn]) -> list[str]:
        """Store labels (validated by ``check_label``) in one transaction, then update the thresholds.
        Shielded: a caller that goes away mid-write does not leave stored labels uncounted."""
        version = self.served_version()
        core = [to_label(label, version) for label in labels]
        ids = await asyncio.shield(self._write(core))
        return [str(i) for i in ids]

    async def _write(self, labels: list[Label]) -> list[int]:
        async with self._lock:
            try:
                ids = await asyncio.to_thread(self.store.add_many, labels)
            except LabelError as exc:  # check_label lets nothing through that the store refuses; if it did:
                raise InvalidRequest(f"labels.{wire_field(exc.field)}", exc.problem) from exc
            except LogWardenError as exc:
                log.error("labels not stored", error=str(exc))
                cause = f" ({exc.__cause__})" if exc.__cause__ is not None else ""  # SQLite's words, no path
                message = f"labels not stored: the label store could not write{cause}; retry"
                raise LabelStoreUnavailable(message) from exc
            thresholds = self.thresholds
            if thresholds is not None:
                for label in labels:
                    thresholds.observe(label)
        return ids

    async def close(self) -> None:
        """Wait for a write in progress, then close the store."""
        async with self._lock:
            await asyncio.to_thread(self.store.close)


async def open_label_sink(path: Path | str, holder: ModelHolder) -> StoreLabelSink:
    """Open (or create) the SQLite label store at ``path`` and build the thresholds for the served model."""
    store = await asyncio.to_thread(SqliteLabelStore, path)
    sink = StoreLabelSink(store, lambda: holder.current.version)
    try:
        await sink.use_model(holder.current)
    except BaseException:
        store.close()
        raise
    return sink
