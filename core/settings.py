"""Typed settings for every long-running command: defaults < config file < environment < flags.

Each command declares one ``CommandSettings`` subclass whose field descriptions are the reference.
``add_flags(parser, cls)`` gives every field a ``--kebab-case`` flag whose help shows the description and
the default (pydantic-settings' own CLI source on an argparse parser); ``load(cls, ...)`` builds the
object from those flags, the ``--config`` file (a YAML, TOML or JSON mapping, optionally under the
class's ``config_section`` key) and ``<env_prefix><FIELD>`` environment variables. Keyword overrides
(tests, embedding programs) win over everything.

Secrets are ``SecretStr`` fields marked ``CliSuppress``: they never appear on a command line, in a repr
or in ``model_dump_json()``; they come from the environment, the config file, or a ``*_file`` flag
that names a file holding them.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import ValidationError
from pydantic_settings import BaseSettings, CliSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from logwarden.core.errors import LogWardenError

S = TypeVar("S", bound="CommandSettings")
_FILE_DATA: ContextVar[dict[str, Any] | None] = ContextVar("logwarden_settings_file", default=None)


class CommandSettings(BaseSettings):
    """Base of every command's settings; subclasses set ``env_prefix`` and ``config_section``."""

    model_config = SettingsConfigDict(env_prefix="LOGWARDEN_", extra="forbid", validate_default=True)
    config_section: ClassVar[str] = ""
    flag_shortcuts: ClassVar[dict[str, str]] = {}  # field name -> extra short flag, e.g. {"output": "o"}

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _FileSource(settings_cls)


class _FileSource(PydanticBaseSettingsSource):
    """The config file's values (read by ``load``), below the environment."""

    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ is used instead
        return (_FILE_DATA.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_DATA.get() or {})


def read_config_file(path: Path, section: str = "") -> dict[str, Any]:
    """A YAML (.yaml/.yml), TOML (.toml) or JSON file holding one mapping of settings (or ``section: {...}``)."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise LogWardenError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text) or {}
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise LogWardenError(f"config file {path} does not parse: {exc}") from exc
    if not isinstance(data, dict):
        raise LogWardenError(f"config file {path} must hold a mapping of settings")
    if section and isinstance(data.get(section), dict):
        return data[section]
    return data


def add_flags(parser: argparse.ArgumentParser, cls: type[CommandSettings]) -> CliSettingsSource:
    """Give ``parser`` a ``--config`` flag and one flag per field of ``cls``; returns the source ``load`` needs."""
    parser.add_argument(
        "--config",
        type=Path,
        help="YAML, TOML or JSON file of these settings (flags win over it, "
        f"{cls.model_config.get('env_prefix', '')}* environment variables too)",
    )
    source = CliSettingsSource(
        cls,
        root_parser=parser,
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_exit_on_error=True,
        cli_shortcuts=cls.flag_shortcuts or None,
    )
    for action in parser._actions:  # secrets (CliSuppress): hidden from --help, and refused if given anyway
        if action.help == argparse.SUPPRESS and action.option_strings:
            action.type = _refuse_secret(action.option_strings[0])
    return source


def _refuse_secret(flag: str):
    def refuse(value: str) -> str:
        raise argparse.ArgumentTypeError(
            f"secrets never go on the command line (other users can read it): use {flag}-file, the --config file "
            "or the environment"
        )

    return refuse


def load(
    cls: type[S],
    *,
    args: argparse.Namespace | None = None,
    source: CliSettingsSource | None = None,
    config_file: Path | None = None,
    **overrides: Any,
) -> S:
    """Build ``cls`` from flags (``args`` parsed by a parser ``add_flags`` prepared), a config file, the
    environment and ``overrides`` (keywords whose value is None are left out)."""
    if args is not None and config_file is None:
        config_file = getattr(args, "config", None)
    data = read_config_file(config_file, cls.config_section) if config_file else {}
    token = _FILE_DATA.set(data)
    try:
        kwargs = {k: v for k, v in overrides.items() if v is not None}
        if source is not None and args is not None:
            namespace = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "config"})
            kwargs["_cli_settings_source"] = source(parsed_args=namespace)
        return cls(**kwargs)
    except ValidationError as exc:
        raise LogWardenError(f"invalid settings: {_readable(exc)}") from None
    except ValueError as exc:
        raise LogWardenError(f"invalid settings: {exc}") from None
    finally:
        _FILE_DATA.reset(token)


def _readable(exc: ValidationError) -> str:
    """One line per problem: ``field: message`` (input values left out: they may be secrets)."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "settings"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
