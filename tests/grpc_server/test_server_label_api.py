"""The label API over real sockets, gRPC and HTTP alike, on a live server with a SQLite label store: a label
sent twice is stored once, a changed label replaces the first and recalibration counts one vote, listing
pages through thousands of labels in store order, retraction by store id or external id, errors name the
field."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from test_server_http import call

from logwarden.core.labels import Policy
from logwarden.grpc_server.gateway.app import HttpGateway
from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer
from logwarden.protos.logwarden.v1 import labels_pb2 as lpb
from logwarden.protos.logwarden.v1 import labels_pb2_grpc

FP_PER_STEP = Policy().fp_per_step


@pytest.fixture(scope="module")
def server(model_root, tmp_path_factory):
    db = tmp_path_factory.mktemp("label-api") / "labels.sqlite"
    settings = load_settings(None, model_path=model_root, grpc_port=0, http_port=0, batch_wait_ms=2, label_db=db)
    with BackgroundServer(settings) as bg:
        bg.http = next(c for c in bg.server.companions if isinstance(c, HttpGateway)).port
        bg.channel = grpc.insecure_channel(bg.target)
        bg.stub = labels_pb2_grpc.LabelServiceStub(bg.channel)
        yield bg
        bg.channel.close()


def false_positive(source: str, n: int, **extra) -> dict:
    """An analyst's "normal" verdict on a flagged session: one false-positive vote for ``source``."""
    label = {
        "id": f"c{n}",
        "target": "session",
        "value": "normal",
        "predicted": "anomaly",
        "source": source,
        "session_key": f"blk_{n}",
        "analyst": "ann",
        "external_id": f"{source}:{n}",
        "attributes": {"index": "hdfs", "_id": f"doc-{n}"},
    }
    return {**label, **extra}


# -- the two transports, one shape ------------------------------------------------------------------


def submit_http(bg, labels: list[dict]) -> list[dict]:
    status, _, body = call(bg.http, "POST", "/v1/labels", {"labels": labels})
    assert status == 200, body
    return body["results"]


def submit_grpc(bg, labels: list[dict]) -> list[dict]:
    enums = {"target": "LABEL_TARGET_", "value": "LABEL_VALUE_", "predicted": "LABEL_VALUE_"}
    messages = [lpb.Label(**{k: enums[k] + v.upper() if k in enums else v for k, v in x.items()}) for x in labels]
    response = bg.stub.SubmitLabels(lpb.SubmitLabelsRequest(labels=messages))
    return [
        {"id": r.id, "accepted": r.accepted, "label_id": r.label_id, "duplicate": r.duplicate, "replaced": r.replaced}
        | {"error": r.error, "error_field": r.error_field}
        for r in response.results
    ]


def list_http(bg, **query) -> tuple[list[dict], int]:
    status, _, body = call(bg.http, "GET", "/v1/labels?" + urlencode(query))
    assert status == 200, body
    rows = [{"label_id": x["label_id"], "retracted": x["retracted"], **x["label"]} for x in body["labels"]]
    return rows, body["next_after_id"]


def list_grpc(bg, **query) -> tuple[list[dict], int]:
    if isinstance(query.get("since"), int | float):
        query["since"] = Timestamp(seconds=int(query["since"]))
    response = bg.stub.ListLabels(lpb.ListLabelsRequest(**query))
    rows = [
        {
            "label_id": x.label_id,
            "retracted": x.retracted,
            "external_id": x.label.external_id,
            "source": x.label.source,
            "value": lpb.LabelValue.Name(x.label.value).removeprefix("LABEL_VALUE_").lower(),
            "session_key": x.label.session_key,
            "attributes": dict(x.label.attributes),
            "time": x.label.time.seconds + x.label.time.nanos / 1e9,
        }
        for x in response.labels
    ]
    return rows, response.next_after_id


def retract_http(bg, **body) -> list[dict]:
    status, _, answer = call(bg.http, "POST", "/v1/labels/retract", body)
    assert status == 200, answer
    return answer["results"]


def retract_grpc(bg, **body) -> list[dict]:
    response = bg.stub.RetractLabels(lpb.RetractLabelsRequest(**body))
    return [
        {"id": r.id, "retracted": r.retracted, "error": r.error, "error_field": r.error_field} for r in response.results
    ]


