"""The no-loss scenario, shared by tests/integrations/fluent/test_no_loss.py and ``benchmarks/fluent.py --no-loss``.

Real processes: the scoring server (``logwarden serve``), the receiver (``logwarden fluent-receiver``) and the
next hop (@fluent-org/logger's FluentServer, standing for a Fluentd/Fluent Bit aggregator). The sender stands
for Fluent Bit's ``forward`` output with ``Require_ack_response``, gzip and ``Retry_Limit no_limits``
(tests/peers/fluent_bit.py). While the records flow, the scorer is killed (-9) and restarted, then the next
hop is killed (-9) and restarted. Every record must reach the next hop (count and content checked), scored or
marked unscored; duplicates (at-least-once) are counted.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from peers.fluent_bit import FluentBitSender, compressed_frame, v2_entry
from peers.fluent_node import FluentServerPeer

from logwarden.core.synthetic import generate

REPO = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoggedProcess:
    """A LogWarden command in its own process; ``ready`` when its JSON log says ``event == ready_event``."""

    def __init__(self, args: list[str], ready_event: str) -> None:
        self.args, self.ready_event = args, ready_event
        self.proc: subprocess.Popen | None = None
        self.logs: list[dict] = []

    def start(self, timeout: float = 180) -> LoggedProcess:
        self.logs = []
        ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "logwarden.core.cli", *self.args],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

        def read() -> None:
            for line in self.proc.stderr:
                if line.startswith("{"):
                    entry = json.loads(line)
                    self.logs.append(entry)
                    if entry.get("event") == self.ready_event:
                        ready.set()

        threading.Thread(target=read, daemon=True).start()
        end = time.monotonic() + timeout
        while not ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"{self.args[0]} did not start: {self.logs[-5:]}")
        return self

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def scorer_process(model: Path, port: int) -> LoggedProcess:
    return LoggedProcess(["serve", "--model", str(model), "--grpc-port", str(port), "--log-level", "info"], "serving")


def receiver_process(port: int, scorer_port: int, hop_port: int, *extra: str) -> LoggedProcess:
    args = [
        "fluent-receiver",
        "--port",
        str(port),
        "--http-port",
        "0",
        "--scorer",
        f"127.0.0.1:{scorer_port}",
        "--score-budget-s",
        "2",
        "--score-timeout-s",
        "1",
        "--next-hop",
        "forward",
        "--forward-port",
        str(hop_port),
        "--no-forward-retain-metadata",  # FluentServer reads [time, record] entries only
        "--next-hop-budget-s",
        "3",
        "--next-hop-timeout-s",
        "2",
        *extra,
    ]
    return LoggedProcess(args, "receiving")


def run_no_loss(model: Path, records: int, *, chunk_records: int = 500, workers: int = 4) -> dict[str, Any]:
    """Send ``records`` through scorer and next-hop failures; the report of what arrived."""
    lines = generate(n_sessions=max(20, records // 400), anomaly_rate=0.05, seed=11).lines
    scorer_port, receiver_port = free_port(), free_port()
    hop = FluentServerPeer().start()
    scorer = scorer_process(model, scorer_port).start()
    receiver = receiver_process(receiver_port, scorer_port, hop.port).start()
    started = time.monotonic()
    try:
        retries, steps = asyncio.run(_drive(receiver_port, lines, records, chunk_records, workers, scorer, hop))
        seconds = time.monotonic() - started
        deadline = time.monotonic() + 60
        while len({e["record"]["seq"] for e in hop.received()}) < records and time.monotonic() < deadline:
            time.sleep(0.1)
        receiver_rc = receiver.terminate()
    finally:
        if receiver.proc.poll() is None:
            receiver.kill()
        if scorer.proc.poll() is None:
            scorer.kill()
        hop.stop()
    try:
        return _report(hop.received(), lines, records, retries, steps, seconds, receiver_rc)
    finally:
        hop.close()


async def _drive(port, lines, records, chunk_records, workers, scorer, hop) -> tuple[int, list[str]]:
    chunks = asyncio.Queue()
    for start in range(0, records, chunk_records):
        chunks.put_nowait(start)
    acked = 0
    steps: list[str] = []
    limit = 0  # workers start no chunk at or past this record number until the chaos plan moves it on
    senders = [FluentBitSender("127.0.0.1", port, retry_wait_s=0.2, ack_timeout_s=30) for _ in range(workers)]

    async def worker(sender: FluentBitSender) -> None:
        nonlocal acked
        while not chunks.empty():
            start = chunks.get_nowait()
            while start >= limit:
                await asyncio.sleep(0.01)
            entries = [
                v2_entry({"log": lines[i % len(lines)], "seq": i}, 1_700_000_000 + i // 1000)
                for i in range(start, min(records, start + chunk_records))
            ]
            frame, cid = compressed_frame("app.hdfs", entries)
            await sender.send(frame, cid)
            acked += len(entries)

    async def chaos() -> None:
        nonlocal limit
        # (when: acked fraction, or seconds after the previous step; what; how far traffic may go meanwhile)
        plan = [
            ("acked", 0.15, "kill scorer", scorer.kill, 0.35),
            ("acked", 0.35, "restart scorer", scorer.start, 0.5),
            ("acked", 0.5, "kill next hop", hop.kill, 1.0),
            ("seconds", 3.0, "restart next hop", hop.start, 1.0),
        ]
        limit = int(0.15 * records) + 1
        for kind, when, name, action, then in plan:
            if kind == "acked":
                while acked < when * records:
                    await asyncio.sleep(0.01)
            else:
                await asyncio.sleep(when)
            limit = int(then * records) + 1  # traffic goes on while the step runs, but not past the next one
            at = acked
            await asyncio.to_thread(action)
            steps.append(f"{name} at {at} acked")

    await asyncio.gather(chaos(), *(worker(s) for s in senders))
    for s in senders:
        await s.close()
    return sum(s.retries for s in senders), steps


def _report(entries, lines, records, retries, steps, seconds, receiver_rc) -> dict[str, Any]:
    seen: Counter = Counter()
    statuses: Counter = Counter()
    reasons: Counter = Counter()
    wrong = 0
    for e in entries:
        record = e["record"]
        seq = record["seq"]
        seen[seq] += 1
        statuses[record["logwarden"]["status"]] += 1
        if record["logwarden"]["status"] == "unscored":
            reasons[record["logwarden"].get("reason", "")[:60]] += 1
        if record["log"] != lines[seq % len(lines)] or record["logwarden"]["status"] not in ("scored", "unscored"):
            wrong += 1
    missing = sorted(set(range(records)) - set(seen))
    return {
        "records": records,
        "arrived_unique": len(seen),
        "missing": len(missing),
        "missing_ranges": _ranges(missing)[:10],
        "duplicates": sum(n - 1 for n in seen.values()),
        "wrong_content": wrong,
        "scored": statuses["scored"],
        "unscored": statuses["unscored"],
        "unscored_reasons": dict(reasons.most_common(3)),
        "sender_retries": retries,
        "steps": steps,
        "seconds": round(seconds, 1),
        "receiver_exit_code": receiver_rc,
    }


def _ranges(numbers: list[int]) -> list[list[int]]:
    """Sorted numbers as [first, last] runs (which records went missing, readably)."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and runs[-1][1] == n - 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return runs
