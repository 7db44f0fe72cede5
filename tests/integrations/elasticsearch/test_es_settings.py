"""The settings of ``logwarden es-proxy`` and ``logwarden es-worker``: flags, environment, config file, secrets
kept off the command line, and clear errors for settings that cannot work."""

from __future__ import annotations

import pytest

from logwarden.core.cli import build_parser
from logwarden.core.errors import LogWardenError
from logwarden.core.settings import load
from logwarden.integrations.elasticsearch.settings import IndexRule, ProxySettings, WorkerSettings, rule_for


def test_flags_environment_and_file_in_that_order(tmp_path, monkeypatch):
    config = tmp_path / "proxy.yaml"
    config.write_text("es_proxy:\n  upstream: https://from-file:9200\n  port: 9300\n  score_budget_s: 1.5\n")
    monkeypatch.setenv("LOGWARDEN_ES_PROXY_PORT", "9400")
    monkeypatch.setenv("LOGWARDEN_ES_PROXY_RULES", '[{"pattern": "app-*", "message_field": "log.original"}]')
    settings = load(ProxySettings, config_file=config, score_budget_s=3.0)
    assert settings.upstream == "https://from-file:9200"  # file
    assert settings.port == 9400  # environment over file
    assert settings.score_budget_s == 3.0  # overrides over everything
    assert settings.rules == [IndexRule(pattern="app-*", message_field="log.original")]


def test_rules_first_match_wins_and_score_false_skips():
    rules = [IndexRule(pattern="skip-*", score=False), IndexRule(pattern="logs-*"), IndexRule(pattern="*")]
    assert rule_for(rules, "skip-1") is None
    assert rule_for(rules, "logs-a") is rules[1] and rule_for(rules, "other") is rules[2]
    assert rule_for(rules, None) is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"upstream": "127.0.0.1:9200"}, "upstream must be an http:// or https:// URL"),
        ({"tls_cert": "cert.pem"}, "tls_cert and tls_key go together"),
        ({"rules": [{"pattern": "x", "mesage_field": "m"}]}, "rules.0.mesage_field"),
        ({"port": 70000}, "port"),
    ],
)
def test_settings_that_cannot_work_are_refused_naming_the_setting(overrides, message):
    with pytest.raises(LogWardenError, match=message.replace(".", r"\.")):
        load(ProxySettings, **overrides)


def test_secrets_come_from_files_or_the_environment_never_flags(tmp_path, monkeypatch):
    key = tmp_path / "es.key"
    key.write_text("c2VjcmV0OmtleQ==\n")
    token = tmp_path / "token"
    token.write_text("tkn\n")
    settings = load(WorkerSettings, es_api_key_file=key, scorer_token_file=token)
    assert settings.es_api_key.get_secret_value() == "c2VjcmV0OmtleQ=="
    assert settings.scorer_options(5.0)["token"] == "tkn"
    assert "c2VjcmV0" not in repr(settings) and "tkn" not in settings.model_dump_json()
    monkeypatch.setenv("LOGWARDEN_ES_WORKER_ES_PASSWORD", "pw")
    assert load(WorkerSettings, es_username="elastic").es_password.get_secret_value() == "pw"
    with pytest.raises(LogWardenError, match="cannot read Elasticsearch API key file"):
        load(WorkerSettings, es_api_key_file=tmp_path / "missing")


def test_every_setting_has_a_flag_with_help(capsys):
    for command, cls in (("es-proxy", ProxySettings), ("es-worker", WorkerSettings)):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        text = capsys.readouterr().out
        for name, field in cls.model_fields.items():
            if name.endswith(("_token", "_api_key", "_password")):
                assert f"--{name.replace('_', '-')} " not in text  # secrets: no flag
                continue
            assert f"--{name.replace('_', '-')}" in text, (command, name)
            assert field.description, (command, name)
