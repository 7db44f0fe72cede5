"""The committed generated code is fresh, imports under logwarden.protos, and the wire contract holds."""

from __future__ import annotations

from logwarden.protos import codegen
from logwarden.protos.logwarden.v1 import labels_pb2, model_pb2, scoring_pb2, scoring_pb2_grpc

# Field numbers integrations depend on: changing one breaks every deployed client.
WIRE = {
    scoring_pb2.Event: {
        "id": 1,
        "message": 2,
        "raw": 3,
        "timestamp": 4,
        "source": 5,
        "session_key": 6,
        "attributes": 7,
        "session_end": 8,
    },
    scoring_pb2.ScoreRequest: {
        "events": 1,
        "mode": 2,
        "request_id": 3,
        "idempotency_key": 4,
        "model": 5,
        "window_scope": 6,
        "partial_sessions": 7,
    },
    scoring_pb2.EventResult: {
        "id": 1,
        "status": 2,
        "error": 3,
        "error_field": 4,
        "score": 5,
        "verdict": 6,
        "template_id": 7,
        "template": 8,
        "new_template": 9,
        "rank": 10,
        "surprisal": 11,
        "expected": 12,
        "reason": 13,
        "model_version": 14,
        "reason_code": 18,
        "model": 19,
    },
    scoring_pb2.SessionResult: {"end": 8, "model_version": 9, "event_ids": 10, "reason_code": 11, "open": 12},
    scoring_pb2.ScoreResponse: {"results": 1, "sessions": 2, "model_version": 3, "request_id": 4, "replayed": 5},
    labels_pb2.Label: {
        "id": 1,
        "target": 2,
        "value": 3,
        "analyst": 4,
        "time": 5,
        "comment": 6,
        "source": 7,
        "session_key": 8,
        "template_id": 9,
        "event_id": 10,
        "message": 11,
        "model_version": 12,
        "keys": 13,
        "predicted": 14,
        "reason": 15,
        "external_id": 16,
        "attributes": 17,
        "reason_code": 18,
    },
    labels_pb2.LabelResult: {"id": 1, "accepted": 2, "error": 3, "error_field": 4, "label_id": 5, "duplicate": 6},
    model_pb2.ReloadModelRequest: {"version": 1, "model": 2},
}


def test_generated_code_is_fresh():
    assert codegen.stale_files() == []


def test_generated_code_imports_inside_the_package():
    assert scoring_pb2_grpc.ScoringServiceStub  # the grpc module imports its pb2 relatively
    for path in codegen.PACKAGE_DIR.glob("*_pb2*.py"):
        assert "from logwarden.v1 import" not in path.read_text("utf-8"), path.name


def test_field_numbers_are_stable():
    for cls, fields in WIRE.items():
        numbers = {f.name: f.number for f in cls.DESCRIPTOR.fields}
        assert {name: numbers.get(name) for name in fields} == fields, cls.DESCRIPTOR.full_name


def test_contract_shape():
    services = {
        s.full_name: [m.name for m in s.methods]
        for module in (scoring_pb2, labels_pb2, model_pb2)
        for s in module.DESCRIPTOR.services_by_name.values()
    }
    assert services == {
        "logwarden.v1.ScoringService": ["Score", "ScoreStream"],
        "logwarden.v1.LabelService": ["SubmitLabels", "ListLabels", "RetractLabels"],
        "logwarden.v1.ModelService": ["GetModelInfo", "ReloadModel"],
    }
    stream = scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"].methods_by_name["ScoreStream"]
    assert stream.client_streaming and stream.server_streaming
    allowed = {"google/protobuf/timestamp.proto", "logwarden/v1/reasons.proto"}  # the shared types only
    for module in (scoring_pb2, labels_pb2, model_pb2):  # one file per service
        assert {d.name for d in module.DESCRIPTOR.dependencies} <= allowed


def test_every_reason_code_has_its_contract_value():
    """``ReasonCode`` values map to the proto enum by name; UNUSUAL_COUNT (bursts in a window) is number 7."""
    from logwarden.core.detect.reasons import ReasonCode
    from logwarden.protos.logwarden.v1 import reasons_pb2

    for code in ReasonCode:
        assert reasons_pb2.ReasonCode.Value("REASON_CODE_" + code.value.upper()) > 0
    assert reasons_pb2.REASON_CODE_UNUSUAL_COUNT == 7
