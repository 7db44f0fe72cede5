"""Server building blocks without a network: scheduler, window store, session locks, settings."""

from __future__ import annotations

import asyncio
import gc
import threading
import tracemalloc
from dataclasses import asdict
from types import SimpleNamespace

import pytest

from logwarden.core.errors import LogWardenError
from logwarden.core.parsing.formats import get_format
from logwarden.core.parsing.sessions import Event
from logwarden.grpc_server.service.errors import DeadlineExceeded, Overloaded, ShuttingDown
from logwarden.grpc_server.service.locks import KeyedLocks
from logwarden.grpc_server.service.model_holder import ServedModel
from logwarden.grpc_server.service.scheduler import Scheduler, SessionWork, key_text
from logwarden.grpc_server.service.schema import EventOut, Expected, SessionOut
from logwarden.grpc_server.service.windows import window_key
from logwarden.grpc_server.service.windows.memory import MemoryWindowStore
from logwarden.grpc_server.settings import load_settings


class FakeDetector:
    """Keys are the contents; each scored event's 'verdict' is its key; calls are recorded."""

    version = "fake"
    calibration = SimpleNamespace(k=3)

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[list[list[str | None]]] = []
        self.gate = gate

    def parse(self, record):
        return Event(record, record.content)

    def score_keys(self, seqs, *, complete, k, starts, whole, lines):
        assert [len(x) for x in lines] == [len(s) for s in seqs]  # what unknown templates are judged from
        if self.gate is not None:
            self.gate.wait(30)
        self.calls.append([list(s) for s in seqs])
        return [SimpleNamespace(events=list(s[start:]), k=kk) for s, start, kk in zip(seqs, starts, k, strict=True)]


def _model(detector) -> ServedModel:
    return ServedModel(detector, get_format("plain"), "fake")


def test_scheduler_packs_many_callers_into_one_model_call():
    async def main():
        detector = FakeDetector()
        sched = Scheduler(max_wait_s=0.5, max_batch_events=1000, max_queue_events=1000)
        sched.start()
        model = _model(detector)
        works = [[SessionWork([f"{i}a", f"{i}b"], context=["c"], k=i + 1)] for i in range(10)]
        results = await asyncio.gather(*(sched.submit(model, w) for w in works))
        await sched.close()
        return detector, results

    detector, results = asyncio.run(main())
    assert len(detector.calls) == 1 and len(detector.calls[0]) == 10
    for i, (score,) in enumerate(results):
        assert score.keys == [f"{i}a", f"{i}b"]
        assert score.verdict.events == [f"{i}a", f"{i}b"]  # the context is not scored
        assert score.verdict.k == i + 1


def test_scheduler_bounds_batches_and_queue_and_drains_on_close():
    async def main():
        gate = threading.Event()
        detector = FakeDetector(gate)
        sched = Scheduler(max_wait_s=0, max_batch_events=4, max_queue_events=10)
        sched.start()
        model = _model(detector)
        first = asyncio.ensure_future(sched.submit(model, [SessionWork(["x"] * 4)]))
        await asyncio.sleep(0)
        assert sched.queued_events == 4
        while sched.queued_events:  # the first job is taken into the (blocked) worker
            await asyncio.sleep(0.001)
        queued = [asyncio.ensure_future(sched.submit(model, [SessionWork(["y"] * 3)])) for _ in range(3)]
        await asyncio.sleep(0)
        assert sched.queued_events == 9
        with pytest.raises(Overloaded):
            await sched.submit(model, [SessionWork(["z"] * 2)])
        assert sched.queued_events <= 10
        closing = asyncio.ensure_future(sched.close())
        await asyncio.sleep(0)
        with pytest.raises(ShuttingDown):
            await sched.submit(model, [SessionWork(["late"])])
        gate.set()
        await closing
        return detector, [await first, *[await q for q in queued]]

    detector, results = asyncio.run(main())
    assert all(len(r) == 1 for r in results)  # every accepted job finished during the drain
    assert all(sum(len(s) for s in call) <= 4 for call in detector.calls)


def test_scheduler_drops_jobs_whose_deadline_passed():
    async def main():
        detector = FakeDetector()
        sched = Scheduler(max_wait_s=0.01)
        sched.start()
        loop = asyncio.get_running_loop()
        with pytest.raises(DeadlineExceeded):
            await sched.submit(_model(detector), [SessionWork(["a"])], deadline=loop.time() - 1)
        await sched.close()
        return detector

    assert asyncio.run(main()).calls == []


def test_scheduler_scores_each_model_version_separately():
    async def main():
        old, new = FakeDetector(), FakeDetector()
        sched = Scheduler(max_wait_s=0.2)
        sched.start()
        await asyncio.gather(
            sched.submit(_model(old), [SessionWork(["a"])]), sched.submit(_model(new), [SessionWork(["b"])])
        )
        await sched.close()
        return old, new

    old, new = asyncio.run(main())
    assert old.calls == [[["a"]]] and new.calls == [[["b"]]]


def test_memory_windows_expire_and_evict_least_recently_used():
    now = [0.0]
    store = MemoryWindowStore(max_sessions=2, ttl_s=10, clock=lambda: now[0])

    async def main():
        a, b, c = (window_key("src", s) for s in "abc")
        await store.put_many({a: {"version": "v", "keys": ["1"]}, b: {"version": "v", "keys": [None]}})
        assert (await store.get_many([a]))[0] == {"version": "v", "keys": ["1"]}  # a is now most recent
        await store.put_many({c: {"version": "v", "keys": ["3"]}})
        assert await store.get_many([a, b, c]) == [
            {"version": "v", "keys": ["1"]},
            None,
            {"version": "v", "keys": ["3"]},
        ]
        await store.delete_many([c, window_key("src", "absent")])
        assert await store.get_many([a, c]) == [{"version": "v", "keys": ["1"]}, None]
        now[0] = 11
        assert await store.get_many([a, c]) == [None, None]
        assert len(store) == 0

    asyncio.run(main())


