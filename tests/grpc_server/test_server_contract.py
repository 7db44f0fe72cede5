"""The integration contract (issue 11) over real sockets, gRPC and HTTP alike: idempotent replays, partial
sessions, window scopes, model routing and the session results' event ids."""

from __future__ import annotations

import json
import urllib.request

import grpc
import pytest
from peers.redis_server import RedisServer
from support import engine_verdicts, sessions_by_block

from logwarden.core.cli import main
from logwarden.core.synthetic import generate
from logwarden.grpc_server.service.windows import window_key
from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer
from logwarden.protos.logwarden.v1 import model_pb2, model_pb2_grpc
from logwarden.protos.logwarden.v1 import scoring_pb2 as pb
from logwarden.protos.logwarden.v1 import scoring_pb2_grpc as pbg


@pytest.fixture(scope="module")
def sessions() -> dict[str, list[str]]:
    return sessions_by_block(12, seed=31, anomaly_rate=0.0)


@pytest.fixture(scope="module")
def server(model_root):
    settings = load_settings(
        None, model_path=model_root, grpc_port=0, http_port=0, batch_wait_ms=2, window_scope_max_sessions=5
    )
    with BackgroundServer(settings) as bg:
        bg.url = f"http://127.0.0.1:{bg.server.companions[0].port}"
        yield bg


def _events(lines, source: str, block: str, end: bool = False) -> list[pb.Event]:
    out = [pb.Event(id=f"{source}:{i}", message=line, source=source, session_key=block) for i, line in enumerate(lines)]
    if end:
        out[-1].session_end = True
    return out


def _score(bg, request: pb.ScoreRequest) -> pb.ScoreResponse:
    with grpc.insecure_channel(bg.target) as channel:
        return pbg.ScoringServiceStub(channel).Score(request, timeout=60)


