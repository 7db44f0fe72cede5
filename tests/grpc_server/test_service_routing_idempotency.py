"""Units of the integration contract: route matching, and the idempotency cache's claim/replay rules."""

from __future__ import annotations

import asyncio

import pytest

from logwarden.grpc_server.service.errors import InvalidRequest, ShuttingDown
from logwarden.grpc_server.service.idempotency import MemoryIdempotency, fingerprint
from logwarden.grpc_server.service.routing import RouteSpec, RouteTable, check_route_name
from logwarden.grpc_server.service.schema import EventIn, EventOut, ScoreOutput


def test_the_first_matching_route_wins_else_the_default():
    table = RouteTable({"hdfs": [{"index": "hdfs-*"}, {"tag": "hdfs.app"}], "syslog": [{"sourcetype": "syslog"}]})
    assert table.route({"index": "hdfs-2026.12"}) == "hdfs"
    assert table.route({"tag": "hdfs.app"}) == "hdfs" and table.route({"tag": "hdfs.app2"}) == "default"
    assert table.route({"sourcetype": "syslog", "index": "hdfs-x"}) == "hdfs"  # order decides
    assert table.route({"sourcetype": "syslog"}) == "syslog" and table.route({}) == "default"
    both = RouteTable({"a": [{"index": "x", "host": "h*"}]})  # every attribute of a rule must match
    assert both.route({"index": "x", "host": "h1"}) == "a" and both.route({"index": "x"}) == "default"


def test_route_specs_and_names_are_checked():
    with pytest.raises(ValueError, match="empty rule"):
        RouteSpec(path="m", rules=[{}])
    with pytest.raises(ValueError, match="route name"):
        check_route_name("no spaces please")
    assert check_route_name("hdfs-prod_1.2") == "hdfs-prod_1.2"


def _output(tag: str) -> ScoreOutput:
    return ScoreOutput([EventOut(id=tag)], [], "v1")


def test_a_replay_gets_the_stored_answer_and_a_reused_key_is_refused():
    async def main():
        cache = MemoryIdempotency(ttl_s=60)
        fp = fingerprint([EventIn(id="1", message="a")], ("stream",))
        assert (await cache.claim("k", fp, None)).replay is None
        await cache.store("k", fp, _output("first"))
        assert (await cache.claim("k", fp, None)).replay.results[0].id == "first"
        other = fingerprint([EventIn(id="1", message="b")], ("stream",))
        with pytest.raises(InvalidRequest, match="different request"):
            await cache.claim("k", other, None)

    asyncio.run(main())


def test_a_replay_during_the_first_request_waits_for_its_answer():
    async def main():
        cache = MemoryIdempotency(ttl_s=60)
        assert (await cache.claim("k", "fp", None)).replay is None
        waiting = asyncio.create_task(cache.claim("k", "fp", None))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        await cache.store("k", "fp", _output("first"))
        assert (await waiting).replay.results[0].id == "first"
        # a claim given up (the first request failed) lets the next request score itself
        assert (await cache.claim("j", "fp", None)).replay is None
        retry = asyncio.create_task(cache.claim("j", "fp", None))
        await asyncio.sleep(0.01)
        await cache.release("j")
        assert (await retry).replay is None
        # a replay that cannot wait any longer is told to retry (a transient answer)
        loop = asyncio.get_running_loop()
        with pytest.raises(ShuttingDown):
            await cache.claim("j", "fp", loop.time() + 0.01)

    asyncio.run(main())


def test_the_cache_is_bounded_in_entries_and_bytes():
    async def main():
        cache = MemoryIdempotency(ttl_s=60, max_entries=3)
        for i in range(10):
            await cache.claim(f"k{i}", "fp", None)
            await cache.store(f"k{i}", "fp", _output(str(i)))
        assert len(cache) == 3 and (await cache.claim("k9", "fp", None)).replay is not None
        small = MemoryIdempotency(ttl_s=60, max_bytes=5_000)
        for i in range(50):
            await small.claim(f"k{i}", "fp", None)
            await small.store(f"k{i}", "fp", _output(str(i)))
        assert small.nbytes <= 5_000 and len(small) < 50

    asyncio.run(main())
