"""A real syslog-ng (Debian's ``syslog-ng-core``, ``syslog-ng-mod-http``, ``syslog-ng-scl``) run by a test
with a configuration of its own, on loopback, as a real shipper.

    with SyslogNg(tmp_path, config) as sng:     # config: the statements after @version/@include
        ...                                     # sng.log_text() is its own log (-e: to stderr)

Every path it is given is absolute (``-f``, ``-R`` persist file, ``-p`` pid file, ``-c`` control socket):
relative ones resolve under ``/var/lib/syslog-ng`` (INTEGRATIONS.md §8.1). ``.ci/system-deps`` (run by
``make test`` and ``.ci/run``) installs the packages when absent; a test never does.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

PACKAGES = "syslog-ng-core syslog-ng-mod-http syslog-ng-scl"
HEADER = '@version: 3.38\n@include "scl.conf"\n'


def syslog_ng_binary() -> str:
    found = shutil.which("syslog-ng") or ("/usr/sbin/syslog-ng" if Path("/usr/sbin/syslog-ng").exists() else None)
    if not found:
        raise RuntimeError(f"syslog-ng is not installed: apt-get install {PACKAGES} (.ci/system-deps does it)")
    return found


class SyslogNg:
    """One syslog-ng process in the foreground, with its persist file, pid file and control socket in
    ``workdir``; stopped with SIGTERM (and waited for) by ``stop``."""

    def __init__(self, workdir: Path, config: str, *, name: str = "syslog-ng") -> None:
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / f"{name}.conf"
        self.config_path.write_text(HEADER + config)
        self.persist = self.workdir / f"{name}.persist"
        self.pidfile = self.workdir / f"{name}.pid"
        self.control = self.workdir / f"{name}.ctl"
        self.logfile = self.workdir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [
            syslog_ng_binary(),
            "-F",
            "-e",
            "--no-caps",
            "-f",
            str(self.config_path),
            "-R",
            str(self.persist),
            "-p",
            str(self.pidfile),
            "-c",
            str(self.control),
        ]

    def check_syntax(self) -> None:
        """``--syntax-only``: a configuration error is raised with syslog-ng's own message."""
        result = subprocess.run([*self.command(), "--syntax-only"], capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"syslog-ng refuses {self.config_path}: {result.stderr.strip()}")

    def start(self, timeout: float = 20.0) -> SyslogNg:
        self.check_syntax()
        with open(self.logfile, "ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"syslog-ng exited with {self.process.returncode}: {self.log_text()[-2000:]}")
            if self.control.exists() and self.pidfile.exists():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"syslog-ng did not start within {timeout} s: {self.log_text()[-2000:]}")

    def log_text(self) -> str:
        return self.logfile.read_text("utf-8", "replace") if self.logfile.exists() else ""

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then wait (SIGKILL after ``timeout``); the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        code = self.process.returncode
        self.process = None
        return code

    def __enter__(self) -> SyslogNg:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