def _post(url: str, body: dict, headers: dict | None = None) -> dict:
    request = urllib.request.Request(
        url + "/v1/score",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _window(bg, source: str, block: str, scope: str = "") -> dict | None:
    async def get():
        store = await bg.server.windows.store(scope)
        return (await store.get_many([window_key(source, block)]))[0]

    return bg.run(get())


def _verdicts(results) -> list[tuple[str, float, int]]:
    return [(r.id.split(":", 1)[1], round(r.score, 6), r.verdict) for r in results]


# -- idempotency ---------------------------------------------------------------------------------------


def test_a_replayed_grpc_request_leaves_windows_and_later_verdicts_as_one_send(server, sessions):
    block, lines = next(iter(sessions.items()))
    first, rest = lines[: len(lines) // 2], lines[len(lines) // 2 :]
    once = _score(server, pb.ScoreRequest(events=_events(first, "once", block), idempotency_key="once-1"))
    twice = [
        _score(server, pb.ScoreRequest(events=_events(first, "twice", block), idempotency_key="twice-1"))
        for _ in range(2)
    ]
    assert not once.replayed and not twice[0].replayed and twice[1].replayed
    assert _verdicts(twice[1].results) == _verdicts(twice[0].results) == _verdicts(once.results)
    assert len(_window(server, "twice", block)["keys"]) == len(first)  # the replay did not enter the window
    later = [_score(server, pb.ScoreRequest(events=_events(rest, src, block))) for src in ("once", "twice")]
    assert _verdicts(later[0].results) == _verdicts(later[1].results)


def test_a_replayed_http_request_with_the_header_or_the_field_is_answered_from_memory(server, sessions):
    block, lines = list(sessions.items())[1]
    body = {
        "events": [{"id": str(i), "message": x, "source": "http", "session_key": block} for i, x in enumerate(lines)]
    }
    first = _post(server.url, body, {"Idempotency-Key": "h-1"})
    again = _post(server.url, body, {"Idempotency-Key": "h-1"})
    by_field = _post(server.url, {**body, "idempotency_key": "h-1"})
    assert (first["replayed"], again["replayed"], by_field["replayed"]) == (False, True, True)
    assert again["results"] == first["results"]
    assert len(_window(server, "http", block)["keys"]) == len(lines)
    reused = {**body, "events": body["events"][:2]}  # the same key for another request: refused, naming the field
    with pytest.raises(urllib.error.HTTPError) as info:
        _post(server.url, reused, {"Idempotency-Key": "h-1"})
    assert info.value.code == 400 and json.loads(info.value.read())["error"]["field"] == "idempotency_key"


def test_replicas_sharing_redis_score_a_replay_once(model_root, sessions, tmp_path):
    block, lines = list(sessions.items())[2]
    with RedisServer(tmp_path) as redis:
        settings = load_settings(None, model_path=model_root, grpc_port=0, batch_wait_ms=2, redis_url=redis.url)
        with BackgroundServer(settings) as a, BackgroundServer(settings) as b:
            request = pb.ScoreRequest(events=_events(lines, "replicas", block), idempotency_key="r-1")
            first, replay = _score(a, request), _score(b, request)
            assert not first.replayed and replay.replayed
            assert _verdicts(replay.results) == _verdicts(first.results)
            assert len(_window(b, "replicas", block)["keys"]) == len(lines)


# -- partial sessions -------------------------------------------------------------------------------


def test_a_cut_normal_session_is_flagged_only_without_partial_sessions(server, sessions):
    block, lines = list(sessions.items())[3]
    head = _events(lines[:2], "cut", block)
    whole = _score(server, pb.ScoreRequest(events=head, mode=pb.SCORING_MODE_SEQUENCE))
    assert whole.sessions[0].verdict == pb.VERDICT_ANOMALOUS and not whole.sessions[0].open  # "ended early"
    partial = _score(server, pb.ScoreRequest(events=head, mode=pb.SCORING_MODE_SEQUENCE, partial_sessions=True))
    (session,) = partial.sessions
    assert session.open and session.verdict == pb.VERDICT_NORMAL and not session.HasField("end")
    ended = _score(
        server,
        pb.ScoreRequest(
            events=_events(lines, "cut", block, end=True), mode=pb.SCORING_MODE_SEQUENCE, partial_sessions=True
        ),
    )
    assert not ended.sessions[0].open and ended.sessions[0].HasField("end")  # marked ended: judged whole


# -- window scopes ----------------------------------------------------------------------------------


def test_an_ad_hoc_scope_filling_its_quota_evicts_none_of_the_default_scope(server, sessions):
    live = list(sessions.items())[:3]
    for block, lines in live:
        _score(server, pb.ScoreRequest(events=_events(lines[:3], "live", block)))
    for n in range(40):  # a big ad-hoc search: far more sessions than its quota of 5
        block = f"blk_{n}"
        events = _events(lines[:3], "search", block)
        _score(server, pb.ScoreRequest(events=events, window_scope="search-7"))
    for block, _ in live:
        assert _window(server, "live", block) is not None
    scope = server.run(server.server.windows.store("search-7"))
    assert len(scope) == 5
    assert _window(server, "search", "blk_39", "search-7") is not None and _window(server, "search", "blk_39") is None


# -- routing and event ids --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def second_model(tmp_path_factory):
    """Another model, trained on other generated logs with another seed: it judges sessions differently."""
    root = tmp_path_factory.mktemp("second")
    corpus = generate(n_sessions=120, seed=8)
    (root / "train.log").write_text("\n".join(corpus.lines) + "\n")
    args = [
        "train",
        str(root / "train.log"),
        "--out",
        str(root / "m"),
        "--format",
        "hdfs",
        "--epochs",
        "3",
        "--seed",
        "5",
        "--quiet",
    ]
    assert main(args) == 0
    return root / "m"


def test_two_models_routed_by_attribute_each_give_their_offline_verdicts(model_root, second_model, tmp_path):
    sessions = sessions_by_block(8, seed=41, anomaly_rate=0.3)
    models = {"other": {"path": str(second_model), "rules": [{"index": "other-*"}]}}
    settings = load_settings(
        None, model_path=model_root, grpc_port=0, batch_wait_ms=2, models=models, model_backend="torch"
    )
    offline = {"default": engine_verdicts(model_root, sessions), "other": engine_verdicts(second_model, sessions)}
    events = []
    for n, (block, lines) in enumerate(sessions.items()):
        route = "other" if n % 2 else "default"
        attributes = {"index": "other-2026.12"} if route == "other" else {"index": "main"}
        events += [
            pb.Event(id=f"{route}:{block}:{i}", message=x, source="r", session_key=block, attributes=attributes)
            for i, x in enumerate(lines)
        ]
    with BackgroundServer(settings) as bg:
        response = _score(bg, pb.ScoreRequest(events=events, mode=pb.SCORING_MODE_SEQUENCE))
        with grpc.insecure_channel(bg.target) as channel:
            info = model_pb2_grpc.ModelServiceStub(channel).GetModelInfo(model_pb2.GetModelInfoRequest())
    assert [r.id for r in response.results] == [e.id for e in events]  # request order across routes
    for r in response.results:
        route, block, i = r.id.split(":")
        verdict = offline[route][block].events[int(i)]
        assert r.model == route and abs(r.score - verdict.score) < 1e-5
    for s in response.sessions:
        route = s.model
        assert s.event_ids == [e.id for e in events if e.id.startswith(f"{route}:{s.session_key}:")]
        assert (s.verdict == pb.VERDICT_ANOMALOUS) == offline[route][s.session_key].anomalous
    assert {r.name: r.is_default for r in info.routes} == {"default": True, "other": False}
    assert [dict(rule.attributes) for r in info.routes if r.name == "other" for rule in r.rules] == [
        {"index": "other-*"}
    ]


def test_an_unknown_model_route_is_refused_naming_the_routes(server, sessions):
    block, lines = next(iter(sessions.items()))
    with pytest.raises(grpc.RpcError) as info:
        _score(server, pb.ScoreRequest(events=_events(lines[:1], "x", block), model="nope"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "default" in info.value.details()
