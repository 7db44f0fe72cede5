"""The Forward protocol's shared-key handshake, both sides (INTEGRATIONS.md §3.1).

Server: ``["HELO", {"nonce": bin16, "auth": bin16 | "", "keepalive": true}]``; the client answers
``["PING", hostname, salt, sha512_hex(salt + hostname + nonce + key), username, sha512_hex(auth + username +
password) | ""]``; the server replies ``["PONG", ok, reason, server_hostname, sha512_hex(salt + server_hostname
+ nonce + key)]`` (a bool and a 128-hex digest that Fluent Bit ≥ 5.0.9 checks) and closes when ``ok`` is false.

Handshake messages are decoded raw (every string as bytes): Fluent Bit packs its 16 random salt bytes as a
msgpack *str* that is not UTF-8.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

MAX_HANDSHAKE_BYTES = 64 * 1024


class HandshakeError(Exception):
    """The peer's PING or PONG was refused; ``reason`` is what the PONG (or the log) says."""


def _b(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    raise HandshakeError(f"expected a string, got {type(value).__name__}")


def digest(*parts: bytes) -> str:
    """sha512 hex digest of the concatenated parts (128 hex characters)."""
    return hashlib.sha512(b"".join(parts)).hexdigest()


@dataclass
class ServerHandshake:
    """One connection's handshake, server side: ``helo()`` to send, then ``check_ping(message)``."""

    shared_key: bytes
    server_hostname: str
    users: Mapping[str, str] | None = None  # username -> password; None or empty: no user auth

    def __post_init__(self) -> None:
        self.nonce = os.urandom(16)
        self.auth_salt = os.urandom(16) if self.users else b""
        self.username = ""

    def helo(self) -> bytes:
        return msgpack.packb(["HELO", {"nonce": self.nonce, "auth": self.auth_salt or "", "keepalive": True}])

    def check_ping(self, message: Any) -> bytes:
        """The PONG for a raw-decoded PING; raises ``HandshakeError`` (with the refusing PONG as ``pong``)."""
        salt = b""
        try:
            if not isinstance(message, list) or len(message) != 6 or message[0] != b"PING":
                raise HandshakeError("expected PING")
            hostname, salt, client_digest = _b(message[1]), _b(message[2]), _b(message[3])
            username, password_digest = _b(message[4]), _b(message[5])
            if hostname.decode("utf-8", "replace") == self.server_hostname:
                raise HandshakeError("same hostname between input and output: invalid configuration")
            expected = digest(salt, hostname, self.nonce, self.shared_key).encode()
            if not hmac.compare_digest(client_digest, expected):
                raise HandshakeError("shared key mismatch")
            if self.users:
                self.username = username.decode("utf-8", "replace")
                password = self.users.get(self.username)
                if password is None or not hmac.compare_digest(
                    password_digest, digest(self.auth_salt, username, password.encode()).encode()
                ):
                    raise HandshakeError("username/password mismatch")
        except HandshakeError as exc:
            exc.pong = msgpack.packb(["PONG", False, str(exc), self.server_hostname, ""])
            raise
        answer = digest(salt, self.server_hostname.encode(), self.nonce, self.shared_key)
        return msgpack.packb(["PONG", True, "", self.server_hostname, answer])


@dataclass
class ClientHandshake:
    """The client side (our Forward next hop): ``ping(helo)`` to send, then ``check_pong(message)``.

    The salt is 32 hex characters (as Fluentd and @fluent-org/logger send it), so that servers that decode
    the PING as text (Node's FluentServer) compute the same digest."""

    shared_key: bytes
    hostname: str
    username: str = ""
    password: str = ""

    def __post_init__(self) -> None:
        self.salt = os.urandom(16).hex().encode()
        self.nonce = b""

    def ping(self, helo: Any) -> bytes:
        if not isinstance(helo, list) or len(helo) != 2 or helo[0] != b"HELO" or not isinstance(helo[1], dict):
            raise HandshakeError("expected HELO from the next hop")
        options = {_b(k): v for k, v in helo[1].items()}
        self.nonce = _b(options.get(b"nonce", b""))
        auth = _b(options.get(b"auth", b"") or b"")
        host = self.hostname.encode()
        password = digest(auth, self.username.encode(), self.password.encode()) if auth else ""
        key_digest = digest(self.salt, host, self.nonce, self.shared_key)
        return msgpack.packb(["PING", self.hostname, self.salt.decode(), key_digest, self.username, password])

    def check_pong(self, pong: Any) -> None:
        if not isinstance(pong, list) or len(pong) != 5 or pong[0] != b"PONG":
            raise HandshakeError("expected PONG from the next hop")
        _, ok, reason, server_hostname, server_digest = pong
        if ok is not True:
            raise HandshakeError(f"next hop refused the handshake: {_b(reason or b'').decode('utf-8', 'replace')}")
        expected = digest(self.salt, _b(server_hostname), self.nonce, self.shared_key)
        if not hmac.compare_digest(_b(server_digest), expected.encode()):
            raise HandshakeError("PONG shared_key digest mismatch: the next hop does not hold the same shared key")


def raw_unpacker() -> msgpack.Unpacker:
    """The unpacker for handshake messages: every string as bytes, small buffer."""
    return msgpack.Unpacker(raw=True, max_buffer_size=MAX_HANDSHAKE_BYTES, strict_map_key=False)
