"""The setup page's credential handling (``logwarden_splunk.credentials``, from the BUILT app, with its vendored
splunklib) against a stand-in for splunkd's ``storage/passwords`` REST API (splunkd_peer.py)."""

from __future__ import annotations

import json
import os
import stat
import sys

import pytest
from splunk_app_support import SESSION_KEY
from splunkd_peer import Splunkd


@pytest.fixture(scope="module")
def credentials(splunk_app):
    sys.path[:0] = [str(splunk_app / "bin"), str(splunk_app / "lib")]
    try:
        from logwarden_splunk import credentials

        yield credentials
    finally:
        del sys.path[:2]


def test_save_then_load_round_trips_through_storage_passwords(credentials):
    """Stands for the setup page saving twice (create, then update) and a search reading the settings."""
    with Splunkd(SESSION_KEY) as splunkd:
        svc = credentials.service(splunkd.uri, SESSION_KEY)
        first = credentials.ScorerSettings("https://logwarden:8080", token="t0ken", ca_pem="")
        credentials.save(svc, first)
        second = credentials.ScorerSettings(
            "https://logwarden:8443", token="n3w", ca_pem="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
        )
        credentials.save(svc, second)
        loaded = credentials.load(credentials.service(splunkd.uri, SESSION_KEY))
        assert (loaded.url, loaded.token, loaded.ca_pem) == (second.url, second.token, second.ca_pem)
        assert list(splunkd.passwords) == [("ta_logwarden", "ta_logwarden:scoring_server:")]
        stored = json.loads(splunkd.passwords[("ta_logwarden", "ta_logwarden:scoring_server:")]["password"])
        assert stored["url"] == "https://logwarden:8443" and stored["token"] == "n3w"
        assert ("POST", "/servicesNS/nobody/ta_logwarden/storage/passwords") in splunkd.requests
        assert ("POST", "/servicesNS/nobody/ta_logwarden/storage/passwords/ta_logwarden:scoring_server:") in [
            (m, p.replace("%3A", ":")) for m, p in splunkd.requests
        ]


def test_missing_settings_say_to_run_the_setup_page(credentials):
    """Stands for a fresh install that was never set up."""
    with Splunkd(SESSION_KEY) as splunkd, pytest.raises(credentials.SettingsError, match="setup page"):
        credentials.load(credentials.service(splunkd.uri, SESSION_KEY))


def test_refused_reads_name_the_capability(credentials):
    """Stands for splunkd refusing the session key (401) or the role (403)."""
    with Splunkd(SESSION_KEY) as splunkd:
        with pytest.raises(credentials.SettingsError, match=r"HTTP 401.*list_storage_passwords"):
            credentials.load(credentials.service(splunkd.uri, "stale-key"))
        splunkd.refuse_reads = True
        with pytest.raises(credentials.SettingsError, match="HTTP 403"):
            credentials.load(credentials.service(splunkd.uri, SESSION_KEY))


@pytest.mark.parametrize(
    ("stored", "problem"),
    [("not json", "not JSON"), ('{"token": "x"}', "no url"), ('{"url": "ftp://x"}', "http:// or https://"),
     ('{"url": "https://x", "ca_pem": "garbage"}', "PEM")],
)  # fmt: skip
def test_malformed_settings_are_refused_clearly(credentials, stored, problem):
    """Stands for a credential edited by hand into something unusable."""
    with Splunkd(SESSION_KEY) as splunkd:
        splunkd.passwords[("ta_logwarden", "ta_logwarden:scoring_server:")] = {
            "realm": "ta_logwarden", "username": "scoring_server", "password": stored,
        }  # fmt: skip
        with pytest.raises(credentials.SettingsError, match=problem):
            credentials.load(credentials.service(splunkd.uri, SESSION_KEY))


def test_token_is_never_shown_and_the_ca_goes_to_a_private_file(credentials, tmp_path):
    settings = credentials.ScorerSettings(
        "https://127.0.0.1:9", token="s3cret", ca_pem="-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----"
    )
    assert "s3cret" not in repr(settings)
    with pytest.raises(Exception):  # noqa: B017 - ssl refuses the garbage CA: the file was read
        credentials.http_client(settings, str(tmp_path))
    (written,) = tmp_path.iterdir()
    assert written.read_text() == settings.ca_pem
    assert stat.S_IMODE(os.stat(written).st_mode) == 0o600
