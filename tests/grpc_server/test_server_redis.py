"""The Redis window store against a real redis-server on 127.0.0.1: two servers share stream windows."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import grpc
import pytest
from peers.redis_server import RedisServer
from support import sessions_by_block

from logwarden.core.errors import LogWardenError
from logwarden.grpc_server.service.windows import window_key
from logwarden.grpc_server.service.windows.redis import PREFIX, RedisWindowStore
from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer
from logwarden.protos.logwarden.v1 import scoring_pb2 as pb
from logwarden.protos.logwarden.v1 import scoring_pb2_grpc as pbg

TTL_S = 600


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def halves() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(first halves, second halves) of a few sessions as (id, line), interleaved across sessions."""
    sessions = sessions_by_block(10, seed=21)
    first, second = [], []
    for block, lines in sessions.items():
        cut = len(lines) // 2
        first += [(f"{block}#{i}", line) for i, line in enumerate(lines[:cut])]
        second += [(f"{block}#{i}", line) for i, line in enumerate(lines[cut:], cut)]
    return first, second


def _settings(model_root, **overrides):
    return load_settings(
        None, model_path=model_root, grpc_port=0, batch_wait_ms=2, window_size=250, window_ttl_s=TTL_S, **overrides
    )


def _score(bg: BackgroundServer, events, source: str, mode=pb.SCORING_MODE_STREAM):
    request = pb.ScoreRequest(events=[pb.Event(id=i, message=line, source=source) for i, line in events], mode=mode)
    with grpc.insecure_channel(bg.target) as channel:
        return list(pbg.ScoringServiceStub(channel).Score(request, timeout=60).results)


def _same(a, b) -> bool:
    return (
        a.id == b.id
        and abs(a.score - b.score) < 1e-6
        and a.verdict == b.verdict
        and a.rank == b.rank
        and a.reason == b.reason
        and a.template_id == b.template_id
    )


def test_two_servers_share_stream_windows(model_root, redis_server, halves):
    first, second = halves
    settings = _settings(model_root, redis_url=redis_server.url)
    with BackgroundServer(settings) as a, BackgroundServer(settings) as b:
        assert a.target != b.target
        _score(a, first, "shared")
        split = _score(b, second, "shared")  # B continues the windows A left in Redis
        whole = _score(a, first + second, "whole")[len(first) :]  # one server saw everything
        fresh = _score(b, second, "fresh")  # the second halves with no context at all
    assert all(r.status == pb.EVENT_STATUS_SCORED for r in split)
    assert all(_same(x, y) for x, y in zip(split, whole, strict=True))
    assert not all(_same(x, y) for x, y in zip(split, fresh, strict=True))  # the shared context mattered

    client = redis_server.client()
    blocks = {i.split("#")[0] for i, _ in first}
    keys = {k.decode() for k in client.scan_iter(match=f"{PREFIX}*")}
    assert {PREFIX + window_key("shared", blk) for blk in blocks} <= keys
    stored = json.loads(client.get(PREFIX + window_key("shared", sorted(blocks)[0])))
    assert set(stored) == {"version", "keys"} and stored["keys"]
    assert all(0 < client.pttl(k) <= TTL_S * 1000 for k in keys)
    client.close()


def test_store_round_trip_and_unreadable_values(redis_server):
    async def scenario():
        store = RedisWindowStore(redis_server.url, max_sessions=10, ttl_s=5, prefix="logwarden:test:")
        try:
            await store.put_many({"a": {"version": "v1", "keys": ["1", None]}, "b": {"version": "v1", "keys": []}})
            await store.client.set("logwarden:test:c", b"not json")
            got = await store.get_many(["a", "missing", "b", "c"])
            ttl = await store.client.pttl("logwarden:test:a")
            await store.delete_many(["a", "missing"])  # a session that ended; an absent key is no error
            after = await store.get_many(["a", "b"])
        finally:
            await store.close()
        return got, ttl, after

    got, ttl, after = asyncio.run(scenario())
    assert got == [{"version": "v1", "keys": ["1", None]}, None, {"version": "v1", "keys": []}, None]
    assert 0 < ttl <= 5000
    assert after == [None, {"version": "v1", "keys": []}]


def test_bad_url_is_refused_without_echoing_it():
    with pytest.raises(LogWardenError) as info:
        RedisWindowStore("http://user:s3cret@host:6379", max_sessions=1, ttl_s=1)
    assert "s3cret" not in str(info.value)


def test_redis_down_answers_unavailable_then_recovers(model_root, tmp_path, halves):
    events = halves[0][:5]
    redis = RedisServer(tmp_path).start()
    try:
        with BackgroundServer(_settings(model_root, redis_url=redis.url, http_port=0)) as bg:
            assert all(r.status == pb.EVENT_STATUS_SCORED for r in _score(bg, events, "s"))
            redis.stop()
            with pytest.raises(grpc.RpcError) as info:
                _score(bg, events, "s")
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE  # shippers retry; nothing is dropped
            assert "window store" in info.value.details()
            http_port = bg.server.companions[0].port
            body = json.dumps({"events": [{"id": i, "message": m} for i, m in events]}).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{http_port}/v1/score", body, {"Content-Type": "application/json"}
            )
            with pytest.raises(urllib.error.HTTPError) as http_info:
                urllib.request.urlopen(request, timeout=30)
            assert http_info.value.code == 503 and http_info.value.headers["Retry-After"]
            # sequence mode keeps no state: it still works without Redis
            assert all(r.status == pb.EVENT_STATUS_SCORED for r in _score(bg, events, "s", pb.SCORING_MODE_SEQUENCE))
            redis = RedisServer(tmp_path, port=redis.port).start()  # back on the same address
            assert all(r.status == pb.EVENT_STATUS_SCORED for r in _score(bg, events, "s"))
    finally:
        redis.stop()
