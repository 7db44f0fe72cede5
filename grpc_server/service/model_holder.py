"""The served models: each route's version loaded off the event loop and swapped atomically on reload.

Callers take ``holder.current`` once per request and keep that ``ServedModel`` to the end, so a
request in flight during a reload finishes on the version it started with; nothing is dropped.
``ModelRegistry`` holds one ``ModelHolder`` per route (``routing``): the default model and the named ones.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from logwarden.core.artifact import store as artifact
from logwarden.core.detect.detector import Detector
from logwarden.core.errors import LogWardenError
from logwarden.core.parsing.formats import LineFormat, get_format
from logwarden.core.parsing.linear_regex import Regex
from logwarden.core.parsing.sessions import key_pattern
from logwarden.grpc_server import heap
from logwarden.grpc_server.service.errors import FailedPrecondition, InvalidRequest, NotFound
from logwarden.grpc_server.service.routing import DEFAULT, RouteTable
from logwarden.grpc_server.service.schema import ModelInfoOut

MAX_VERSION_CHARS = 200
_VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True, eq=False)
class ServedModel:
    """A loaded detector with what serving needs beside it (its line format and session key pattern)."""

    detector: Detector
    fmt: LineFormat
    backend: str
    key_pattern: Regex | None = None  # the session rule's regex, compiled once
    loaded_at: float = field(default_factory=time.time)

    @property
    def version(self) -> str:
        return self.detector.version


def load_model(
    path: Path, version: str | None, backend: str, device: str, parser_cache_bytes: int | None = None
) -> ServedModel:
    """Load and wrap a version (blocking: call it in a thread once the server runs)."""
    detector = Detector.load(path, version=version, backend=backend, device=device)
    if parser_cache_bytes is not None and detector.parser is not None:
        detector.parser.cache_bytes = parser_cache_bytes
    rule = detector.rule
    pattern = key_pattern(rule) if rule.kind == "key" else None
    return ServedModel(detector, get_format(detector.line_format), backend, pattern)


class ModelHolder:
    """Holds the current ``ServedModel``; ``reload`` replaces it without pausing scoring."""

    def __init__(
        self, path: Path, *, backend: str = "onnx", device: str = "auto", parser_cache_bytes: int | None = None
    ) -> None:
        self.path = Path(path)
        self.backend = backend
        self.device = device
        self.parser_cache_bytes = parser_cache_bytes
        self._current: ServedModel | None = None
        self._lock = asyncio.Lock()

    @property
    def current(self) -> ServedModel:
        if self._current is None:
            raise FailedPrecondition("no model loaded")
        return self._current

    def load(self, version: str | None = None) -> ServedModel:
        """First load (blocking, before serving starts)."""
        self._current = load_model(self.path, version, self.backend, self.device, self.parser_cache_bytes)
        return self._current

    async def reload(self, version: str | None = None) -> tuple[str, ServedModel, bool]:
        """Load ``version`` (the newest when None) in a thread and swap it in: (previous, new, changed)."""
        async with self._lock:
            previous = self.current
            target = self._resolve(version)
            if previous.detector.path is not None and target == previous.detector.path.resolve():
                return previous.version, previous, False
            try:
                model = await asyncio.to_thread(
                    load_model, self.path, version, self.backend, self.device, self.parser_cache_bytes
                )
            except LogWardenError as exc:
                raise FailedPrecondition(
                    f"cannot load model version {version or target.name}: {self._redact(str(exc))}"
                ) from exc
            self._current = model  # the swap: one reference assignment on the event loop thread
            heap.refreeze()
            return previous.version, model, True

    def _resolve(self, version: str | None) -> Path:
        if version is not None and len(version) > MAX_VERSION_CHARS:
            raise InvalidRequest("version", f"longer than {MAX_VERSION_CHARS} characters: no such version can exist")
        if version is not None and not _VERSION_NAME.fullmatch(version):
            raise NotFound(f"model version {version!r} not found", "version")
        try:
            return artifact.resolve(self.path, version).resolve()
        except (LogWardenError, OSError, ValueError) as exc:
            raise NotFound(
                f"model version {version!r} not found" if version else self._redact(str(exc)), "version"
            ) from exc

    def _redact(self, message: str) -> str:
        """``message`` without the server's model directory (callers need not know the server's paths)."""
        for path in sorted({str(self.path.resolve()), str(self.path)}, key=len, reverse=True):
            message = message.replace(path, "<model root>")
        return message

    def info(self, name: str = DEFAULT) -> ModelInfoOut:
        model = self.current
        det = model.detector
        root = self.path.parent if (self.path / artifact.CONFIG).exists() else self.path
        return ModelInfoOut(
            version=det.version,
            path=str(det.path or ""),
            line_format=det.line_format,
            backend=model.backend,
            k=det.calibration.k,
            templates=det.parser.num_templates if det.parser else 0,
            session_rule=det.rule.to_dict(),
            available_versions=artifact.list_versions(root),
            loaded_at=model.loaded_at,
            max_context=det.model_config.max_len - 1,
            name=name,
        )


class ModelRegistry:
    """Every served model by route name, and the rules that route events to them."""

    def __init__(self, holders: dict[str, ModelHolder], table: RouteTable, versions: dict[str, str | None]) -> None:
        if table.default not in holders:
            raise LogWardenError(f"the default model route {table.default!r} has no model")
        self.holders = holders
        self.table = table
        self.versions = versions  # the version each route was asked to serve (None: the newest)

    @classmethod
    def from_settings(cls, settings, **holder_options) -> ModelRegistry:
        """The default route (``model_path``) and the ``models`` routes of the server settings."""
        holders = {DEFAULT: ModelHolder(settings.model_path, **holder_options)}
        versions = {DEFAULT: settings.model_version}
        for name, spec in settings.models.items():
            holders[name] = ModelHolder(spec.path, **holder_options)
            versions[name] = spec.version
        return cls(holders, RouteTable({n: s.rules for n, s in settings.models.items()}), versions)

    @property
    def default(self) -> ModelHolder:
        return self.holders[self.table.default]

    def __len__(self) -> int:
        return len(self.holders)

    def load_all(self) -> None:
        """First load of every route (blocking, before serving starts)."""
        for name, holder in self.holders.items():
            holder.load(self.versions[name])

    def holder(self, name: str) -> ModelHolder:
        """The route ``name`` ("" = the default); an unknown name is a caller's mistake naming the routes."""
        found = self.holders.get(name or self.table.default)
        if found is None:
            known = ", ".join(sorted(self.holders))
            raise InvalidRequest("model", f"no model route {name[:80]!r} (this server serves: {known})")
        return found

    def route(self, attributes: dict[str, str]) -> str:
        return self.table.route(attributes)

    def info(self, name: str = "") -> ModelInfoOut:
        name = name or self.table.default
        info = self.holder(name).info(name)
        info.routes = [
            {
                "name": route,
                "version": holder.current.version,
                "path": str(holder.current.detector.path or ""),
                "rules": self.table.rules.get(route, []),
                "is_default": route == self.table.default,
            }
            for route, holder in self.holders.items()
        ]
        return info
