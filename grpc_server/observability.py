"""Observability of the scoring server: Prometheus metrics on a registry of its own, structlog JSON logs.

Rates come from counters: events/s = ``rate(logwarden_events_total[1m])``, anomaly rate =
``rate(logwarden_anomalous_events_total[5m]) / rate(logwarden_events_total{status="scored"}[5m])``,
new-template rate likewise. The HTTP gateway serves ``render()`` at ``/metrics``, and so does the
standalone metrics port (``--metrics-port``, ``gateway.app.MetricsEndpoint``) with the same TLS and tokens.
"""

from __future__ import annotations

import logging
import sys

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384)


class ServerMetrics:
    """All server metrics; one instance per server process (tests make several)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "logwarden_events", "Events received, by result status", ["model_version", "status"], registry=r
        )
        self.anomalous = Counter("logwarden_anomalous_events", "Events scored anomalous", ["model_version"], registry=r)
        self.new_templates = Counter(
            "logwarden_new_template_events",
            "Events with a template never seen in training",
            ["model_version"],
            registry=r,
        )
        self.sessions = Counter(
            "logwarden_sessions", "Whole sessions scored (sequence mode)", ["model_version", "verdict"], registry=r
        )
        self.requests = Counter(
            "logwarden_requests", "Scoring service calls, by outcome", ["method", "code"], registry=r
        )
        self.latency = Histogram(
            "logwarden_request_seconds", "Scoring service call latency", ["method"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.batch_events = Histogram(
            "logwarden_batch_events", "Events per model batch", ["model_version"], buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            "logwarden_batch_seconds",
            "Model time per batch (parse + score)",
            ["model_version"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_events = Gauge("logwarden_queue_events", "Events waiting for the model", registry=r)
        self.model_info = Gauge(
            "logwarden_model_info", "The served model version (value 1)", ["model_version"], registry=r
        )
        self.replays = Counter(
            "logwarden_idempotent_replays", "Requests answered from the idempotency store (a replay)", registry=r
        )
        self.reloads = Counter("logwarden_model_reloads", "Model reload attempts", ["result"], registry=r)
        self.http_requests = Counter(
            "logwarden_http_requests",
            "HTTP gateway requests, by route and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "logwarden_http_request_seconds",
            "HTTP gateway request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def set_model(self, version: str, previous: str | None = None) -> None:
        if previous is not None and previous != version:
            self.model_info.remove(previous)
        self.model_info.labels(version).set(1)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type, for an HTTP handler."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def configure_logging(level: str = "info") -> None:
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
