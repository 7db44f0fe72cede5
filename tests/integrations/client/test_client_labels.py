"""The client library's label calls (gRPC and HTTP) against a live server with a SQLite label store: results
say duplicate / replaced, ``list_labels`` gives one page, ``iter_labels`` every page, ``retract_labels``
withdraws by either id, and both clients give the same shapes."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer
from logwarden.integrations.client import HttpClient, LogWardenClient, ScorerUnavailable

TOKEN = "label-client-t0ken"


@pytest.fixture(scope="module")
def server(model_root, tmp_path_factory):
    db = tmp_path_factory.mktemp("client-labels") / "labels.sqlite"
    settings = load_settings(
        None, model_path=model_root, grpc_port=0, http_port=0, batch_wait_ms=2, label_db=db, auth_tokens=[TOKEN]
    )
    with BackgroundServer(settings) as bg:
        yield bg


@pytest.fixture(scope="module")
def clients(server):
    http = HttpClient(f"http://127.0.0.1:{server.server.companions[0].port}", token=TOKEN)
    with LogWardenClient(server.target, token=TOKEN) as grpc_client:
        yield {"grpc": grpc_client, "http": http}


def label(source: str, n: int, **extra) -> dict:
    return {
        "id": f"row-{n}",
        "target": "event",
        "value": "anomaly",
        "predicted": "normal",
        "source": source,
        "template_id": "7",
        "event_id": f"e{n}",
        "analyst": "ann",
        "external_id": f"{source}/{n}",
        "attributes": {"index": "logs", "_id": f"d{n}"},
        "time": 1_790_000_000 + n,
        **extra,
    }


@pytest.mark.parametrize("name", ["grpc", "http"])
def test_submit_list_iterate_and_retract(clients, name):
    client = clients[name]
    source = f"client-{name}"
    first = client.submit_labels([label(source, n) for n in range(250)])
    assert all(r["accepted"] and not r["duplicate"] and not r["replaced"] for r in first)
    again = client.submit_labels([label(source, 0), label(source, 1, value="normal")])
    assert again[0]["duplicate"] and again[0]["label_id"] == first[0]["label_id"]
    assert again[1]["replaced"] and not again[1]["duplicate"] and again[1]["label_id"] != first[1]["label_id"]

    page = client.list_labels(source=source, limit=100)
    assert len(page["labels"]) == 100 and page["next_after_id"] == int(page["labels"][-1]["label_id"])
    stored = page["labels"][0]
    assert stored == {"label_id": first[0]["label_id"], "label": stored["label"], "retracted": False}
    assert stored["label"]["external_id"] == f"{source}/0" and stored["label"]["target"] == "event"
    assert stored["label"]["attributes"] == {"index": "logs", "_id": "d0"}
    assert stored["label"]["predicted"] == "normal" and stored["label"]["reason_code"] == ""
    assert stored["label"]["time"] == pytest.approx(1_790_000_000)

    every = list(client.iter_labels(source=source, page_size=100))
    assert [x["label"]["external_id"] for x in every] == [f"{source}/{n}" for n in (0, *range(2, 250), 1)]
    since = datetime.fromtimestamp(1_790_000_200, timezone.utc)  # noqa: UP017 - the client's own idiom
    assert len(list(client.iter_labels(source=source, since=since, page_size=10))) == 50  # 200..249

    results = client.retract_labels(label_ids=[first[2]["label_id"]], external_ids=[f"{source}/1"], analyst="bob")
    assert [(r["id"], r["retracted"]) for r in results] == [(first[2]["label_id"], True), (f"{source}/1", True)]
    gone = client.retract_labels(external_ids=[f"{source}/1"], analyst="bob")
    assert not gone[0]["retracted"] and gone[0]["error_field"] == "external_ids[0]"
    live = list(client.iter_labels(source=source, page_size=1000))
    assert len(live) == 248
    withdrawn = [x for x in client.iter_labels(source=source, include_retracted=True) if x["retracted"]]
    assert [x["label"]["external_id"] for x in withdrawn] == [f"{source}/1", f"{source}/2", f"{source}/1"]


def test_both_clients_list_the_same_labels(clients):
    clients["http"].submit_labels([label("both", n, reason_code="unexpected_template") for n in range(3)])
    by_grpc = clients["grpc"].list_labels(source="both")
    assert by_grpc == clients["http"].list_labels(source="both")
    assert by_grpc["next_after_id"] == 0 and by_grpc["labels"][0]["label"]["reason_code"] == "unexpected_template"


def test_caller_mistakes_raise_and_a_refused_call_raises_scorer_unavailable(clients):
    for client in clients.values():
        with pytest.raises(ValueError, match="since"):
            client.list_labels(since="yesterday")
        with pytest.raises(ValueError, match="limit"):
            client.iter_labels(page_size=-1)
        with pytest.raises(ScorerUnavailable, match="limit"):
            client.list_labels(limit=20_000)  # the server refuses it, naming the parameter
