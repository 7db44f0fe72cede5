"""A generated, licence-clean syslog-like corpus: many nodes, no session ids, drifting benign templates, faults.

The windowed counterpart of ``core.synthetic`` (HDFS-style block sessions): lines follow the ``bgl`` or the
``thunderbird`` preset (first token ``-`` for a normal line, an alert category for a fault line), so time
and count windows, per-node windows and labels work as on the real data. What makes it hard is what makes
the real systems hard:

* **episodes with an order**: jobs, cron and login sessions, boots, register dumps are runs of templates
  in a fixed order on one node, interleaved with every other node's lines;
* **drift**: benign templates that first appear part-way through (a corrected-error variant, a daemon's
  new message, "temperature back to normal"), so a chronological split meets templates that training never
  saw although nothing is wrong;
* **faults** of four kinds: ``new_fatal`` (a fatal message never seen before, in a short burst),
  ``new_error`` (an error message, no level field needed to see it), ``sequence`` (known templates in an
  order no normal episode has: a job's partition freed while it runs, a node booting without a shutdown),
  ``burst`` (a known warning repeated far more often than ever).

Every line of a fault episode carries the fault's category as its label; ``Corpus.kinds`` maps each
category to its kind. The same seed writes the same corpus.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

FLAVOURS = ("bgl", "thunderbird")
FAULT_KINDS = ("new_fatal", "new_error", "sequence", "burst")
START = 1117838570  # 2005-06-03, like the BGL log

Text = Callable[[random.Random], str]


def _hex(rng: random.Random, n: int = 8) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _ip(rng: random.Random) -> str:
    return f"10.{rng.randint(0, 50)}.{rng.randint(0, 250)}.{rng.randint(1, 250)}"


def _path(rng: random.Random) -> str:
    user, program = rng.choice(["alice", "bob", "carol", "dave"]), rng.choice(["a.out", "sim", "md"])
    return f"/home/{user}/run{rng.randint(1, 99)}/{program}"


@dataclass(frozen=True)
class Step:
    """One line of an episode: component, level (bgl flavour only), content, seconds after the previous line."""

    component: str
    level: str
    text: Text
    gap: tuple[float, float] = (0.0, 2.0)


@dataclass(frozen=True)
class Activity:
    """Episodes a node logs at ``rate`` per node-hour from ``since`` (a fraction of the time range) on."""

    name: str
    rate: float
    steps: Callable[[random.Random], list[Step]]
    since: float = 0.0


def _s(component: str, level: str, text: str | Text, gap=(0.0, 2.0)) -> Step:
    return Step(component, level, text if callable(text) else (lambda _r, t=text: t), gap)


# -- BGL-like ---------------------------------------------------------------------------------------------


def _bgl_job(rng: random.Random) -> list[Step]:
    job, part = rng.randint(1000, 99999), rng.choice(["R00-M0", "R01-M1", "R02-M0", "R03-M1"])
    steps = [
        _s("MMCS", "INFO", f"job {job} started on partition {part}"),
        _s("APP", "INFO", lambda r: f"ciod: LOGIN chdir({_path(r)}) succeeded", (0.5, 3)),
    ]
    steps += [
        _s("APP", "INFO", lambda r: f"ciod: Message code {r.randint(0, 9)} is not 51 or 4222", (1, 8))
        for _ in range(rng.randint(0, 3))
    ]
    steps += [
        _s("MMCS", "INFO", f"job {job} exited normally with status 0", (5, 40)),
        _s("MMCS", "INFO", f"partition {part} freed", (0.5, 3)),
    ]
    return steps


def _bgl_dump(rng: random.Random) -> list[Step]:
    """A register dump: benign FATAL lines in a fixed order (BGL logs these after a user program's fault)."""
    names = ["instruction address", "machine state register", "core configuration register"]
    names += ["exception syndrome register", "data address"]
    return [_s("KERNEL", "FATAL", lambda r, n=n: f"{n}: 0x{_hex(r)}", (0, 0.2)) for n in names]


def _bgl_boot(rng: random.Random) -> list[Step]:
    return [
        _s("MMCS", "INFO", "shutdown requested by service action"),
        _s("KERNEL", "INFO", "shutdown complete", (2, 10)),
        _s("KERNEL", "INFO", "rts: kernel booting", (20, 60)),
        _s("KERNEL", "INFO", lambda r: f"rts: {r.randint(256, 512)} MB memory available", (0.5, 2)),
        _s("KERNEL", "INFO", "rts: node ready", (0.5, 3)),
    ]


BGL: tuple[Activity, ...] = (
    Activity("parity", 6.0, lambda r: [_s("KERNEL", "INFO", "instruction cache parity error corrected")]),
    Activity(
        "alignment",
        3.0,
        lambda r: [_s("KERNEL", "INFO", lambda x: f"{x.randint(1, 99999)} double-hummer alignment exceptions")],
    ),
    Activity(
        "ce",
        2.0,
        lambda r: [_s("KERNEL", "INFO", lambda x: f"CE sym {x.randint(0, 31)}, at 0x{_hex(x)}, mask 0x{_hex(x, 2)}")],
    ),
    Activity("core", 1.0, lambda r: [_s("KERNEL", "INFO", lambda x: f"generating core.{x.randint(1, 9999)}")]),
    Activity(
        "temperature",
        0.6,
        lambda r: [_s("MONITOR", "WARNING", lambda x: f"temperature above threshold on node card {x.randint(0, 15)}")],
    ),
    Activity("card", 0.3, lambda r: [_s("DISCOVERY", "WARNING", "Node card is not fully functional")]),
    Activity("job", 2.0, _bgl_job),
    Activity("dump", 0.4, _bgl_dump),
    Activity("boot", 0.08, _bgl_boot),
    # drift: benign templates that appear later
    Activity("dparity", 4.0, lambda r: [_s("KERNEL", "INFO", "data cache parity error corrected")], since=0.45),
    Activity(
        "interrupts",
        1.0,
        lambda r: [
            _s(
                "KERNEL",
                "INFO",
                lambda x: f"{x.randint(1, 999)} total interrupts. {x.randint(0, 99)} critical input interrupts.",
            )
        ],
        since=0.55,
    ),
    Activity(
        "tempok",
        0.6,
        lambda r: [_s("MONITOR", "INFO", lambda x: f"temperature back to normal on node card {x.randint(0, 15)}")],
        since=0.7,
    ),
    Activity(
        "signal",
        0.8,
        lambda r: [
            _s(
                "APP",
                "INFO",
                lambda x: f"ciod: Received signal {x.randint(1, 15)}, code={x.randint(0, 3)}, errno={x.randint(0, 9)}",
            )
        ],
        since=0.8,
    ),
    Activity(
        "ddr",
        0.8,
        lambda r: [
            _s(
                "KERNEL",
                "INFO",
                lambda x: f"{x.randint(1, 9)} ddr error(s) detected and corrected on rank {x.randint(0, 3)}",
            )
        ],
        since=0.85,
    ),
)


def _bgl_fault(kind: str, rng: random.Random) -> tuple[str, list[Step]]:
    if kind == "new_fatal":
        category, text = rng.choice(
            [
                ("KERNDTLB", "data TLB error interrupt"),
                ("KERNSTOR", "data storage interrupt"),
                ("KERNRTSP", "rts panic! - stopping execution"),
                ("KERNMNTF", "Lustre mount FAILED : bglio12 : point /p/gb1"),
            ]
        )
        return category, [_s("KERNEL", "FATAL", text, (0, 1)) for _ in range(rng.randint(1, 4))]
    if kind == "new_error":
        return "APPSEV", [
            _s(
                "APP",
                "FATAL",
                lambda r: (
                    "ciod: Error reading message prefix on CioStream socket to "
                    f"{_ip(r)}:{r.randint(1024, 65000)}, Link has been severed"
                ),
            )
        ]
    if kind == "sequence":  # the partition is freed while its job still runs; the job then ends
        job, part = rng.randint(1000, 99999), rng.choice(["R00-M0", "R01-M1"])
        return "KERNSEQ", [
            _s("MMCS", "INFO", f"job {job} started on partition {part}"),
            _s("MMCS", "INFO", f"partition {part} freed", (0.5, 2)),
            _s("KERNEL", "INFO", "rts: kernel booting", (0.5, 2)),
            _s("MMCS", "INFO", f"job {job} exited normally with status 0", (0.5, 2)),
        ]
    return "MONBURST", [
        _s("MONITOR", "WARNING", lambda r: f"temperature above threshold on node card {r.randint(0, 15)}", (0, 0.5))
        for _ in range(rng.randint(15, 25))
    ]


# -- Thunderbird-like -------------------------------------------------------------------------------------


def _tb_cron(rng: random.Random) -> list[Step]:
    pid = rng.randint(1000, 30000)
    return [
        _s("crond(pam_unix)", "", f"[{pid}]: session opened for user root by (uid=0)"),
        _s("crond", "", f"[{pid + 1}]: (root) CMD (run-parts /etc/cron.hourly)", (0, 1)),
        _s("crond(pam_unix)", "", f"[{pid}]: session closed for user root", (0, 3)),
    ]


def _tb_ssh(rng: random.Random) -> list[Step]:
    pid, user = rng.randint(1000, 30000), rng.choice(["alice", "bob", "carol", "root"])
    return [
        _s(
            "sshd",
            "",
            lambda r: f"[{pid}]: Accepted publickey for {user} from {_ip(r)} port {r.randint(1024, 65000)} ssh2",
        ),
        _s("sshd(pam_unix)", "", f"[{pid}]: session opened for user {user} by (uid=0)", (0, 1)),
        _s("sshd(pam_unix)", "", f"[{pid}]: session closed for user {user}", (10, 120)),
    ]


def _tb_dhcp(rng: random.Random) -> list[Step]:
    mac = ":".join(_hex(rng, 2) for _ in range(6))
    ip = _ip(rng)
    return [
        _s("dhcpd", "", f": DHCPDISCOVER from {mac} via eth1"),
        _s("dhcpd", "", f": DHCPOFFER on {ip} to {mac} via eth1", (0, 1)),
        _s("dhcpd", "", f": DHCPREQUEST for {ip} from {mac} via eth1", (0, 1)),
        _s("dhcpd", "", f": DHCPACK on {ip} to {mac} via eth1", (0, 1)),
    ]


def _tb_boot(rng: random.Random) -> list[Step]:
    return [
        _s("shutdown", "", f"[{rng.randint(1000, 30000)}]: shutting down for system reboot"),
        _s("kernel", "", ": Kernel logging (proc) stopped.", (1, 5)),
        _s("kernel", "", ": Linux version 2.6.5-7.244-smp (geeko@buildhost)", (30, 90)),
        _s("kernel", "", lambda r: f": Memory: {r.randint(2000000, 4000000)}k available", (0, 1)),
        _s("sshd", "", f"[{rng.randint(1000, 30000)}]: Server listening on 0.0.0.0 port 22.", (2, 10)),
    ]


TB: tuple[Activity, ...] = (
    Activity("cron", 4.0, _tb_cron),
    Activity("ssh", 1.5, _tb_ssh),
    Activity("dhcp", 1.0, _tb_dhcp),
    Activity(
        "ntp",
        2.0,
        lambda r: [
            _s("ntpd", "", lambda x: f"[{x.randint(1000, 9000)}]: synchronized to {_ip(x)}, stratum {x.randint(1, 3)}")
        ],
    ),
    Activity(
        "nic", 0.5, lambda r: [_s("kernel", "", ": e1000: eth0: e1000_watchdog: NIC Link is Up 1000 Mbps Full Duplex")]
    ),
    Activity(
        "gmetad",
        0.8,
        lambda r: [
            _s("gmetad", "", lambda x: f"[{x.randint(1000, 9000)}]: data_thread() got no answer from any datasource")
        ],
    ),
    Activity("boot", 0.05, _tb_boot),
    # drift: benign templates that appear later
    Activity(
        "ntpsync",
        1.0,
        lambda r: [
            _s("ntpd", "", lambda x: f"[{x.randint(1000, 9000)}]: kernel time sync status change {x.randint(1, 9999)}")
        ],
        since=0.5,
    ),
    Activity(
        "sa1",
        2.0,
        lambda r: [_s("crond", "", lambda x: f"[{x.randint(1000, 30000)}]: (root) CMD (/usr/lib/sa/sa1 1 1)")],
        since=0.6,
    ),
    Activity(
        "password",
        0.8,
        lambda r: [
            _s(
                "sshd",
                "",
                lambda x: (
                    f"[{x.randint(1000, 30000)}]: Accepted password for alice from {_ip(x)} "
                    f"port {x.randint(1024, 65000)} ssh2"
                ),
            )
        ],
        since=0.7,
    ),
    Activity(
        "smart",
        0.5,
        lambda r: [
            _s(
                "smartd",
                "",
                lambda x: (
                    f"[{x.randint(1000, 9000)}]: Device: /dev/sda, SMART Usage Attribute: 194 Temperature_Celsius "
                    f"changed from {x.randint(30, 40)} to {x.randint(30, 40)}"
                ),
            )
        ],
        since=0.8,
    ),
)


def _tb_fault(kind: str, rng: random.Random) -> tuple[str, list[Step]]:
    if kind == "new_fatal":
        category, text = rng.choice(
            [
                (
                    "VAPI",
                    ": [KERNEL_IB][ib_mad_dispatch] EVAPI_process_local_mad failed, "
                    "Fatal error (Local Catastrophic Error)",
                ),
                ("EXT3", ": EXT3-fs error (device sda5): ext3_journal_start_sb: Detected aborted journal"),
                ("PANIC", ": Kernel panic - not syncing: Fatal exception"),
            ]
        )
        return category, [_s("kernel", "", text, (0, 1)) for _ in range(rng.randint(1, 4))]
    if kind == "new_error":
        return "NFS", [
            _s("kernel", "", lambda r: f": nfs: server fs{r.randint(1, 9)} not responding, timed out", (0, 2))
        ]
    if kind == "sequence":  # a node boots without shutting down first: an unplanned reboot
        return "REBOOT", [
            _s("kernel", "", ": Linux version 2.6.5-7.244-smp (geeko@buildhost)"),
            _s("kernel", "", lambda r: f": Memory: {r.randint(2000000, 4000000)}k available", (0, 1)),
            _s("sshd", "", f"[{rng.randint(1000, 30000)}]: Server listening on 0.0.0.0 port 22.", (2, 10)),
        ]
    return "GMBURST", [
        _s(
            "gmetad",
            "",
            lambda r: f"[{r.randint(1000, 9000)}]: data_thread() got no answer from any datasource",
            (0, 0.5),
        )
        for _ in range(rng.randint(15, 25))
    ]


# -- the corpus -------------------------------------------------------------------------------------------


@dataclass
class Corpus:
    lines: list[str]  # raw lines in time order, in the flavour's preset format
    kinds: dict[str, str] = field(default_factory=dict)  # fault category → fault kind
    flavour: str = "bgl"

    @property
    def n_fault_lines(self) -> int:
        return sum(not line.startswith("- ") for line in self.lines)


def _node(flavour: str, i: int) -> str:
    if flavour == "bgl":
        return f"R{i // 16:02d}-M{i // 8 % 2}-N{i % 8}-C:J{i % 16 + 2:02d}-U11"
    return f"{'dn' if i % 3 else 'an'}{100 + i}"


def _line(flavour: str, label: str, when: float, node: str, step: Step, content: str) -> str:
    t = time.gmtime(int(when))
    if flavour == "bgl":
        stamp = time.strftime("%Y-%m-%d-%H.%M.%S", t) + f".{int((when % 1) * 1e6):06d}"
        return (
            f"{label} {int(when)} {time.strftime('%Y.%m.%d', t)} {node} {stamp} {node} RAS {step.component} "
            f"{step.level} {content}"
        )
    clock = time.strftime("%b", t) + f" {t.tm_mday} " + time.strftime("%H:%M:%S", t)
    separator = "" if content.startswith(("[", ":")) else " "
    date = time.strftime("%Y.%m.%d", t)
    return f"{label} {int(when)} {date} {node} {clock} {node}/{node} {step.component}{separator}{content}"


def generate(
    flavour: str = "bgl",
    *,
    hours: float = 24.0,
    nodes: int = 16,
    faults_per_hour: float = 1.0,
    kinds: tuple[str, ...] = FAULT_KINDS,
    drift: bool = True,
    chatter: bool = True,
    seed: int = 0,
) -> Corpus:
    """``hours`` of logs from ``nodes`` nodes, with about ``faults_per_hour`` fault episodes of ``kinds``.

    ``drift=False`` leaves out the benign templates that appear part-way through; ``chatter=False`` the
    one-line messages logged at random (only episodes with an order remain: a corpus where the sequence is
    what tells a fault from normal operation)."""
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown flavour {flavour!r}: use {' or '.join(FLAVOURS)}")
    unknown = set(kinds) - set(FAULT_KINDS)
    if unknown:
        raise ValueError(f"unknown fault kind(s) {sorted(unknown)}: use {', '.join(FAULT_KINDS)}")
    rng = random.Random(seed)
    activities = BGL if flavour == "bgl" else TB
    fault_of = _bgl_fault if flavour == "bgl" else _tb_fault
    span = hours * 3600.0
    rows: list[tuple[float, int, str, str, Step, str]] = []  # time, order, label, node, step, content
    order = 0

    def emit(start: float, node: str, label: str, steps: list[Step]) -> None:
        nonlocal order
        when = start
        for step in steps:
            when += rng.uniform(*step.gap)
            if when >= span:
                return
            rows.append((when, order, label, node, step, step.text(rng)))
            order += 1

    for i in range(nodes):
        node = _node(flavour, i)
        for activity in activities:
            if (activity.since and not drift) or (not chatter and len(activity.steps(random.Random(0))) == 1):
                continue
            begin = activity.since * span
            when = begin + rng.expovariate(activity.rate / 3600.0)
            while when < span:
                emit(when, node, "-", activity.steps(rng))
                when += rng.expovariate(activity.rate / 3600.0)
    fault_kinds: dict[str, str] = {}
    if kinds and faults_per_hour > 0:
        when = rng.expovariate(faults_per_hour / 3600.0)
        while when < span:
            kind = rng.choice(kinds)
            category, steps = fault_of(kind, rng)
            fault_kinds[category] = kind
            emit(when, _node(flavour, rng.randrange(nodes)), category, steps)
            when += rng.expovariate(faults_per_hour / 3600.0)
    rows.sort(key=lambda row: (row[0], row[1]))
    lines = [_line(flavour, label, START + when, node, step, content) for when, _, label, node, step, content in rows]
    return Corpus(lines, fault_kinds, flavour)
