"""Facts for the audit rules on Docker's files (``dindkit.audit``).

- ``DockerAuditPaths``: which Docker paths of CIS Docker Benchmark items 1.1.3-1.1.18 exist on
  the host, binaries and units at their real locations, and which directories of layer and
  volume data under /var/lib/docker are left out of the watch.
- ``LoadedAuditRules``: the kernel's audit rules (``auditctl -l``), its enabled flag and backlog
  settings, and the backlog settings the files of /etc/audit/rules.d give when merged.
- ``AuditCost``: dindkit's audit events in the last hour and the kernel's lost records and
  backlog waits (``dindkit doctor``).
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


DOCKER_ROOT = "/var/lib/docker"
# Directories under Docker's root (and under each userns-remap root, <uid>.<gid>) that hold image
# layers, containers' writable layers, build caches and volumes' data (a DinD container's own
# /var/lib/docker is a volume): files written there are not audited. Not tmp: dockerd replaces
# it at every start, and the kernel drops a tree rule whose directory is removed, so a rule on it
# would be gone after each restart (a rerun would load the rules again).
DOCKER_DATA_DIRS = (
    "overlay2",
    "fuse-overlayfs",
    "vfs",
    "btrfs",
    "zfs",
    "containerd",
    "buildkit",
    "volumes",
)
EXCLUDE = "exclude"  # the item of an excluded directory in DockerAuditPaths


class AuditWatch(TypedDict):
    item: str
    path: str


class DockerAuditPaths(FactBase[list[AuditWatch]]):
    """
    The Docker paths of CIS Docker Benchmark v1.6 items 1.1.3-1.1.18 that exist on the host, in
    item order, each path once: binaries in every bin directory, a symlink and its target
    (docker.io puts dockerd and runc in /usr/sbin, docker-ce in /usr/bin), units where systemd
    loads them from, files and directories as they are. Then, with the item ``exclude``, the
    directories of ``DOCKER_DATA_DIRS`` that exist under /var/lib/docker and under each
    userns-remap root. Paths with blanks are left out (an audit rule cannot hold them).

    .. code:: python

        [
            {"item": "1.1.3", "path": "/usr/sbin/dockerd"},
            {"item": "1.1.6", "path": "/etc/docker"},
            {"item": "exclude", "path": "/var/lib/docker/overlay2"},
        ]
    """

    default = list

    def command(self) -> str:
        return render(
            "audit/docker-watch-paths.sh.j2",
            items=DOCKER_AUDIT_ITEMS,
            docker_root=DOCKER_ROOT,
            data_dirs=DOCKER_DATA_DIRS,
        )

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
    backlog_limit: int | None  # auditctl -b in the kernel
    backlog_wait_time: int | None  # --backlog_wait_time in the kernel (ticks)
    # What /etc/audit/rules.d gives when augenrules merges it: the last of each setting.
    rules_d: dict[str, int]


# auditctl's options for the backlog settings, by the name auditctl -s prints.
BACKLOG_OPTIONS = {"-b": "backlog_limit", "--backlog_wait_time": "backlog_wait_time"}
AUDIT_RULES_DIR = "/etc/audit/rules.d"


class LoadedAuditRules(FactBase[AuditStatus | None]):
    """
    The audit rules loaded in the kernel, as ``auditctl -l`` prints them, the ``enabled`` flag
    and backlog settings of ``auditctl -s``, and the backlog settings the files of
    /etc/audit/rules.d give when augenrules merges them (the last ``-b`` and the last
    ``--backlog_wait_time`` win); None when auditctl is not installed.

    .. code:: python

        {
            "enabled": 1,
            "rules": ["-w /etc/docker -p wa -k dindkit-docker"],
            "backlog_limit": 16384,
            "backlog_wait_time": 0,
            "rules_d": {"backlog_limit": 16384, "backlog_wait_time": 0},
        }
    """

    def command(self) -> str:
        return render("audit/loaded-rules.sh.j2", rules_dir=AUDIT_RULES_DIR)

    @staticmethod
    def default() -> AuditStatus | None:
        return None

    def process(self, output: list[str]) -> AuditStatus | None:
        status: AuditStatus = {
            "enabled": None,
            "rules": [],
            "backlog_limit": None,
            "backlog_wait_time": None,
            "rules_d": {},
        }
        for line in output:
            line = line.strip()
            words = line.split()
            if line.startswith("rules.d "):
                value = ascii_number(words[2]) if len(words) >= 3 else None
                if words[1:2] and words[1] in BACKLOG_OPTIONS and value is not None:
                    status["rules_d"][BACKLOG_OPTIONS[words[1]]] = value
            elif len(words) == 2 and words[0] in ("enabled", *BACKLOG_OPTIONS.values()):
                number = ascii_number(words[1])
                if number is not None:
                    status[words[0]] = number  # type: ignore[literal-required]
            elif line and line != "No rules":
                status["rules"].append(line)
        return status


def rules_with_key(rules: list[str], key: str) -> list[str]:
    """The rules tagged with ``key`` (``-k key`` or ``-F key=key``)."""

    def tagged(rule: str) -> bool:
        words = rule.split()
        return any(pair == ("-k", key) for pair in pairwise(words)) or f"key={key}" in words

    return [rule for rule in rules if tagged(rule)]
