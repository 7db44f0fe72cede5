"""The Fluent Bit output path end to end: Forward in (gzip, acks), scored, enriched, re-emitted, acked.

    python benchmarks/fluent.py [--records N] [--passthrough-records N] [--chunk-records N] [--workers N]
                                [--offered R] [--seconds S] [--model DIR]
                                [--phases scorer,scored,passthrough,latency] [--no-loss]

Real processes: ``logwarden serve`` (a small model trained on generated HDFS-style logs unless ``--model``) and
``logwarden fluent-receiver`` (Forward next hop). This process is both the load generator — ``--workers``
connections shaped like Fluent Bit v5.1's ``forward`` output with ``Require_ack_response`` and ``Compress gzip``
(v2 entries, SHA-512 chunk ids; tests/peers/fluent_bit.py), each sending its chunks one at a time and waiting
for the ack — and the next hop: a minimal ``in_forward`` that unpacks every frame, counts the entries and acks.
Chunks are built and compressed before the clock starts.

0. ``scorer``: the scorer alone, as ``benchmarks/server.py`` loads it (raw lines over 4 gRPC streams, 500 per
   message), on the same lines: the ceiling of the scored path on this machine today;
1. ``scored``: records/s with the real scorer in the loop (and its share of the scorer's own rate);
2. ``passthrough``: the receiver with ``--passthrough`` (scoring off): what the receiver alone sustains
   (``--passthrough-records``, more than ``--records``: this phase is short);
3. ``latency``: ``--offered`` records/s on a fixed schedule (chunks of ``--latency-chunk-records``), p50/p99
   chunk ack latency (send start to ack).

The receiver's peak RSS and CPU cores used are reported for each phase. ``--no-loss`` instead runs the no-loss
scenario (tests/integrations/fluent/no_loss.py; default 100,000 records) and prints its report.

Ends with one JSON line: ``records_per_s``, ``passthrough_records_per_s``, ``p99_ack_ms``, ``rss_mb``,
``scorer_events_per_s``, ``scored_share_of_scorer`` and more.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgpack
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "integrations" / "fluent"), str(ROOT / "benchmarks")]

from no_loss import free_port, receiver_process, run_no_loss, scorer_process  # noqa: E402
from peers.fluent_bit import FluentBitSender, compressed_frame, v2_entry  # noqa: E402
from server import batches, cpu_seconds, grpc_load, replay  # noqa: E402

from logwarden.core.synthetic import generate  # noqa: E402


class CountingSink:
    """The next hop: reads Forward frames (Forward or PackedForward mode), counts entries, acks each chunk."""

    def __init__(self) -> None:
        self.entries = 0
        self.port = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        unpacker = msgpack.Unpacker(raw=False, unicode_errors="surrogateescape", strict_map_key=False)
        try:
            while data := await reader.read(1 << 20):
                unpacker.feed(data)
                for frame in unpacker:
                    self.entries += count_entries(frame[1])
                    chunk = frame[2].get("chunk") if len(frame) > 2 else None
                    if chunk is not None:
                        writer.write(msgpack.packb({"ack": chunk}))
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


def count_entries(body: list | bytes) -> int:
    """Entries in a Forward frame's body: a list (Forward mode) or packed entries (PackedForward), unpacked
    as in_forward unpacks them."""
    if isinstance(body, list):
        return len(body)
    return sum(1 for _ in msgpack.Unpacker(io.BytesIO(body), raw=False, strict_map_key=False))


def build_chunks(lines: list[str], records: int, chunk_records: int, first_cycle: int) -> list[tuple[bytes, str]]:
    out, cycle, seq = [], first_cycle, 0
    pending: list = []
    while seq < records:
        for line in replay(lines, cycle):
            if seq >= records:
                break
            pending.append(v2_entry({"log": line, "host": "dn1", "seq": seq}, 1_700_000_000 + seq // 1000))
            seq += 1
            if len(pending) == chunk_records:
                out.append(compressed_frame("app.hdfs", pending))
                pending = []
        cycle += 1
    if pending:
        out.append(compressed_frame("app.hdfs", pending))
    return out


class RssSampler:
    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb, self._stop = pid, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.peak_kb = max(self.peak_kb, int(line.split()[1]))

    def __enter__(self) -> RssSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(2)


async def sustained(port: int, chunks: list[tuple[bytes, str]], workers: int) -> float:
    """Seconds to get every chunk acked over ``workers`` connections."""
    queue: asyncio.Queue = asyncio.Queue()
    for c in chunks:
        queue.put_nowait(c)
    senders = [FluentBitSender("127.0.0.1", port, ack_timeout_s=60) for _ in range(workers)]

    async def work(sender: FluentBitSender) -> None:
        while not queue.empty():
            frame, cid = queue.get_nowait()
            await sender.send(frame, cid)

    started = time.perf_counter()
    await asyncio.gather(*(work(s) for s in senders))
    elapsed = time.perf_counter() - started
    for s in senders:
        await s.close()
    return elapsed


async def paced(port: int, chunks: list[tuple[bytes, str]], per_second: float, workers: int) -> list[float]:
    """Chunks sent on a fixed schedule (``per_second`` chunks/s spread over ``workers`` connections)."""
    senders = [FluentBitSender("127.0.0.1", port, ack_timeout_s=60) for _ in range(workers)]
    latencies: list[float] = []
    start = time.perf_counter() + 0.2

    async def work(k: int) -> None:
        for i in range(k, len(chunks), workers):
            delay = start + i / per_second - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            latencies.append(await senders[k].send(*chunks[i]))

    await asyncio.gather(*(work(k) for k in range(workers)))
    for s in senders:
        await s.close()
    return latencies


def run_phase(name, receiver_args, scorer_port, chunks, sink, loop, args, offered=None) -> dict:
    port = free_port()
    receiver = receiver_process(port, scorer_port, sink.port, *receiver_args).start()
    before = sink.entries
    try:
        cpu0, own0 = cpu_seconds(receiver.proc.pid), cpu_seconds()
        with RssSampler(receiver.proc.pid) as rss:
            started = time.perf_counter()
            if offered is None:
                elapsed = asyncio.run_coroutine_threadsafe(sustained(port, chunks, args.workers), loop).result()
                latencies = []
            else:
                per_second = offered / args.latency_chunk_records
                latencies = asyncio.run_coroutine_threadsafe(
                    paced(port, chunks, per_second, args.latency_workers), loop
                ).result()
                elapsed = time.perf_counter() - started
            cores = (cpu_seconds(receiver.proc.pid) - cpu0) / elapsed
            loadgen = (cpu_seconds() - own0) / elapsed
    finally:
        receiver.terminate()
    records = sink.entries - before
    out = {
        "phase": name,
        "records": records,
        "seconds": round(elapsed, 2),
        "records_per_s": round(records / elapsed),
        "receiver_cores": round(cores, 2),
        "loadgen_cores": round(loadgen, 2),
        "rss_mb": round(rss.peak_kb / 1024, 1),
    }
    if latencies:
        ms = np.array(latencies) * 1000
        out.update(p50_ack_ms=round(float(np.percentile(ms, 50)), 1), p99_ack_ms=round(float(np.percentile(ms, 99)), 1))
    return out


def scorer_alone(scorer_port: int, scorer_pid: int, lines: list[str], cycle: int, seconds: float) -> dict:
    """The scorer's own sustained rate on these lines, loaded as ``benchmarks/server.py`` loads it."""
    requests = batches(lines, 500, range(cycle, cycle + 4))
    return asyncio.run(grpc_load(f"127.0.0.1:{scorer_port}", requests, seconds, 4, None, 500, scorer_pid))


