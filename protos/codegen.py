"""Generate the Python code for ``protos/logwarden/v1/*.proto`` and check that the committed copy is fresh.

    python -m logwarden.protos.codegen           # regenerate in place (``make protos``)
    python -m logwarden.protos.codegen --check   # exit 1 when the committed code is stale (``make check-protos``)

protoc writes imports that follow the proto path (``from logwarden.v1 import scoring_pb2``), but the
code is imported as ``logwarden.protos.logwarden.v1``. Each service has its own ``.proto`` file and
imports only Google's well-known types and ``reasons.proto`` (the shared types), so every such import
is one generated module of this package importing another; ``generate`` rewrites them to relative
imports (``from . import scoring_pb2``).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent  # the proto path root: files are logwarden/v1/*.proto
PACKAGE_DIR = ROOT / "logwarden" / "v1"
GENERATED = ("_pb2.py", "_pb2_grpc.py")
_PROTO_IMPORT = re.compile(r"^from logwarden\.v1 import (\w+_pb2)", re.MULTILINE)


def proto_files() -> list[Path]:
    return sorted(PACKAGE_DIR.glob("*.proto"))


def generate(out_root: Path) -> list[Path]:
    """Run protoc (grpc_tools) for every proto file into ``out_root/logwarden/v1``; return the files."""
    from grpc_tools import protoc

    include = str(resources.files("grpc_tools") / "_proto")
    protos = [str(p.relative_to(ROOT)) for p in proto_files()]
    args = ["protoc", f"-I{ROOT}", f"-I{include}", f"--python_out={out_root}", f"--grpc_python_out={out_root}", *protos]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: " + " ".join(args))
    files = sorted(p for p in (out_root / "logwarden" / "v1").iterdir() if p.name.endswith(GENERATED))
    for path in files:
        path.write_text(_PROTO_IMPORT.sub(r"from . import \1", path.read_text("utf-8")), "utf-8")
    return files


def stale_files() -> list[str]:
    """Names of generated files that are missing, extra or different from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.name: p.read_bytes() for p in generate(Path(tmp))}
    committed = {p.name: p.read_bytes() for p in PACKAGE_DIR.iterdir() if p.name.endswith(GENERATED)}
    return sorted(n for n in fresh.keys() | committed.keys() if fresh.get(n) != committed.get(n))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when the generated code is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        if stale:
            print("generated protobuf code is stale: " + ", ".join(stale) + " (run `make protos`)", file=sys.stderr)
            return 1
        print("generated protobuf code is up to date")
        return 0
    for path in generate(ROOT):
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
