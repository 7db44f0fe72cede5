"""Build the installable Splunk app: ``dist/ta_logwarden/`` and ``dist/ta_logwarden-<version>.tgz``.

    python plugins/splunk/build.py [--out dist] [--splunklib pip|installed] [--slim PATH] [--no-archive]

Steps: copy ``plugins/splunk/ta_logwarden``; write the LogWarden package's version into ``app.conf``;
vendor splunklib into ``lib/`` (``pip install --target lib --no-deps splunk-sdk==<pin in requirements.lock>``,
or ``--splunklib installed``: copy the pinned version already installed in this interpreter, which is what
the tests do, offline); vendor the standard-library HTTP client from ``integrations/client`` as
``lib/logwarden_client`` (its one package import rewritten); draw the app icons; generate ``app.manifest``
with ``slim`` when given; drop bytecode and executable bits; pack the archive.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
APP = "ta_logwarden"
SOURCE = HERE / APP
CLIENT = ROOT / "integrations" / "client"
CLIENT_FILES = ("common.py", "http_client.py")
CLIENT_PACKAGE = "logwarden_client"
CLIENT_INIT = '''"""The LogWarden HTTP client (standard library only), vendored from the LogWarden repository's
integrations/client at build time. See logwarden.integrations.client for the fail-open contract."""

from logwarden_client.common import (  # noqa: F401
    INVALID,
    SCORED,
    UNSCORED,
    Event,
    Expected,
    RetryPolicy,
    ScoredEvent,
    ScoreOptions,
    ScorerUnavailable,
    SessionVerdict,
)
from logwarden_client.http_client import HttpClient  # noqa: F401
'''
ICON_SIZES = {"appIcon.png": 36, "appIcon_2x.png": 72, "appIconAlt.png": 36, "appIconAlt_2x.png": 72}


def sdk_version() -> str:
    """The splunk-sdk version pinned in requirements.lock (the one tested)."""
    found = re.search(r"^splunk-sdk==(\S+)", (ROOT / "requirements.lock").read_text(), re.M)
    if not found:
        raise SystemExit("requirements.lock pins no splunk-sdk version")
    return found.group(1)


def app_version() -> str:
    """The LogWarden package's version, from its installed metadata (else pyproject.toml)."""
    try:
        return importlib.metadata.version("logwarden")
    except importlib.metadata.PackageNotFoundError:
        import tomllib

        return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def set_version(app_conf: Path, version: str) -> None:
    text, n = re.subn(r"(?m)^version\s*=.*$", f"version = {version}", app_conf.read_text())
    if n != 2:
        raise SystemExit(f"{app_conf}: expected a version line in [id] and in [launcher], found {n}")
    app_conf.write_text(text)


def vendor_splunklib(lib: Path, how: str, version: str) -> None:
    if how == "pip":
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(lib), "--no-deps",
             f"splunk-sdk=={version}"],
            check=True,
        )  # fmt: skip
        return
    dist = importlib.metadata.distribution("splunk-sdk")
    if dist.version != version:
        raise SystemExit(f"installed splunk-sdk is {dist.version}, requirements.lock pins {version}")
    package = Path(str(dist.locate_file("splunklib")))
    shutil.copytree(package, lib / "splunklib", ignore=shutil.ignore_patterns("__pycache__"))
    info = Path(str(dist._path))  # type: ignore[attr-defined] - the .dist-info folder
    shutil.copytree(info, lib / info.name)


def vendor_client(lib: Path) -> None:
    target = lib / CLIENT_PACKAGE
    target.mkdir()
    for name in CLIENT_FILES:
        text = (CLIENT / name).read_text()
        text = text.replace("from logwarden.integrations.client.", f"from {CLIENT_PACKAGE}.")
        if re.search(r"^\s*(from|import) logwarden\b", text, re.M):
            raise SystemExit(f"{CLIENT / name} imports more of the logwarden package than the client")
        (target / name).write_text(text)
    (target / "__init__.py").write_text(CLIENT_INIT)


def draw_icons(static: Path) -> None:
    """The app icon: a teal square with a white spike over a baseline (an anomaly in a log stream)."""
    from PIL import Image, ImageDraw

    static.mkdir(exist_ok=True)
    for name, size in ICON_SIZES.items():
        alt = "Alt" in name
        image = Image.new("RGBA", (size, size), (0, 0, 0, 0) if alt else (31, 111, 139, 255))
        draw = ImageDraw.Draw(image)
        ink = (31, 111, 139, 255) if alt else (255, 255, 255, 255)
        s = size / 36
        points = [(4, 24), (12, 24), (15, 20), (18, 6), (21, 30), (24, 24), (32, 24)]
        draw.line([(x * s, y * s) for x, y in points], fill=ink, width=max(2, round(2.5 * s)), joint="curve")
        buffer = io.BytesIO()
        image.save(buffer, "PNG", optimize=True)
        (static / name).write_bytes(buffer.getvalue())


def clean(app: Path) -> None:
    """No bytecode, no executable files (AppInspect's check_for_bin_files), directories 755, files 644."""
    for path in sorted(app.rglob("*"), reverse=True):
        if path.is_dir() and path.name == "__pycache__":
            shutil.rmtree(path)
        elif path.suffix in (".pyc", ".pyo") or (path.name == "INSTALLER" and path.parent.suffix == ".dist-info"):
            path.unlink()
    for path in app.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    app.chmod(0o755)


def archive(app: Path, out: Path, version: str) -> Path:
    target = out / f"{APP}-{version}.tgz"

    def owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with tarfile.open(target, "w:gz") as tar:
        tar.add(app, arcname=APP, filter=owner)
    return target


def build(out: Path, splunklib: str = "pip", slim: str | None = None, pack: bool = True) -> Path:
    """Build the app under ``out``; returns the app folder (and writes the archive beside it when ``pack``)."""
    out.mkdir(parents=True, exist_ok=True)
    app = out / APP
    if app.exists():
        shutil.rmtree(app)
    shutil.copytree(SOURCE, app, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "local", "*.manifest"))
    version = app_version()
    set_version(app / "default" / "app.conf", version)
    lib = app / "lib"
    lib.mkdir()
    vendor_splunklib(lib, splunklib, sdk_version())
    vendor_client(lib)
    draw_icons(app / "static")
    if slim:
        manifest = subprocess.run([slim, "generate-manifest", str(app)], check=True, capture_output=True, text=True)
        (app / "app.manifest").write_text(manifest.stdout)
    clean(app)
    if pack:
        print(archive(app, out, version))
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    parser.add_argument("--splunklib", choices=("pip", "installed"), default="pip", help="where splunklib comes from")
    parser.add_argument("--slim", help="path of the slim program (splunk-packaging-toolkit) to write app.manifest")
    parser.add_argument("--no-archive", action="store_true", help="build the folder only")
    args = parser.parse_args(argv)
    build(args.out, args.splunklib, args.slim, not args.no_archive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
