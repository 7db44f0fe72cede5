"""Constants and helpers the Splunk app's tests share with their fixtures (a module of its own: test modules
import it by a name no other test folder uses, never ``conftest``)."""

from __future__ import annotations

import json
from pathlib import Path

from splunkd_peer import Splunkd

REPO = Path(__file__).resolve().parents[3]
TOKEN = "splunk-app-t0ken"
SESSION_KEY = "splunkd-session-key"


def store_settings(splunkd: Splunkd, url: str, token: str = TOKEN) -> None:
    """What the setup page leaves in storage/passwords."""
    splunkd.passwords[("ta_logwarden", "ta_logwarden:scoring_server:")] = {
        "realm": "ta_logwarden",
        "username": "scoring_server",
        "password": json.dumps({"url": url, "token": token, "ca_pem": "", "timeout_s": 60}),
    }
