"""The model artifact: an immutable, versioned directory (config, weights, parser state, ONNX).

    <root>/<version>/config.json        settings, vocabulary, calibration, fingerprint, metrics
    <root>/<version>/model.safetensors  GPT-2 weights (never a pickle)
    <root>/<version>/parser.json        the template miner's state: template ids stay identical
    <root>/<version>/model.onnx         the same network for onnxruntime

A version directory is written under a temporary name and renamed into place, so readers never
see half a model; an existing version is never overwritten.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logwarden.core.artifact.config import ArtifactConfig, parse_config
from logwarden.core.errors import LogWardenError

CONFIG, WEIGHTS, PARSER, ONNX = "config.json", "model.safetensors", "parser.json", "model.onnx"
REQUIRED = (CONFIG, WEIGHTS, PARSER)


@dataclass
class ArtifactFiles:
    """Where a loaded version lives and what its config says."""

    path: Path
    config: ArtifactConfig

    @property
    def version(self) -> str:
        return self.config.version


def new_version(fingerprint: str) -> str:
    return time.strftime("v%Y%m%d-%H%M%S", time.gmtime()) + "-" + fingerprint[:8]


def write_version(root: Path, version: str, write_files) -> Path:
    """Create ``root/version`` atomically; ``write_files(tmpdir)`` fills it."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / version
    if final.exists():
        raise LogWardenError(f"model version {final} already exists; versions are immutable")
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=root))
    try:
        write_files(tmp)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def resolve(path: Path, version: str | None = None) -> Path:
    """A version directory: ``path`` itself, ``path/version``, or the newest version under ``path``."""
    path = Path(path)
    if not path.exists():
        raise LogWardenError(f"model directory not found: {path}")
    if (path / CONFIG).exists() and version is None:
        return path
    if version is not None:
        candidate = path / version
        if not (candidate / CONFIG).exists():
            raise LogWardenError(f"model version {version!r} not found under {path}")
        return candidate
    versions = sorted(p for p in path.iterdir() if p.is_dir() and (p / CONFIG).exists() and not p.name.startswith("."))
    if not versions:
        raise LogWardenError(f"{path} holds no model (no {CONFIG}); train one with `logwarden train`")
    return versions[-1]


def list_versions(root: Path) -> list[str]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CONFIG).exists() and not p.name.startswith("."))


def read_config(version_dir: Path) -> ArtifactFiles:
    """Check the files are there and the config parses (older formats upgraded); errors name the file."""
    for name in REQUIRED:
        if not (version_dir / name).is_file():
            raise LogWardenError(f"corrupt model {version_dir}: {name} is missing")
    try:
        data = json.loads((version_dir / CONFIG).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LogWardenError(f"corrupt model {version_dir}: {CONFIG} is not valid JSON ({exc})") from exc
    return ArtifactFiles(version_dir, parse_config(data, str(version_dir)))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LogWardenError(f"corrupt model file {path}: {exc}") from exc
