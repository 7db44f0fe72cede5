"""Helpers shared by the server, gateway and client tests (imported as ``support``)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from logwarden.core.detect.detector import Detector
from logwarden.core.labels.store import Submitted
from logwarden.core.parsing.formats import get_format
from logwarden.core.synthetic import generate
from logwarden.grpc_server.service.schema import LabelPage, RetractOut, StoredLabelOut

BLOCK = re.compile(r"blk_-?\d+")


def sessions_by_block(n_sessions: int, seed: int, anomaly_rate: float = 0.3) -> dict[str, list[str]]:
    """Generated raw HDFS-style lines grouped by block id, each block's lines in log order."""
    out: dict[str, list[str]] = {}
    for line in generate(n_sessions=n_sessions, anomaly_rate=anomaly_rate, seed=seed).lines:
        out.setdefault(BLOCK.search(line).group(0), []).append(line)
    return out


def engine_verdicts(model_root: Path, sessions: dict[str, list[str]]) -> dict:
    """The engine's own verdicts for each whole session: {block: SessionVerdict} (templates the model does
    not know judged from their lines, as the server does)."""
    detector = Detector.load(model_root)
    fmt = get_format(detector.line_format)
    records = [[fmt.parse(line) for line in lines] for lines in sessions.values()]
    keys = [[detector.parse(r).key for r in session] for session in records]
    lines = [[detector.line(r) for r in session] for session in records]
    return dict(zip(sessions, detector.score_keys(keys, lines=lines), strict=True))


class MemoryLabels:
    """A label sink that keeps labels in a list (for servers whose tests do not need SQLite): no external
    id semantics; it lists what it holds in one page and retracts nothing."""

    def __init__(self) -> None:
        self.stored = []

    async def submit(self, labels):
        self.stored.extend(labels)
        return [Submitted(len(self.stored) - len(labels) + i + 1) for i in range(len(labels))]

    async def list(self, query, limit):
        return LabelPage([StoredLabelOut(str(i + 1), x) for i, x in enumerate(self.stored[:limit])])

    async def retract(self, label_ids, external_ids, analyst):
        return [RetractOut(str(x), False, "not kept by this sink") for x in (*label_ids, *external_ids)]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path) -> Path:
    """A CA (ca.pem), a server certificate for 127.0.0.1/localhost and a client certificate, signed by it."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test-ca", cwd=d)
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            cwd=d,
        )
    return d
