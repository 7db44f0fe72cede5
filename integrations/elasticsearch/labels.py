"""Analysts' labels from Kibana to the scoring server.

An analyst sets ``logwarden.label`` (``anomaly`` or ``normal``; ``logwarden.label_by`` who,
``logwarden.label_comment`` why, ``logwarden.label_target`` ``event`` (default) or ``session``) on a
document, with a Kibana action or an ``_update``. The worker finds labelled documents not yet sent
(no ``logwarden.label_sent``), submits them with ``external_id`` ``"<index>/<_id>"`` and the document as
``attributes``, then marks each accepted one ``logwarden.label_sent`` (the value sent), ``label_id`` and
``label_sent_at`` — only if the document did not change meanwhile (``if_seq_no``), so a label changed
while it was in flight is sent again. A label the server refuses is marked with ``label_error`` and the
value, and not sent again until an analyst changes it (and removes ``label_sent``).

A label sent but not marked (the worker killed in between) is sent again; the server keeps one label per
``external_id``, so it is stored once.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from logwarden.integrations.client import ScorerUnavailable
from logwarden.integrations.elasticsearch.bulk import lookup
from logwarden.integrations.elasticsearch.metrics import WorkerMetrics
from logwarden.integrations.elasticsearch.search import Hit, iso, iter_hits, logical_index, write_back
from logwarden.integrations.elasticsearch.settings import WorkerSettings

log = structlog.get_logger("logwarden.es_worker")
VALUES = {"anomaly": "anomaly", "anomalous": "anomaly", "normal": "normal"}
TARGETS = ("event", "session")
QUERY = {
    "bool": {
        "filter": [{"exists": {"field": "logwarden.label"}}],
        "must_not": [{"exists": {"field": "logwarden.label_sent"}}],
    }
}


class LabelForwarder:
    def __init__(self, settings: WorkerSettings, es, scorer, *, metrics: WorkerMetrics | None = None) -> None:
        self.s, self.es, self.scorer = settings, es, scorer
        self.metrics = metrics or WorkerMetrics()

    def forward(self) -> int:
        """Send every unsent label; the number accepted and marked sent. ``ScorerUnavailable`` leaves the rest
        for next time."""
        batch: list[Hit] = []
        accepted = 0
        for hit in iter_hits(self.es, self.s.index, QUERY, time_field=self.s.time_field, page_size=self.s.page_size):
            batch.append(hit)
            if len(batch) >= self.s.label_batch:
                accepted += self._send(batch)
                batch = []
        if batch:
            accepted += self._send(batch)
        return accepted

    def label(self, hit: Hit) -> dict[str, Any] | str:
        """The Label for a labelled document, or the reason it cannot be one."""
        lw = hit.source.get("logwarden") if isinstance(hit.source.get("logwarden"), dict) else {}
        value = VALUES.get(str(lookup(hit.source, "logwarden.label")).strip().lower())
        if value is None:
            return "logwarden.label must be anomaly or normal"
        target = str(lw.get("label_target") or "event").lower()
        if target not in TARGETS:
            return "logwarden.label_target must be event or session"
        source = lookup(hit.source, self.s.source_field) if self.s.source_field else None
        out: dict[str, Any] = {
            "id": hit.external_id,
            "external_id": hit.external_id,
            "target": target,
            "value": value,
            "analyst": str(lw.get("label_by") or "kibana"),
            "comment": str(lw.get("label_comment") or ""),
            "source": str(source) if source not in (None, "") else logical_index(hit.index),
            "session_key": str(lw.get("session_key") or ""),
            "template_id": str(lw.get("template_id") or ""),
            "event_id": hit.external_id,
            "model_version": str(lw.get("model_version") or ""),
            "reason": str(lw.get("reason") or ""),
            "attributes": {"index": hit.index, "id": hit.id},
        }
        message = lookup(hit.source, self.s.message_field)
        if isinstance(message, str):
            out["message"] = message[:65536]
        if lw.get("verdict") in ("anomalous", "normal"):
            out["predicted"] = "anomaly" if lw["verdict"] == "anomalous" else "normal"
        if target == "session" and not out["session_key"]:
            return "a session label needs logwarden.session_key"
        return out

    def _send(self, hits: list[Hit]) -> int:
        labels, sendable, marks = [], [], []
        for hit in hits:
            label = self.label(hit)
            if isinstance(label, str):
                marks.append((hit, {"label_error": label, "label_sent": str(lookup(hit.source, "logwarden.label"))}))
                self.metrics.labels.labels("refused").inc()
                continue
            labels.append(label)
            sendable.append(hit)
        if labels:
            try:
                results = self.scorer.submit_labels(labels)
            except ScorerUnavailable as exc:
                log.warning("es worker: labels not sent, trying again later", count=len(labels), error=str(exc))
                return 0
            now = iso(int(time.time() * 1000))
            for hit, label, result in zip(sendable, labels, results, strict=True):
                if result.get("accepted"):
                    self.metrics.labels.labels("sent").inc()
                    marks.append(
                        (
                            hit,
                            {
                                "label_sent": label["value"],
                                "label_id": result.get("label_id", ""),
                                "label_sent_at": now,
                            },
                        )
                    )
                else:
                    self.metrics.labels.labels("refused").inc()
                    marks.append((hit, {"label_error": result.get("error", "refused"), "label_sent": label["value"]}))
        marked = self._mark(marks)
        return sum(1 for hit, m in marks if "label_id" in m and hit.ref in marked)

    def _mark(self, marks: list[tuple[Hit, dict]]) -> set[tuple[str, str]]:
        from elasticsearch import helpers

        actions = [write_back(hit, {"logwarden": fields}) for hit, fields in marks]  # only if unchanged
        marked = set()
        outcomes = helpers.streaming_bulk(
            self.es, actions, max_retries=self.s.write_retries, initial_backoff=0.5, raise_on_error=False
        )
        for (hit, _), (ok, item) in zip(marks, outcomes, strict=True):
            info = next(iter(item.values()))
            if ok:
                marked.add(hit.ref)
                self.metrics.labels.labels("marked").inc()
            elif info.get("status") == 409:  # the label changed while in flight: it is sent again next time
                self.metrics.labels.labels("changed").inc()
            else:
                log.warning("es worker: label not marked sent", document=info.get("_id"), status=info.get("status"))
        return marked