def test_memory_windows_are_copies_and_key_windows_are_not_tracked_by_the_collector():
    store = MemoryWindowStore(max_sessions=10, ttl_s=10)

    async def main():
        keys = ["1", None, "7"]
        other = {"version": "v", "keys": [["nested"]], "extra": {"n": 1}}
        await store.put_many({"k": {"version": "v", "keys": keys}, "o": other})
        keys.append("changed")
        other["keys"][0].append("changed")
        got, got_other = await store.get_many(["k", "o"])
        assert got == {"version": "v", "keys": ["1", None, "7"]}
        assert got_other == {"version": "v", "keys": [["nested"]], "extra": {"n": 1}}
        got["keys"].append("mutated")
        got_other["extra"]["n"] = 2
        assert await store.get_many(["k", "o"]) == [
            {"version": "v", "keys": ["1", None, "7"]},
            {"version": "v", "keys": [["nested"]], "extra": {"n": 1}},
        ]
        for _ in range(3):  # a collection untracks tuples holding only untracked objects (one nesting level each)
            gc.collect()
        assert not gc.is_tracked(store._data["k"])

    asyncio.run(main())


def test_memory_windows_are_bounded_in_bytes():
    """Full windows of long session names stay within ``max_bytes`` (measured, not only estimated)."""
    bound = 2 << 20
    store = MemoryWindowStore(max_sessions=100_000, ttl_s=100, max_bytes=bound)

    async def main():
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(3000):
                window = {"version": "v1", "keys": [key_text(k % 90) for k in range(i, i + 128)]}
                await store.put_many({window_key("host-" + "h" * 500, f"session-{i}-" + "s" * 500): window})
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert store.nbytes <= bound and 0 < len(store) < 3000 and grown < 2 * bound
        newest = window_key("host-" + "h" * 500, "session-2999-" + "s" * 500)
        assert (await store.get_many([newest]))[0]["keys"][0] == key_text(2999 % 90)  # the newest is kept

    asyncio.run(main())


def test_window_keys_are_unambiguous():
    assert window_key("a", "b:c") != window_key("a:b", "c")


def test_keyed_locks_serialise_the_same_key_and_clean_up():
    locks = KeyedLocks()
    order: list[str] = []

    async def worker(name: str, keys: list[str]):
        async with locks.hold(keys):
            order.append(name + "+")
            await asyncio.sleep(0.01)
            order.append(name + "-")

    async def main():
        await asyncio.gather(worker("1", ["s", "t"]), worker("2", ["t", "s"]), worker("3", ["u"]))

    asyncio.run(main())
    assert order.index("1-") < order.index("2+") or order.index("2-") < order.index("1+")
    assert len(locks) == 0


def test_settings_precedence_and_secrets(tmp_path, monkeypatch):
    config = tmp_path / "server.yaml"
    config.write_text("batch_wait_ms: 9\nwindow_size: 7\ngrpc_port: 1111\nauth_tokens: [from-file]\n")
    monkeypatch.setenv("LOGWARDEN_BATCH_WAIT_MS", "3")
    monkeypatch.setenv("LOGWARDEN_AUTH_TOKENS", '["s3cret-token"]')
    s = load_settings(config, grpc_port=2222, window_size=None)
    assert (s.batch_wait_ms, s.window_size, s.grpc_port) == (3.0, 7, 2222)  # env > file, flag > file
    assert [t.get_secret_value() for t in s.auth_tokens] == ["s3cret-token"]
    assert "s3cret-token" not in repr(s) and "s3cret-token" not in s.model_dump_json()
    toml = tmp_path / "server.toml"
    toml.write_text("[server]\nqueue_max_events = 77\nmax_events_per_request = 5\n")
    monkeypatch.delenv("LOGWARDEN_AUTH_TOKENS")
    assert load_settings(toml).queue_max_events == 77


def test_settings_refuse_bad_combinations(tmp_path):
    with pytest.raises(LogWardenError, match="tls_cert and tls_key"):
        load_settings(None, tls_cert=tmp_path / "cert.pem")
    with pytest.raises(LogWardenError, match=r"unknown_field|extra"):
        bad = tmp_path / "bad.yaml"
        bad.write_text("unknown_field: 1\n")
        load_settings(bad)


def test_results_as_json_hold_every_field_and_share_no_list_with_the_result():
    """``to_dict`` is built by hand (speed): it must still give every dataclass field, nested values as plain
    data, and copies, so a stored idempotent answer cannot change when the result does (and back)."""
    event = EventOut(id="7", anomalous=True, expected=[Expected("3", "t <*>", 0.25)], warnings=["w"], model="m")
    session = SessionOut("h", "blk_1", 0.9, True, "r", 2, 1, event, "v1", event_ids=["7", "8"], open=True)
    as_dict = session.to_dict()
    want = asdict(session)
    want["verdict"], want["end"] = "anomalous", {**asdict(event), "verdict": "anomalous"}
    assert as_dict == want
    as_dict["event_ids"].append("9")
    as_dict["end"]["expected"].clear()
    as_dict["end"]["warnings"].append("x")
    assert session.event_ids == ["7", "8"] and len(event.expected) == 1 and event.warnings == ["w"]
    assert SessionOut.from_dict(session.to_dict()) == session
