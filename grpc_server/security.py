"""Security shared by gRPC and the HTTP gateway: one bearer-token check, one TLS loader.

Tokens are compared in constant time and never logged. TLS comes from a PEM certificate chain and key;
with a client CA bundle, clients must present a certificate signed by it (mTLS).
"""

from __future__ import annotations

import hmac
import ssl
from collections.abc import Sequence
from pathlib import Path

import grpc

from logwarden.core.errors import LogWardenError


class TokenCheck:
    """Accepts ``Bearer <token>`` authorization values that carry one of ``tokens``."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self._tokens = [t.encode() for t in tokens]

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def accepts(self, authorization: str | bytes | None) -> bool:
        """True when ``authorization`` (an ``Authorization`` header or metadata value) holds a valid token."""
        if not authorization:
            return False
        if isinstance(authorization, bytes):
            authorization = authorization.decode("latin-1")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        given = token.strip().encode("utf-8", "surrogateescape")
        return any(hmac.compare_digest(given, t) for t in self._tokens)


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise LogWardenError(f"cannot read TLS {what} {path}: {exc.strerror}") from exc


def grpc_credentials(cert: Path, key: Path, client_ca: Path | None = None) -> grpc.ServerCredentials:
    """gRPC server credentials; clients must present a certificate signed by ``client_ca`` when it is given."""
    ca = _read(client_ca, "client CA") if client_ca else None
    return grpc.ssl_server_credentials(
        [(_read(key, "key"), _read(cert, "certificate"))], root_certificates=ca, require_client_auth=ca is not None
    )


def ssl_context(
    cert: Path | None, key: Path | None, client_ca: Path | None = None, alpn: Sequence[str] = ("http/1.1",)
) -> ssl.SSLContext | None:
    """A server-side TLS context for asyncio servers (HTTP gateway, receivers); None without a certificate."""
    if not cert:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    try:
        ctx.load_cert_chain(cert, key)
        if client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise LogWardenError(f"cannot load the TLS certificate, key or client CA: {exc}") from exc
    return ctx
