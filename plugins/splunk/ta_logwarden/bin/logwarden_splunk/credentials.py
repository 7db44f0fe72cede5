"""The scoring server's settings in Splunk's credential store (``storage/passwords``), never in a .conf file.

One credential, realm ``ta_logwarden``, user ``scoring_server``, holds a JSON object
``{"url": "https://logwarden:8080", "token": "...", "ca_pem": "-----BEGIN CERTIFICATE-----..."}``.
The setup page (``appserver/static/javascript/setup_page.js``) writes the same shape through the same
REST endpoint; the commands and the alert action read it with ``load``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from logwarden_splunk import APP

REALM = APP
USERNAME = "scoring_server"
MAX_CA_BYTES = 256 * 1024


class SettingsError(Exception):
    """The settings are missing, unreadable or malformed; the message says which and what to do."""


@dataclass
class ScorerSettings:
    """Where the scoring server's HTTP gateway is and how to reach it."""

    url: str
    token: str = ""
    ca_pem: str = ""  # PEM text of a private CA that signed the server's certificate ("" = system CAs)
    timeout_s: float = 5.0

    def __repr__(self) -> str:  # never show the token
        return f"ScorerSettings(url={self.url!r}, token={'***' if self.token else ''!r}, ca={bool(self.ca_pem)})"

    def validate(self) -> ScorerSettings:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError(f"url must be an http:// or https:// URL with a host, not {self.url!r}")
        if self.ca_pem and "-----BEGIN CERTIFICATE-----" not in self.ca_pem:
            raise SettingsError("ca_pem must be PEM text (-----BEGIN CERTIFICATE----- ...)")
        if len(self.ca_pem.encode()) > MAX_CA_BYTES:
            raise SettingsError(f"ca_pem is larger than {MAX_CA_BYTES} bytes")
        if not 0 < float(self.timeout_s) <= 300:
            raise SettingsError("timeout_s must be in (0, 300]")
        return self

    def to_json(self) -> str:
        return json.dumps({"url": self.url, "token": self.token, "ca_pem": self.ca_pem, "timeout_s": self.timeout_s})

    @classmethod
    def from_json(cls, text: str) -> ScorerSettings:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise SettingsError(f"the stored settings are not JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            raise SettingsError("the stored settings have no url")
        try:
            return cls(
                url=data["url"].strip(),
                token=str(data.get("token") or ""),
                ca_pem=str(data.get("ca_pem") or ""),
                timeout_s=float(data.get("timeout_s") or 5.0),
            ).validate()
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"the stored settings are malformed: {exc}") from None


def service(splunkd_uri: str, session_key: str) -> Any:
    """A splunklib ``Service`` on splunkd's REST API in this app's namespace (``servicesNS/nobody/ta_logwarden``),
    authenticated with the search's (or alert's) session key."""
    from splunklib.client import Service

    parts = urlsplit(splunkd_uri)
    if not parts.hostname:
        raise SettingsError(f"no splunkd URI to read the settings from ({splunkd_uri!r})")
    return Service(
        scheme=parts.scheme or "https",
        host=parts.hostname,
        port=parts.port or 8089,
        token=session_key,
        owner="nobody",
        app=APP,
    )


def _find(svc: Any) -> Any:
    for credential in svc.storage_passwords.list(count=-1):
        if credential.realm == REALM and credential.username == USERNAME:
            return credential
    return None


def load(svc: Any) -> ScorerSettings:
    """The stored settings; ``SettingsError`` saying why when there are none or they cannot be read."""
    from splunklib.binding import HTTPError

    try:
        credential = _find(svc)
    except HTTPError as exc:
        if exc.status in (401, 403):
            raise SettingsError(
                f"splunkd refused to read the LogWarden credential (HTTP {exc.status}): the role needs the "
                "list_storage_passwords capability and read access to the ta_logwarden app"
            ) from None
        raise SettingsError(f"splunkd answered HTTP {exc.status} reading storage/passwords") from None
    except OSError as exc:
        raise SettingsError(f"splunkd unreachable reading storage/passwords: {exc}") from None
    if credential is None:
        raise SettingsError("LogWarden is not set up: open the LogWarden app's setup page and save the server URL")
    return ScorerSettings.from_json(credential.clear_password or "")


def save(svc: Any, settings: ScorerSettings) -> None:
    """Create or replace the stored settings (what the setup page does)."""
    settings.validate()
    credential = _find(svc)
    if credential is None:
        svc.storage_passwords.create(settings.to_json(), USERNAME, REALM)
    else:
        credential.update(password=settings.to_json())


def http_client(settings: ScorerSettings, workdir: str | None = None, **kwargs: Any) -> Any:
    """The standard-library LogWarden client for these settings. A CA bundle is written to a private file in
    ``workdir`` (the search's dispatch directory), since ``ssl`` loads CAs from files."""
    from logwarden_client import HttpClient

    ca_file = None
    if settings.ca_pem:
        fd, ca_file = tempfile.mkstemp(prefix="logwarden-ca-", suffix=".pem", dir=workdir)
        with os.fdopen(fd, "w") as handle:
            handle.write(settings.ca_pem)
    return HttpClient(
        settings.url, token=settings.token or None, ca_file=ca_file, timeout_s=settings.timeout_s, **kwargs
    )
