"""A generated, licence-clean HDFS-style corpus: normal block workflows plus injected anomalies.

Used by the tests, the scoring benchmark and ``make serve`` (the bundled default model is trained
on it). Lines follow the ``hdfs`` preset (``<Date> <Time> <Pid> <Level> <Component>: <Content>``)
and each session is one block id. Anomalies come in three kinds: a new template, steps out of
order, and a missing step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

ANOMALY_KINDS = ("new_template", "out_of_order", "missing_step")


@dataclass
class Corpus:
    lines: list[str]
    labels: dict[str, int]  # block id → 1 anomalous / 0 normal
    kinds: dict[str, str] = field(default_factory=dict)  # anomalous block id → kind


def _ip(rng: random.Random) -> str:
    return f"10.{rng.randint(0, 250)}.{rng.randint(0, 250)}.{rng.randint(1, 250)}"


def _workflow(rng: random.Random, blk: str) -> list[tuple[str, str, str]]:
    """One normal block life cycle as (level, component, content) steps."""
    size = rng.choice([67108864, 3538944, 1048576, rng.randint(1000, 90000000)])
    replicas = rng.choice([2, 3, 3, 3])
    path = f"/user/root/job_{rng.randint(1, 9999):04d}/part-{rng.randint(0, 99):05d}"
    steps = [("INFO", "dfs.FSNamesystem", f"BLOCK* NameSystem.allocateBlock: {path} {blk}")]
    receive = [
        ("INFO", "dfs.DataNode$DataXceiver", f"Receiving block {blk} src: /{_ip(rng)}:50010 dest: /{_ip(rng)}:50010")
        for _ in range(replicas)
    ]
    steps += receive
    for i in range(replicas):
        steps.append(("INFO", "dfs.DataNode$PacketResponder", f"PacketResponder {i} for block {blk} terminating"))
        steps.append(("INFO", "dfs.DataNode$PacketResponder", f"Received block {blk} of size {size} from /{_ip(rng)}"))
    for _ in range(replicas):
        steps.append(
            (
                "INFO",
                "dfs.FSNamesystem",
                f"BLOCK* NameSystem.addStoredBlock: blockMap updated: {_ip(rng)}:50010 is added to {blk} size {size}",
            )
        )
    if rng.random() < 0.3:
        steps.append(("INFO", "dfs.DataBlockScanner", f"Verification succeeded for {blk}"))
    if rng.random() < 0.4:
        steps.append(("INFO", "dfs.DataNode", f"{_ip(rng)}:50010 Served block {blk} to /{_ip(rng)}"))
    steps.append(
        ("INFO", "dfs.FSNamesystem", f"BLOCK* NameSystem.delete: {blk} is added to invalidSet of {_ip(rng)}:50010")
    )
    for _ in range(replicas):
        steps.append(
            (
                "INFO",
                "dfs.FSDataset",
                f"Deleting block {blk} file /mnt/hadoop/dfs/data/current/subdir{rng.randint(0, 63)}/{blk}",
            )
        )
    return steps


def _inject(rng: random.Random, blk: str, steps: list, kind: str) -> list:
    steps = list(steps)
    if kind == "new_template":
        at = rng.randint(2, len(steps) - 2)
        steps.insert(
            at,
            (
                "WARN",
                "dfs.DataNode$DataXceiver",
                f"writeBlock {blk} received exception java.io.IOException: Connection reset by peer",
            ),
        )
    elif kind == "out_of_order":
        # deletion happens before the block was ever stored
        delete = [s for s in steps if "Deleting block" in s[2] or "invalidSet" in s[2]]
        rest = [s for s in steps if s not in delete]
        steps = rest[:2] + delete + rest[2:]
    else:  # missing_step: the block is never reported to the name node
        steps = [s for s in steps if "addStoredBlock" not in s[2]]
    return steps


def generate(
    n_sessions: int = 400, anomaly_rate: float = 0.0, seed: int = 0, kinds: tuple[str, ...] = ANOMALY_KINDS
) -> Corpus:
    """Interleaved raw log lines of ``n_sessions`` blocks; ``anomaly_rate`` of them anomalous."""
    rng = random.Random(seed)
    labels: dict[str, int] = {}
    anomaly_kinds: dict[str, str] = {}
    queues: list[tuple[str, list]] = []
    for _ in range(n_sessions):
        blk = f"blk_{rng.choice(['', '-'])}{rng.randint(10**17, 10**19)}"
        steps = _workflow(rng, blk)
        if rng.random() < anomaly_rate:
            kind = kinds[len(anomaly_kinds) % len(kinds)]
            steps = _inject(rng, blk, steps, kind)
            anomaly_kinds[blk] = kind
        labels[blk] = int(blk in anomaly_kinds)
        queues.append((blk, steps))
    lines: list[str] = []
    clock = 8 * 3600
    active: list[list] = []
    pending = list(reversed(queues))
    while pending or active:
        while pending and len(active) < 8:
            active.append(list(pending.pop()[1]))
        stream = rng.choice(active)
        level, component, content = stream.pop(0)
        if not stream:
            active.remove(stream)
        clock += rng.randint(0, 2)
        hh, mm, ss = clock // 3600 % 24, clock // 60 % 60, clock % 60
        lines.append(f"081109 {hh:02d}{mm:02d}{ss:02d} {rng.randint(10, 9999)} {level} {component}: {content}")
    return Corpus(lines, labels, anomaly_kinds)
