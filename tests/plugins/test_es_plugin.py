"""What plugins/elasticsearch installs into a cluster: the component and index templates, the pipelines, the
``custom`` inference endpoint and the Kibana dashboard. Installed with the official ``elasticsearch`` client
into the Elasticsearch stand-in (tests/peers/elasticsearch.py, standing in for an Elasticsearch 9 cluster);
there is no Kibana here, so the saved objects are checked for their references and fields only."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from peers.elasticsearch import ElasticsearchPeer

from logwarden.integrations.client.common import INVALID, SCORED, UNSCORED, Expected, ScoredEvent, SessionVerdict
from logwarden.integrations.elasticsearch import labels as labels_module
from logwarden.integrations.elasticsearch.worker import session_fields

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "elasticsearch"
LINE = "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38 terminating"


def load(path: str):
    return json.loads((PLUGIN / path).read_text())


def mapped_types(properties: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for name, spec in properties.items():
        if "properties" in spec:
            out.update(mapped_types(spec["properties"], f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = spec["type"]
            for sub, subspec in spec.get("fields", {}).items():
                out[f"{prefix}{name}.{sub}"] = subspec["type"]
    return out


def leaves(value: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, sub in value.items():
        if isinstance(sub, dict):
            out.update(leaves(sub, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = sub
    return out


MAPPING = mapped_types(load("component-templates/logwarden-mappings.json")["template"]["mappings"]["properties"])
KIND = {
    bool: {"boolean"},
    int: {"integer", "long", "float"},
    float: {"float", "double"},
    str: {"keyword", "match_only_text", "date"},
}


def written_documents() -> list[dict]:
    """Every shape the integrations write: event results of each status, session verdicts, label marks."""
    scored = ScoredEvent(
        "1", SCORED, 0.91, True, "3", "PacketResponder <*> for block <*> terminating", True, 7, "new template",
        [Expected("2", "Receiving block <*>", 0.4)], "v1", "dn-1", "blk_38", reason_code="new_template", model="hdfs",
    )  # fmt: skip
    invalid = ScoredEvent("2", INVALID, error="events[0].message: empty", error_field="events[0].message")
    unscored = ScoredEvent("3", UNSCORED, reason="scorer unavailable: refused")
    verdict = SessionVerdict("dn-1", "blk_38", 0.97, True, "ended early", 12, 3, "v1", reason_code="ended_early")
    labels = {"label": "anomaly", "label_by": "ann", "label_comment": "c", "label_target": "event"}
    marks = {"label_sent": "anomaly", "label_id": "17", "label_sent_at": "2026-01-01T00:00:00.000Z", "label_error": "x"}
    return [
        scored.document(),
        invalid.document(),
        unscored.document(),
        {"logwarden": {"session": session_fields(verdict)}},
        {"logwarden": {**labels, **marks}},
    ]


def test_every_field_the_integrations_write_is_mapped_with_its_type():
    for document in written_documents():
        for path, value in leaves(document).items():
            if isinstance(value, list):
                assert MAPPING.get(path) == "keyword", path  # expected templates: a keyword array
                continue
            assert path in MAPPING, f"{path} is not in the component template"
            if value is not None:
                assert MAPPING[path] in KIND[type(value)], (path, MAPPING[path], value)
    assert MAPPING["event.risk_score"] == MAPPING["event.risk_score_norm"] == "float"  # ECS


def test_the_label_fields_the_worker_reads_and_writes_are_mapped():
    read = set(re.findall(r'lw\.get\("(\w+)"\)', inspect.getsource(labels_module)))
    assert {"label_by", "label_comment", "label_target"} <= read
    for name in read | {"label", "label_sent", "label_id", "label_sent_at", "label_error"}:
        assert f"logwarden.{name}" in MAPPING, name


@pytest.fixture()
def es():
    with ElasticsearchPeer() as peer:
        yield peer


def install(client: Elasticsearch) -> None:
    """What docs/elasticsearch.md tells a user to run."""
    client.cluster.put_component_template(
        name="logwarden-mappings", **load("component-templates/logwarden-mappings.json")
    )
    client.ingest.put_pipeline(id="logwarden-pending", **load("pipelines/logwarden-pending.json"))
    client.ingest.put_pipeline(id="logwarden-completion", **load("pipelines/logwarden-completion.json"))
    client.indices.put_index_template(name="logs-logwarden", **load("index-templates/logs-logwarden.json"))


def test_the_templates_and_pipelines_install_and_mark_documents_pending(es):
    client = Elasticsearch(es.url)
    install(client)
    client.index(
        index="logs-logwarden-app", document={"@timestamp": "2026-01-01T00:00:00Z", "message": LINE}, op_type="create"
    )
    client.index(
        index="logs-logwarden-app",
        document={"@timestamp": "2026-01-01T00:00:01Z", "message": LINE, "logwarden": {"status": "scored"}},
        op_type="create",
    )
    assert [s["logwarden"]["status"] for s in es.sources("logs-logwarden-app")] == ["pending", "scored"]
    (backing,) = client.indices.get_data_stream(name="logs-logwarden-app")["data_streams"][0]["indices"]
    mapping = client.indices.get_mapping(index=backing["index_name"])[backing["index_name"]]["mappings"]
    assert mapping["properties"]["logwarden"]["properties"]["session"]["properties"]["verdict"]["type"] == "keyword"
    stored = client.ingest.get_pipeline(id="logwarden-completion")["logwarden-completion"]
    assert [next(iter(p)) for p in stored["processors"]] == ["set", "inference", "json", "script", "remove"]


def test_the_inference_endpoint_is_a_custom_completion_service_within_its_documented_limits():
    """INTEGRATIONS.md §5.5: the request template's ``${input}`` is the JSON encoding of the first input
    string; the completion path must yield a string; only known keys may be templated."""
    endpoint = load("inference/logwarden-completion.json")
    settings = endpoint["service_settings"]
    assert endpoint["service"] == "custom" and settings["url"].endswith("/v1/score/completion")
    packed = "dn-1\u001fblk_38\u001f" + LINE
    rendered = settings["request"].replace("${input}", json.dumps(packed))
    assert json.loads(rendered) == {"input": packed}
    keys = set(settings["secret_parameters"]) | {"input"}
    templated = re.findall(r"\$\{(\w+)\}", json.dumps(settings))
    assert templated and set(templated) <= keys
    assert settings["response"]["json_parser"]["completion_result"] == "$.completion"
    assert settings["rate_limit"]["requests_per_minute"] == 10_000
    pipeline = load("pipelines/logwarden-completion.json")
    inference = next(p["inference"] for p in pipeline["processors"] if "inference" in p)
    assert inference["model_id"] == "logwarden"  # PUT _inference/completion/logwarden
    pack = next(p["set"] for p in pipeline["processors"] if "set" in p)
    assert pack["field"] == inference["input_output"][0]["input_field"]
    assert pack["value"].count("\u001f") == 2
    for limit in ("one HTTP call per document", "10,000 requests/minute", "no session verdicts"):
        assert limit in pipeline["description"]


def test_the_dashboard_saved_objects_reference_what_they_use():
    objects = [json.loads(line) for line in (PLUGIN / "kibana/logwarden-dashboard.ndjson").read_text().splitlines()]
    by_id = {(o["type"], o["id"]): o for o in objects}
    assert len(by_id) == len(objects)
    (dashboard,) = [o for o in objects if o["type"] == "dashboard"]
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    names = {r["name"]: r for r in dashboard["references"]}
    assert {p["panelRefName"] for p in panels} == set(names)
    assert all((r["type"], r["id"]) in by_id for r in dashboard["references"])
    titles = {by_id[(r["type"], r["id"])]["attributes"]["title"] for r in dashboard["references"]}
    assert titles == {"LogWarden: anomaly rate", "LogWarden: top reasons", "LogWarden: new templates"}
    for lens in (o for o in objects if o["type"] == "lens"):
        (ref,) = lens["references"]
        assert ("index-pattern", ref["id"]) in by_id
        layers = lens["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]
        for layer in layers.values():
            assert set(layer["columnOrder"]) == set(layer["columns"])
            for column in layer["columns"].values():
                field = column["sourceField"]
                assert field in MAPPING or field in ("@timestamp", "___records___"), field


def render_mustache(template: str, document: dict) -> str:
    """An ingest ``set`` value with ``{{{field}}}`` references, as Elasticsearch renders it (missing: empty)."""

    def value(match: re.Match) -> str:
        node = document
        for part in match.group(1).split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return "" if node is None else str(node)

    return re.sub(r"\{\{\{([^}]+)\}\}\}", value, template)


@pytest.fixture(scope="module")
def gateway(model_root):
    from logwarden.grpc_server.gateway.app import HttpGateway
    from logwarden.grpc_server.settings import load_settings
    from logwarden.grpc_server.testing import BackgroundServer

    with BackgroundServer(load_settings(None, model_path=model_root, grpc_port=0, http_port=0)) as bg:
        port = next(c for c in bg.server.companions if isinstance(c, HttpGateway)).port
        yield f"http://127.0.0.1:{port}"


def post(url: str, body: bytes, headers: dict) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_completion_route_answers_what_the_inference_pipeline_unpacks(gateway):
    """Elasticsearch's side stood in for step by step: the pipeline's ``set`` packs the document, the
    ``custom`` service renders its request template (``${input}`` = the JSON string) and sends it with its
    headers, takes ``$.completion`` (a string), the ``json`` processor parses it, the script copies it."""
    endpoint = load("inference/logwarden-completion.json")["service_settings"]
    pipeline = load("pipelines/logwarden-completion.json")["processors"]
    document = {"message": LINE, "host": {"name": "dn-9"}, "event": {"dataset": "hdfs"}}
    packed = render_mustache(pipeline[0]["set"]["value"], document)
    assert packed == f"dn-9\u001f\u001f{LINE}"
    body = endpoint["request"].replace("${input}", json.dumps(packed)).encode()
    headers = {k: v.replace("${token}", "unused") for k, v in endpoint["headers"].items()}
    status, answer = post(gateway + "/v1/score/completion", body, headers)
    assert status == 200 and isinstance(answer["completion"], str)  # $.completion must be a string
    result = json.loads(answer["completion"])  # the json processor
    document["logwarden"] = result["logwarden"]  # the script: logwarden replaced, event.* merged
    document["event"].update(result["event"])
    assert document["logwarden"]["status"] == "scored" and document["logwarden"]["source"] == "dn-9"
    assert document["event"]["dataset"] == "hdfs" and 0 <= document["event"]["risk_score"] <= 100
    status, plain = post(gateway + "/v1/score/completion", json.dumps({"input": LINE}).encode(), headers)
    assert status == 200 and json.loads(plain["completion"])["logwarden"]["template"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": "a\u001fb"}, "input"),  # two parts: neither a line nor source␟session␟line
        ({"input": ""}, "input"),  # an empty line can never score
        ({"inputs": [LINE]}, "input"),  # the field it needs is missing
        (["not", "an", "object"], "body"),
    ],
)
def test_the_completion_route_refuses_what_can_never_score_naming_the_field(gateway, body, field):
    status, answer = post(
        gateway + "/v1/score/completion", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    assert status == 400 and answer["error"]["field"] == field
