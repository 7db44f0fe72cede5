"""The app as built for installation (plugins/splunk/build.py): the files a Splunk operator expects, each
command documented, splunklib and the LogWarden client vendored once, nothing executable or compiled."""

from __future__ import annotations

import configparser
import importlib.metadata
import os
import stat
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

from splunk_app_support import REPO


def conf(app: Path, name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    parser.read(app / "default" / name)
    return parser


def test_app_conf_carries_the_package_version_and_id(splunk_app):
    app = conf(splunk_app, "app.conf")
    version = importlib.metadata.version("logwarden")
    assert app["id"]["version"] == app["launcher"]["version"] == version
    assert app["package"]["id"] == app["id"]["name"] == "ta_logwarden"
    assert app["install"]["is_configured"] == "false" and app["ui"]["setup_view"] == "logwarden_setup"
    for name in ("appIcon.png", "appIcon_2x.png", "appIconAlt.png", "appIconAlt_2x.png"):
        assert (splunk_app / "static" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_command_is_chunked_documented_and_present(splunk_app):
    commands, bnf = conf(splunk_app, "commands.conf"), conf(splunk_app, "searchbnf.conf")
    assert set(commands.sections()) == {"anomalyscore", "anomalylabel"}
    for name in commands.sections():
        stanza = commands[name]
        assert stanza["chunked"] == "true" and stanza["python.required"] == "3.9,3.13"
        assert (splunk_app / "bin" / stanza["filename"]).is_file()
        doc = bnf[f"{name}-command"]
        assert doc["syntax"].startswith(name) and doc["description"] and doc["example1"] and doc["shortdesc"]


def test_nothing_executable_compiled_or_secret(splunk_app):
    for path in splunk_app.rglob("*"):
        assert "__pycache__" not in path.parts and path.suffix not in (".pyc", ".so", ".pyd", ".dll", ".exe")
        if path.is_file():
            assert not stat.S_IMODE(path.stat().st_mode) & 0o111, path
    for path in (splunk_app / "default").glob("*.conf"):
        text = path.read_text()
        assert "password" not in text.lower() and "token =" not in text, path


def test_lib_vendors_splunklib_and_the_client_once(splunk_app):
    lib = splunk_app / "lib"
    assert sorted(p.name for p in lib.iterdir()) == ["logwarden_client", "splunk_sdk-2.1.1.dist-info", "splunklib"]
    for name in ("common.py", "http_client.py"):
        source = (REPO / "integrations" / "client" / name).read_text()
        vendored = (lib / "logwarden_client" / name).read_text()
        assert vendored == source.replace("from logwarden.integrations.client.", "from logwarden_client.")
    assert "logwarden_client" not in os.listdir(REPO / "plugins" / "splunk" / "ta_logwarden")


def test_views_alert_action_and_saved_search(splunk_app):
    views = splunk_app / "default" / "data" / "ui" / "views"
    names = {p.stem for p in views.glob("*.xml")}
    assert {"logwarden_overview", "logwarden_event", "logwarden_setup"} <= names
    for path in views.glob("*.xml"):
        assert ET.parse(path).getroot().get("version") == "1.1", path
    nav = ET.parse(splunk_app / "default" / "data" / "ui" / "nav" / "default.xml").getroot()
    assert {v.get("name") for v in nav.iter("view")} - {"search"} <= names
    alert = conf(splunk_app, "alert_actions.conf")["logwarden_label"]
    assert alert["payload_format"] == "json" and (splunk_app / "bin" / alert["alert.execute.cmd"]).is_file()
    assert (splunk_app / "default" / "data" / "ui" / "alerts" / "logwarden_label.html").is_file()
    saved = conf(splunk_app, "savedsearches.conf")["LogWarden - score new events"]
    assert saved["disabled"] == "1" and "| anomalyscore" in saved["search"] and "| collect" in saved["search"]
    flows = conf(splunk_app, "workflow_actions.conf")
    assert {flows[s]["label"] for s in flows.sections()} == {
        "LogWarden: this is normal",
        "LogWarden: this is an anomaly",
    }


def test_archive_holds_the_app_folder_without_exec_bits(splunk_app, tmp_path):
    import sys

    sys.path.insert(0, str(REPO / "plugins" / "splunk"))
    try:
        import build
    finally:
        sys.path.pop(0)
    path = build.archive(splunk_app, tmp_path, "9.9.9")
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    assert path.name == "ta_logwarden-9.9.9.tgz"
    assert all(m.name == "ta_logwarden" or m.name.startswith("ta_logwarden/") for m in members)
    assert all(not (m.mode & 0o111) for m in members if m.isfile()) and all(m.uid == 0 for m in members)
