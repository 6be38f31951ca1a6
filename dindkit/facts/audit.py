"""Facts for the audit rules on Docker's files (``dindkit.audit``).

- ``DockerAuditPaths``: which Docker paths of CIS Docker Benchmark items 1.1.3-1.1.18 exist on
  the host, binaries and units at their real locations.
- ``LoadedAuditRules``: the kernel's audit rules (``auditctl -l``) and its enabled flag.
"""

from __future__ import annotations

from itertools import pairwise
from typing import NamedTuple, TypedDict

from pyinfra.api import FactBase

from dindkit.settings import ascii_number
from dindkit.templating import render


class AuditItem(NamedTuple):
    number: str  # CIS Docker Benchmark v1.6 item
    kind: str  # binary (in a bin directory), unit (systemd's FragmentPath) or path (as it is)
    name: str


# CIS Docker Benchmark v1.6, section 1.1: "Ensure auditing is configured for ...".
DOCKER_AUDIT_ITEMS = (
    AuditItem("1.1.3", "binary", "dockerd"),
    AuditItem("1.1.4", "path", "/run/containerd"),
    AuditItem("1.1.5", "path", "/var/lib/docker"),
    AuditItem("1.1.6", "path", "/etc/docker"),
    AuditItem("1.1.7", "unit", "docker.service"),
    AuditItem("1.1.8", "path", "/run/containerd/containerd.sock"),
    AuditItem("1.1.9", "unit", "docker.socket"),
    AuditItem("1.1.10", "path", "/etc/default/docker"),
    AuditItem("1.1.11", "path", "/etc/docker/daemon.json"),
    AuditItem("1.1.12", "path", "/etc/containerd/config.toml"),
    AuditItem("1.1.13", "path", "/etc/sysconfig/docker"),
    AuditItem("1.1.14", "binary", "containerd"),
    AuditItem("1.1.15", "binary", "containerd-shim"),
    AuditItem("1.1.16", "binary", "containerd-shim-runc-v1"),
    AuditItem("1.1.17", "binary", "containerd-shim-runc-v2"),
    AuditItem("1.1.18", "binary", "runc"),
)


class AuditWatch(TypedDict):
    item: str
    path: str


class DockerAuditPaths(FactBase[list[AuditWatch]]):
    """
    The Docker paths of CIS Docker Benchmark v1.6 items 1.1.3-1.1.18 that exist on the host, in
    item order, each path once: binaries in every bin directory, a symlink and its target
    (docker.io puts dockerd and runc in /usr/sbin, docker-ce in /usr/bin), units where systemd
    loads them from, files and directories as they are. Paths with blanks are left out (an
    audit rule cannot hold them).

    .. code:: python

        [{"item": "1.1.3", "path": "/usr/sbin/dockerd"}, {"item": "1.1.6", "path": "/etc/docker"}]
    """

    default = list

    def command(self) -> str:
        return render("audit/docker-watch-paths.sh.j2", items=DOCKER_AUDIT_ITEMS)

    def process(self, output: list[str]) -> list[AuditWatch]:
        watches: list[AuditWatch] = []
        seen: set[str] = set()
        for line in output:
            item, _, path = line.strip().partition(" ")
            if not path.startswith("/") or any(blank in path for blank in " \t") or path in seen:
                continue
            seen.add(path)
            watches.append({"item": item, "path": path})
        return watches


class AuditStatus(TypedDict):
    enabled: int | None  # 0 off, 1 on, 2 locked (rules immutable until reboot)
    rules: list[str]  # as auditctl -l prints them


class LoadedAuditRules(FactBase[AuditStatus | None]):
    """
    The audit rules loaded in the kernel, as ``auditctl -l`` prints them, and the ``enabled``
    flag of ``auditctl -s``; None when auditctl is not installed.

    .. code:: python

        {"enabled": 1, "rules": ["-w /etc/docker -p wa -k dindkit-docker"]}
    """

    def command(self) -> str:
        return (
            "! command -v auditctl >/dev/null 2>&1 || "
            "{ auditctl -s | grep '^enabled '; auditctl -l; }"
        )

    @staticmethod
    def default() -> AuditStatus | None:
        return None

    def process(self, output: list[str]) -> AuditStatus | None:
        status: AuditStatus = {"enabled": None, "rules": []}
        for line in output:
            line = line.strip()
            if line.startswith("enabled "):
                status["enabled"] = ascii_number(line.split()[1])
            elif line and line != "No rules":
                status["rules"].append(line)
        return status


def rules_with_key(rules: list[str], key: str) -> list[str]:
    """The rules tagged with ``key`` (``-k key`` or ``-F key=key``)."""

    def tagged(rule: str) -> bool:
        words = rule.split()
        return any(pair == ("-k", key) for pair in pairwise(words)) or f"key={key}" in words

    return [rule for rule in rules if tagged(rule)]