TRANSPORTS = {
    "http": (submit_http, list_http, retract_http),
    "grpc": (submit_grpc, list_grpc, retract_grpc),
}


# -- tests --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_label_sent_twice_is_stored_once_and_a_changed_one_replaces_it(server, transport):
    submit, listing, _ = TRANSPORTS[transport]
    source = f"dup-{transport}"
    labels = [false_positive(source, n) for n in range(FP_PER_STEP)]
    first = submit(server, labels)
    assert all(r["accepted"] and not r["duplicate"] and not r["replaced"] for r in first), first
    sink = server.server.label_sink
    base_k = sink.thresholds.base_k
    assert sink.k_for_source(source) == base_k + 1  # FP_PER_STEP false positives: one step

    again = submit(server, labels)  # a replay (e.g. after a timeout): nothing new
    assert [r["label_id"] for r in again] == [r["label_id"] for r in first]
    assert all(r["accepted"] and r["duplicate"] and not r["replaced"] for r in again)
    assert sink.store.count(source) == FP_PER_STEP and sink.k_for_source(source) == base_k + 1

    # the analyst changes their mind about one of them (another session, even): its old vote goes
    changed = false_positive(source, 0, value="anomaly", session_key="blk_elsewhere", comment="it was bad after all")
    (result,) = submit(server, [changed])
    assert result["accepted"] and result["replaced"] and not result["duplicate"]
    assert int(result["label_id"]) > max(int(r["label_id"]) for r in first)
    assert sink.store.count(source) == FP_PER_STEP and sink.k_for_source(source) is None  # 4 votes: no step

    rows, next_after = listing(server, source=source, include_retracted=True)
    assert next_after == 0
    assert [(r["external_id"], r["retracted"]) for r in rows] == [
        *((f"{source}:{n}", n == 0) for n in range(FP_PER_STEP)),
        (f"{source}:0", False),
    ]
    assert rows[-1]["value"] == "anomaly" and rows[-1]["session_key"] == "blk_elsewhere"
    assert rows[1]["attributes"] == {"index": "hdfs", "_id": "doc-1"}
    assert [r["label_id"] for r in listing(server, source=source)[0]] == [
        *(r["label_id"] for r in first[1:]),
        result["label_id"],
    ]


