"""Server credentials: TLS from a PEM cert and key; mTLS when a client CA bundle is given."""

from __future__ import annotations

from pathlib import Path

import grpc

from logwarden.core.records import LogWardenError


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise LogWardenError(f"cannot read TLS {what} {path}: {exc.strerror}") from exc


def server_credentials(cert: Path, key: Path, client_ca: Path | None = None) -> grpc.ServerCredentials:
    """Clients must present a certificate signed by ``client_ca`` when it is given."""
    ca = _read(client_ca, "client CA") if client_ca else None
    return grpc.ssl_server_credentials(
        [(_read(key, "key"), _read(cert, "certificate"))], root_certificates=ca, require_client_auth=ca is not None
    )