def train(tmp: Path) -> Path:
    model = tmp / "model"
    (tmp / "train.log").write_text("\n".join(generate(400, seed=21).lines) + "\n")
    cmd = [sys.executable, "-m", "logwarden.core.cli", "train", str(tmp / "train.log"), "--format", "hdfs"]
    subprocess.run([*cmd, "--out", str(model), "--epochs", "5", "--quiet"], check=True, stdout=subprocess.DEVNULL)
    return model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000, help="records per sustained phase (no-loss: 100,000)")
    ap.add_argument("--passthrough-records", type=int, default=600_000, help="records in the passthrough phase")
    ap.add_argument("--chunk-records", type=int, default=1000, help="records per chunk (sustained phases)")
    ap.add_argument("--workers", type=int, default=8, help="sender connections (Fluent Bit output workers)")
    ap.add_argument("--offered", type=float, default=10_000, help="records/s offered in the latency phase")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the latency phase")
    ap.add_argument("--latency-chunk-records", type=int, default=250)
    ap.add_argument("--latency-workers", type=int, default=4)
    ap.add_argument("--model", type=Path, help="serve this model instead of training a small one")
    ap.add_argument("--phases", default="scorer,scored,passthrough,latency")
    ap.add_argument("--no-loss", action="store_true", help="run the no-loss scenario instead")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or train(Path(tmp))
        if args.no_loss:
            report = run_no_loss(model, args.records if args.records != 200_000 else 100_000)
            for key, value in report.items():
                print(f"{key:>22}: {value}")
            print(json.dumps(report))
            return 0 if report["missing"] == 0 and report["wrong_content"] == 0 else 1
        lines = generate(3000, anomaly_rate=0.02, seed=22).lines
        phases = args.phases.split(",")
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, daemon=True).start()
        sink = CountingSink()
        asyncio.run_coroutine_threadsafe(sink.start(), loop).result()
        scorer_port = free_port()
        scorer = scorer_process(model, scorer_port).start()
        results = {}
        ceiling: dict = {}
        try:
            cycle = 1
            for phase in phases:
                if phase == "scorer":
                    ceiling = scorer_alone(scorer_port, scorer.proc.pid, lines, cycle, args.seconds)
                    cycle += 6
                    continue
                if phase == "latency":
                    n = int(args.offered * args.seconds)
                    chunks = build_chunks(lines, n, args.latency_chunk_records, cycle)
                    results[phase] = run_phase(phase, [], scorer_port, chunks, sink, loop, args, args.offered)
                else:
                    n = args.passthrough_records if phase == "passthrough" else args.records
                    chunks = build_chunks(lines, n, args.chunk_records, cycle)
                    extra = ["--passthrough"] if phase == "passthrough" else []
                    results[phase] = run_phase(phase, extra, scorer_port, chunks, sink, loop, args)
                cycle += max(args.records, args.passthrough_records) // len(lines) + 2  # fresh sessions next
        finally:
            scorer.terminate()
    print(
        f"{'phase':<12} {'records':>9} {'seconds':>8} {'records/s':>10} {'cores':>6} {'RSS MB':>7} {'p50/p99 ms':>12}"
    )
    for r in results.values():
        lat = f"{r.get('p50_ack_ms', '')}/{r.get('p99_ack_ms', '')}" if "p99_ack_ms" in r else ""
        print(
            f"{r['phase']:<12} {r['records']:>9} {r['seconds']:>8} {r['records_per_s']:>10} "
            f"{r['receiver_cores']:>6} {r['rss_mb']:>7} {lat:>12}"
        )
    scorer_rate = ceiling.get("events_per_s", 0)
    scored_rate = results.get("scored", {}).get("records_per_s", 0)
    if ceiling:
        print(f"scorer alone: {scorer_rate} events/s (server {ceiling['server_cores']} cores)", end="")
        print(f"; scored path: {scored_rate / scorer_rate:.0%} of it" if scored_rate and scorer_rate else "")
    summary = {
        "records_per_s": scored_rate,
        "passthrough_records_per_s": results.get("passthrough", {}).get("records_per_s", 0),
        "p99_ack_ms": results.get("latency", {}).get("p99_ack_ms", 0.0),
        "p50_ack_ms": results.get("latency", {}).get("p50_ack_ms", 0.0),
        "offered_records_per_s": args.offered if "latency" in results else 0,
        "rss_mb": max((r["rss_mb"] for r in results.values()), default=0.0),
        "receiver_cores": {k: r["receiver_cores"] for k, r in results.items()},
        "loadgen_cores": {k: r["loadgen_cores"] for k, r in results.items()},
        "chunk_records": args.chunk_records,
        "workers": args.workers,
        "scorer_events_per_s": scorer_rate,
        "scored_share_of_scorer": round(scored_rate / scorer_rate, 3) if scored_rate and scorer_rate else None,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
