"""Facts only ``dindkit doctor`` reads: how a host's Docker is set up, read without changing it."""

from __future__ import annotations

import json
import shlex
from typing import Any, TypedDict

from pyinfra.api import FactBase

from dindkit.settings import ascii_number
from dindkit.templating import render


def _first_line(output: list[str]) -> str | None:
    return next((line.strip() for line in output if line.strip()), None)


class CgroupVersion(FactBase[int | None]):
    """1 or 2, from the filesystem type mounted at /sys/fs/cgroup."""

    def command(self) -> str:
        return "stat -fc %T /sys/fs/cgroup/ 2>/dev/null || true"

    @staticmethod
    def default() -> int | None:
        return None

    def process(self, output: list[str]) -> int | None:
        kind = _first_line(output)
        if kind == "cgroup2fs":
            return 2
        return 1 if kind == "tmpfs" else None


class IptablesBackend(FactBase[str | None]):
    """``nf_tables`` or ``legacy`` (from ``iptables --version``), None without iptables."""

    def command(self) -> str:
        return "iptables --version 2>/dev/null || true"

    @staticmethod
    def default() -> str | None:
        return None

    def process(self, output: list[str]) -> str | None:
        line = _first_line(output) or ""
        if "nf_tables" in line:
            return "nf_tables"
        if "legacy" in line:
            return "legacy"
        return line or None


class DockerPackages(FactBase[list[str]]):
    """Which Docker Engine packages dpkg has installed (docker-ce, docker.io, moby-engine)."""

    def command(self) -> str:
        return (
            "dpkg-query -W -f='${Package} ${Status}\\n' docker-ce docker.io moby-engine "
            "2>/dev/null || true"
        )

    @staticmethod
    def default() -> list[str]:
        return []

    def process(self, output: list[str]) -> list[str]:
        return [
            line.split()[0]
            for line in output
            if line.strip()
            and line.strip().endswith(" installed")
            and not line.strip().endswith("not-installed")
        ]


class DockerStorageDriver(FactBase[str | None]):
    """The running daemon's storage driver (overlay2, vfs, ...), None without a daemon."""

    def command(self) -> str:
        return "docker info --format '{{.Driver}}' 2>/dev/null || true"

    @staticmethod
    def default() -> str | None:
        return None

    def process(self, output: list[str]) -> str | None:
        return _first_line(output)


class DockerSocket(FactBase[dict[str, str] | None]):
    """Owner, group and octal mode of /run/docker.sock, None when it does not exist."""

    def command(self) -> str:
        return "stat -Lc '%U %G %a' /run/docker.sock 2>/dev/null || true"

    @staticmethod
    def default() -> dict[str, str] | None:
        return None

    def process(self, output: list[str]) -> dict[str, str] | None:
        parts = (_first_line(output) or "").split()
        if len(parts) != 3:
            return None
        return {"owner": parts[0], "group": parts[1], "mode": parts[2].zfill(4)}


class DockerFileMode(TypedDict):
    path: str
    owner: str
    group: str
    mode: str


class DockerFileModes(FactBase[list[DockerFileMode]]):
    """Owner, group and mode of Docker's sockets, configuration and unit files that exist (CIS
    Docker Benchmark section 3); the units where systemd loads them from."""

    default = list

    def command(self) -> str:
        return (
            "for path in /run/docker.sock /run/containerd/containerd.sock /etc/docker "
            "/etc/docker/daemon.json /etc/default/docker "
            "$(systemctl show -P FragmentPath docker.service docker.socket 2>/dev/null); do "
            '! test -e "$path" || stat -Lc \'%n %U %G %a\' "$path"; done'
        )

    def process(self, output: list[str]) -> list[DockerFileMode]:
        modes: list[DockerFileMode] = []
        for line in output:
            parts = line.split()
            if len(parts) == 4:
                path, owner, group, mode = parts
                modes.append({"path": path, "owner": owner, "group": group, "mode": mode.zfill(4)})
        return modes


class DockerDaemonInEffect(FactBase[dict[str, Any] | None]):
    """What the running dockerd applies of dindkit's daemon options, as far as Docker shows it:
    the log driver and live-restore (``docker info``), icc on the default bridge (``docker
    network inspect bridge``). None without a running daemon."""

    def command(self) -> str:
        return (
            "docker info --format '{{json .LoggingDriver}} {{json .LiveRestoreEnabled}}' "
            "2>/dev/null && docker network inspect bridge --format "
            "'{{index .Options \"com.docker.network.bridge.enable_icc\"}}' 2>/dev/null; true"
        )

    @staticmethod
    def default() -> dict[str, Any] | None:
        return None

    def process(self, output: list[str]) -> dict[str, Any] | None:
        lines = [line.strip() for line in output if line.strip()]
        if not lines or len(lines[0].split()) != 2:
            return None
        driver, live_restore = (json.loads(part) for part in lines[0].split())
        in_effect: dict[str, Any] = {"log-driver": driver, "live-restore": live_restore}
        if len(lines) > 1 and lines[1] in ("true", "false"):
            in_effect["icc"] = lines[1] == "true"
        return in_effect


class AuditCostStatus(TypedDict):
    events_last_hour: int  # audit events with dindkit's key (ausearch)
    window_minutes: int  # 60, or the minutes since boot when less
    events_per_minute: float
    lost: int | None  # records the kernel dropped since boot (auditctl -s)
    backlog: int | None  # records queued for auditd now
    backlog_limit: int | None
    backlog_wait_time: int | None  # ticks a writer may wait while the backlog is full
    backlog_wait_time_actual: int | None  # ticks writers waited since boot


AUDIT_COUNTERS = (
    "lost",
    "backlog",
    "backlog_limit",
    "backlog_wait_time",
    "backlog_wait_time_actual",
)


class AuditCost(FactBase[AuditCostStatus | None]):
    """What auditing costs on the host: events with ``key`` in the last hour (``ausearch``),
    per minute, and the kernel's counters of ``auditctl -s`` (lost records, backlog, backlog
    waits). None without auditctl.

    .. code:: python

        {"events_last_hour": 120, "window_minutes": 60, "events_per_minute": 2.0, "lost": 0,
         "backlog": 0, "backlog_limit": 16384, "backlog_wait_time": 0,
         "backlog_wait_time_actual": 0}
    """

    def command(self, key: str) -> str:
        return render("audit/audit-cost.sh.j2", key=shlex.quote(key))

    @staticmethod
    def default() -> AuditCostStatus | None:
        return None

    def process(self, output: list[str]) -> AuditCostStatus | None:
        values: dict[str, int] = {}
        for line in output:
            words = line.split()
            number = ascii_number(words[1]) if len(words) >= 2 else None
            if number is not None:
                values[words[0]] = number
        if "events" not in values:
            return None
        window = max(1, min(60, values.get("uptime", 3600) // 60))
        cost: AuditCostStatus = {
            "events_last_hour": values["events"],
            "window_minutes": window,
            "events_per_minute": round(values["events"] / window, 1),
            "lost": None,
            "backlog": None,
            "backlog_limit": None,
            "backlog_wait_time": None,
            "backlog_wait_time_actual": None,
        }
        for name in AUDIT_COUNTERS:
            cost[name] = values.get(name)  # type: ignore[literal-required]
        return cost
