"""Bearer-token auth, TLS and mTLS on a live server (certificates made here with the openssl CLI)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from logwarden.core.synthetic import generate
from logwarden.grpc_server.settings import load_settings
from logwarden.grpc_server.testing import BackgroundServer
from logwarden.protos.logwarden.v1 import scoring_pb2 as pb
from logwarden.protos.logwarden.v1 import scoring_pb2_grpc as pbg

TOKEN = "t0ken-for-tests"
REQUEST = pb.ScoreRequest(events=[pb.Event(message=generate(n_sessions=1, seed=9).lines[0])])


def _creds(pki: Path, client_cert: bool = False) -> grpc.ChannelCredentials:
    extra = (
        {"private_key": (pki / "client.key").read_bytes(), "certificate_chain": (pki / "client.pem").read_bytes()}
        if client_cert
        else {}
    )
    return grpc.ssl_channel_credentials(root_certificates=(pki / "ca.pem").read_bytes(), **extra)


def test_tls_with_bearer_tokens(model_root, pki):
    settings = load_settings(
        None,
        model_path=model_root,
        grpc_port=0,
        tls_cert=pki / "server.pem",
        tls_key=pki / "server.key",
        auth_tokens=[TOKEN, "another"],
    )
    with BackgroundServer(settings) as bg, grpc.secure_channel(bg.target, _creds(pki)) as ch:
        stub = pbg.ScoringServiceStub(ch)
        for metadata in (None, [("authorization", "Bearer wrong")], [("authorization", TOKEN)]):
            with pytest.raises(grpc.RpcError) as info:
                stub.Score(REQUEST, metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as info:
            list(stub.ScoreStream(iter([REQUEST])))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ok = stub.Score(REQUEST, metadata=[("authorization", f"Bearer {TOKEN}")])
        assert ok.results[0].status == pb.EVENT_STATUS_SCORED
        health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())  # open for probes
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        with grpc.insecure_channel(bg.target) as plain:  # no TLS: no connection
            with pytest.raises(grpc.RpcError) as info:
                pbg.ScoringServiceStub(plain).Score(REQUEST, timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls(model_root, pki):
    settings = load_settings(
        None,
        model_path=model_root,
        grpc_port=0,
        tls_cert=pki / "server.pem",
        tls_key=pki / "server.key",
        tls_client_ca=pki / "ca.pem",
    )
    with BackgroundServer(settings) as bg:
        with grpc.secure_channel(bg.target, _creds(pki, client_cert=True)) as ch:
            assert pbg.ScoringServiceStub(ch).Score(REQUEST).results[0].status == pb.EVENT_STATUS_SCORED
        with grpc.secure_channel(bg.target, _creds(pki)) as ch, pytest.raises(grpc.RpcError) as info:
            pbg.ScoringServiceStub(ch).Score(REQUEST, timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
