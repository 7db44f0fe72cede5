"""The receiver's Prometheus metrics, on a registry of its own (one per receiver)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from logwarden.grpc_server.observability import LATENCY_BUCKETS


class ReceiverMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.records_in = Counter("logwarden_fluent_records_in", "Records received", ["mode"], registry=r)
        self.records_out = Counter(
            "logwarden_fluent_records_out", "Records re-emitted, by logwarden.status", ["status"], registry=r
        )
        self.chunks = Counter(
            "logwarden_fluent_chunks",
            "Chunks by outcome: acked, done (no ack asked), refused (bad input), failed (next hop)",
            ["result"],
            registry=r,
        )
        self.signals = Counter(
            "logwarden_fluent_signal_chunks", "Non-log chunks (metrics, traces), by result", ["result"], registry=r
        )
        self.next_hop_errors = Counter(
            "logwarden_fluent_next_hop_errors", "Chunks the next hop did not accept", ["next_hop"], registry=r
        )
        self.next_hop_seconds = Histogram(
            "logwarden_fluent_next_hop_seconds",
            "Time for the next hop to accept a chunk",
            ["next_hop"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ack_seconds = Histogram(
            "logwarden_fluent_chunk_seconds",
            "Time from a chunk's last byte to its ack (score + re-emit)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.connections = Gauge("logwarden_fluent_connections", "Open client connections", registry=r)
        self.handshakes = Counter("logwarden_fluent_handshakes", "Handshakes, by result", ["result"], registry=r)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