def test_listing_pages_through_thousands_of_labels_in_order(server):
    source, total = "many", 3000
    labels = [false_positive(source, n, value="anomaly", predicted="normal") for n in range(total)]
    ids = [r["label_id"] for r in submit_http(server, labels[:2000]) + submit_grpc(server, labels[2000:])]
    assert len(set(ids)) == total and [int(i) for i in ids] == sorted(int(i) for i in ids)
    for transport, limit in (("http", 1000), ("grpc", 700)):
        listing = TRANSPORTS[transport][1]
        seen, after, pages = [], 0, 0
        while True:
            rows, after = listing(server, source=source, after_id=after, limit=limit)
            seen += rows
            pages += 1
            if not after:
                break
            assert after == int(rows[-1]["label_id"])
        assert [r["label_id"] for r in seen] == ids, transport
        assert [r["external_id"] for r in seen] == [x["external_id"] for x in labels]
        assert pages == -(-total // limit)  # a full last page (3000 / 1000) says it is the last: no empty page
    rows, after = list_http(server, source=source)
    assert len(rows) == 100 and after == int(rows[-1]["label_id"])  # the default page size
    assert list_http(server, source="nobody") == ([], 0)
    # since: the analyst's time
    old = false_positive("timed", 1, time="2020-01-01T00:00:00Z")
    new = false_positive("timed", 2, time=time.time())
    submit_http(server, [old, new])
    for listing in (list_http, list_grpc):
        rows, _ = listing(server, source="timed", since=1_500_000_000)
        assert [r["external_id"] for r in rows] == ["timed:1", "timed:2"]
    rows, _ = list_http(server, source="timed", since="2021-01-01T00:00:00Z")
    assert [r["external_id"] for r in rows] == ["timed:2"]
    rows, _ = list_grpc(server, source="timed", since=1_609_459_200)
    assert [r["external_id"] for r in rows] == ["timed:2"]
    assert rows[0]["time"] == pytest.approx(new["time"], abs=1e-3)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_retraction_by_store_id_or_external_id_removes_the_vote(server, transport):
    submit, listing, retract = TRANSPORTS[transport]
    source = f"retract-{transport}"
    first = submit(server, [false_positive(source, n) for n in range(FP_PER_STEP + 1)])
    sink = server.server.label_sink
    assert sink.k_for_source(source) == sink.thresholds.base_k + 1
    results = retract(
        server,
        label_ids=[first[0]["label_id"], "999999999"],
        external_ids=[f"{source}:1", f"{source}:nope"],
        analyst="bob",
    )
    assert [(r["id"], r["retracted"]) for r in results] == [
        (first[0]["label_id"], True),
        ("999999999", False),
        (f"{source}:1", True),
        (f"{source}:nope", False),
    ]
    assert results[1]["error_field"] == "label_ids[1]" and results[1]["error"].startswith("label_ids[1]: ")
    assert results[3]["error_field"] == "external_ids[1]"
    assert sink.store.count(source) == FP_PER_STEP - 1 and sink.k_for_source(source) is None  # 4 votes left
    live, _ = listing(server, source=source)
    assert [r["external_id"] for r in live] == [f"{source}:{n}" for n in range(2, FP_PER_STEP + 1)]
    everything, _ = listing(server, source=source, include_retracted=True)
    assert [r["retracted"] for r in everything] == [True, True] + [False] * (FP_PER_STEP - 1)
    again = retract(server, external_ids=[f"{source}:1"], analyst="bob")  # already withdrawn
    assert not again[0]["retracted"] and again[0]["error_field"] == "external_ids[0]"
    # the same external id may be used again after a retraction: a new label, a new vote
    (back,) = submit(server, [false_positive(source, 1)])
    assert back["accepted"] and not back["duplicate"] and not back["replaced"]
    assert sink.k_for_source(source) == sink.thresholds.base_k + 1


def test_errors_name_the_field(server):
    long_id = "x" * 2000
    bad = [
        false_positive("errors", 1, external_id="two\nlines"),
        false_positive("errors", 2, external_id=long_id),
        false_positive("errors", 3, attributes={f"k{i}": "v" for i in range(17)}),
        false_positive("errors", 4, attributes={"index": "v" * 2000}),
        false_positive("errors", 5),
    ]
    for submit in (submit_http, submit_grpc):
        results = submit(server, bad)
        fields = [r["error_field"] for r in results]
        assert fields == [
            "labels[0].external_id",
            "labels[1].external_id",
            "labels[2].attributes",
            "labels[3].attributes['index']",
            "",
        ], results
        assert all(r["error"].startswith(r["error_field"]) for r in results[:4]) and results[4]["accepted"]
    status, _, body = call(
        server.http, "POST", "/v1/labels", {"labels": [false_positive("errors", 6, attributes={"n": 1})]}
    )
    assert status == 200 and body["results"][0]["error_field"] == "labels[0].attributes['n']"

    for query, field in (
        ("limit=20000", "limit"),
        ("limit=ten", "limit"),
        ("after_id=-1", "after_id"),
        ("include_retracted=maybe", "include_retracted"),
        ("since=noon", "since"),
        ("sauce=hdfs", "sauce"),
    ):
        status, _, body = call(server.http, "GET", f"/v1/labels?{query}")
        assert status == 400 and body["error"]["field"] == field, (query, body)
    with pytest.raises(grpc.RpcError) as err:
        server.stub.ListLabels(lpb.ListLabelsRequest(limit=20000))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.value.details().startswith("limit: ")

    for body, field in (
        ({"label_ids": [], "analyst": "ann"}, "label_ids"),
        ({"label_ids": ["1"]}, "analyst"),
        ({"label_ids": [True], "analyst": "ann"}, "label_ids[0]"),
        ({"ids": ["1"], "analyst": "ann"}, "ids"),
    ):
        status, _, answer = call(server.http, "POST", "/v1/labels/retract", body)
        assert status == 400 and answer["error"]["field"] == field, (body, answer)
    results = retract_http(server, label_ids=["abc", 7_000_000], external_ids=[""], analyst="ann")
    assert [(r["retracted"], r["error_field"]) for r in results] == [
        (False, "label_ids[0]"),
        (False, "label_ids[1]"),
        (False, "external_ids[0]"),
    ]
    with pytest.raises(grpc.RpcError) as err:
        server.stub.RetractLabels(lpb.RetractLabelsRequest(label_ids=["1"]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.value.details().startswith("analyst: ")
