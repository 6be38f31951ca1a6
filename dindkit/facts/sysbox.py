"""Facts the Sysbox deploy and ``dindkit doctor`` read, beyond pyinfra's own.

pyinfra's server.LinuxDistribution, server.KernelVersion and server.Arch cover distribution,
kernel and architecture; these cover the rest. Every command succeeds whether or not the
thing it asks about exists (an absent Docker gives an empty answer, not an error), so facts can
be read on a fresh host before Docker is installed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pyinfra.api import FactBase

from dindkit.settings import ascii_number

SYSBOX_SERVICES = ("sysbox", "sysbox-mgr", "sysbox-fs")


def _first_line(output: list[str]) -> str | None:
    for line in output:
        if line.strip():
            return line.strip()
    return None


class Pid1Comm(FactBase[str | None]):
    """The command name of PID 1 (``systemd`` on a systemd host), from /proc/1/comm."""

    def command(self) -> str:
        return "cat /proc/1/comm 2>/dev/null || true"

    @staticmethod
    def default() -> str | None:
        return None

    def process(self, output: list[str]) -> str | None:
        return _first_line(output)


class ShiftfsModule(FactBase[bool]):
    """Whether the shiftfs module is loaded or can be loaded (Ubuntu kernels before 6.x)."""

    def command(self) -> str:
        return (
            "if grep -qw shiftfs /proc/filesystems 2>/dev/null"
            " || modinfo shiftfs >/dev/null 2>&1; then echo yes; else echo no; fi"
        )

    @staticmethod
    def default() -> bool:
        return False

    def process(self, output: list[str]) -> bool:
        return _first_line(output) == "yes"


class SnapDocker(FactBase[bool]):
    """Whether Docker is installed as a snap."""

    def command(self) -> str:
        return (
            "if [ -e /snap/bin/docker ] || { command -v snap >/dev/null 2>&1"
            " && snap list docker >/dev/null 2>&1; }; then echo yes; else echo no; fi"
        )

    @staticmethod
    def default() -> bool:
        return False

    def process(self, output: list[str]) -> bool:
        return _first_line(output) == "yes"


class AppArmorRestrictUserns(FactBase[int | None]):
    """kernel.apparmor_restrict_unprivileged_userns (Ubuntu 23.10+), None where absent."""

    def command(self) -> str:
        return "cat /proc/sys/kernel/apparmor_restrict_unprivileged_userns 2>/dev/null || true"

    @staticmethod
    def default() -> int | None:
        return None

    def process(self, output: list[str]) -> int | None:
        line = _first_line(output)
        return ascii_number(line) if line else None


class SysboxVersion(FactBase[str | None]):
    """Installed sysbox-ce version ("0.6.7"), None when not installed.

    The package's own version reads like ``0.6.7.linux`` or ``0.6.7-0.linux``.
    """

    def command(self) -> str:
        return "dpkg-query -W -f='${Status}|${Version}\\n' sysbox-ce 2>/dev/null || true"

    @staticmethod
    def default() -> str | None:
        return None

    def process(self, output: list[str]) -> str | None:
        for line in output:
            status, _, version = line.strip().partition("|")
            if status.endswith(" installed") and not status.endswith(" not-installed"):
                match = re.match(r"[0-9]+\.[0-9]+\.[0-9]+", version)
                return match.group(0) if match else version
        return None


class RunningContainers(FactBase[list[str]]):
    """Names of running Docker containers (empty without Docker)."""

    def command(self) -> str:
        return "docker ps --format '{{.Names}}' 2>/dev/null || true"

    @staticmethod
    def default() -> list[str]:
        return []

    def process(self, output: list[str]) -> list[str]:
        return [line.strip() for line in output if line.strip()]


class DockerServerVersion(FactBase[str | None]):
    """Version of the running Docker daemon, None when there is none."""

    def command(self) -> str:
        return "docker version --format '{{.Server.Version}}' 2>/dev/null || true"

    @staticmethod
    def default() -> str | None:
        return None

    def process(self, output: list[str]) -> str | None:
        line = _first_line(output)
        return line if line and re.match(r"[0-9]", line) else None


class DockerRuntimes(FactBase[list[str]]):
    """Runtime names ``docker info`` lists (e.g. io.containerd.runc.v2, runc, sysbox-runc)."""

    def command(self) -> str:
        return "docker info --format '{{json .Runtimes}}' 2>/dev/null || true"

    @staticmethod
    def default() -> list[str]:
        return []

    def process(self, output: list[str]) -> list[str]:
        text = "".join(output).strip()
        try:
            runtimes: Any = json.loads(text)
        except ValueError:
            return []
        return sorted(runtimes) if isinstance(runtimes, dict) else []


class SysboxServices(FactBase[dict[str, str]]):
    """``systemctl is-active`` of sysbox, sysbox-mgr and sysbox-fs."""

    def command(self) -> str:
        units = " ".join(SYSBOX_SERVICES)
        return (
            f"for unit in {units}; do "
            'printf "%s %s\\n" "$unit" "$(systemctl is-active "$unit" 2>/dev/null || true)"; '
            "done"
        )

    @staticmethod
    def default() -> dict[str, str]:
        return {}

    def process(self, output: list[str]) -> dict[str, str]:
        states: dict[str, str] = {}
        for line in output:
            unit, _, state = line.strip().partition(" ")
            if unit:
                states[unit] = state.strip() or "unknown"
        return states
